"""Atomic writes, run folders and the metrics log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ptm_studio.core.atomic_io import (
    atomic_writer,
    remove_stray_temp_files,
    write_json_atomic,
    write_text_atomic,
)
from ptm_studio.core.config import RunConfig
from ptm_studio.core.locations import default_runs_root
from ptm_studio.core.runs import RunDirectory, list_runs, load_run


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_writer(target, "w") as handle:
        handle.write('{"version": 2, "trunc')
        raise RuntimeError("power cut")
    assert json.loads(target.read_text()) == {"version": 1}
    assert [path.name for path in tmp_path.iterdir()] == ["data.json"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
def test_a_written_file_gets_the_usual_permissions_and_a_replaced_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    """Not mkstemp's owner-only 0600: a report a user hands on must be readable by others."""
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.html", "<p>hello</p>")
        assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
        (tmp_path / "report.html").chmod(0o600)  # the user's own choice stays
        write_text_atomic(tmp_path / "report.html", "<p>again</p>")
        assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o600
    finally:
        os.umask(previous)


def test_stray_temp_files_are_swept(tmp_path: Path) -> None:
    (tmp_path / ".model.safetensors.abc.partial").write_bytes(b"half")
    (tmp_path / "keep.txt").write_text("ok")
    removed = remove_stray_temp_files(tmp_path)
    assert [path.name for path in removed] == [".model.safetensors.abc.partial"]
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]


def test_runs_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTM_STUDIO_HOME", str(tmp_path))
    assert default_runs_root() == tmp_path / "runs"


def test_run_folders_are_unique_and_listed(tmp_path: Path) -> None:
    first = RunDirectory.create(tmp_path, "my run")
    second = RunDirectory.create(tmp_path, "my run")
    assert (first.path.name, second.path.name) == ("my run", "my run-2")
    for run in (first, second):
        run.write_config(RunConfig())
    first.write_status(
        status="completed", epochs_completed=3, best_val_accuracy=0.8, class_names=["a", "b"]
    )
    runs = {run.name: run for run in list_runs(tmp_path)}
    assert runs["my run"].status == "completed"
    assert runs["my run"].best_val_accuracy == 0.8
    assert runs["my run"].class_names == ("a", "b")
    assert runs["my run-2"].status == "unknown"
    assert load_run(first.path).read_config() == RunConfig()


def test_unsafe_characters_in_run_names_are_replaced(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path, "../../etc/passwd")
    assert run.path.parent == tmp_path


def test_loading_a_folder_that_is_not_a_run_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a PTM Studio run folder"):
        load_run(tmp_path)


def test_metrics_log_appends_skips_cut_lines_and_truncates(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path)
    run.append_metrics(
        [
            {"type": "batch", "global_step": step, "loss": float("nan") if step == 2 else 1.0}
            for step in (1, 2, 3)
        ]
    )
    with open(run.metrics_path, "a", encoding="utf-8") as handle:
        handle.write('{"type": "batch", "global_st')  # a line cut by a crash
    records = run.read_metrics()
    assert [record["global_step"] for record in records] == [1, 2, 3]
    assert records[1]["loss"] is None  # NaN is stored as null: every line stays valid JSON
    run.truncate_metrics_after(2)
    assert [record["global_step"] for record in run.read_metrics("batch")] == [1, 2]
