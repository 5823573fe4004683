"""T4: disk full or read-only run folder: the run pauses with a message, nothing partial is left,
the last good checkpoint still loads, the pictures are untouched, and the run resumes later."""

from __future__ import annotations

import errno
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import pytest

from ptm_studio.core import checkpoints
from ptm_studio.core.checkpoints import load_checkpoint
from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory

from .conftest import folder_digest


def failing_after(calls_allowed: int, error_number: int) -> Callable[..., None]:
    real_write = checkpoints.write_bytes_atomic
    calls = {"count": 0}

    def write(path: Path, data: bytes) -> None:
        calls["count"] += 1
        if calls["count"] > calls_allowed:
            # Leave a half-written temp file, as a full disk would, before failing.
            (Path(path).parent / ".model.safetensors.x.partial").write_bytes(data[: len(data) // 2])
            raise OSError(error_number, "simulated")
        real_write(path, data)

    return write


@pytest.mark.parametrize(
    ("error_number", "words"), [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only")]
)
def test_a_failed_checkpoint_write_pauses_and_keeps_the_last_good_one(
    tiny_config: Callable[..., RunConfig],
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error_number: int,
    words: str,
) -> None:
    pictures_before = folder_digest(tiny_dataset)
    config = tiny_config(num_epochs=3)
    # Epoch 1 writes "last" and "best"; the third write (epoch 2's "last") fails.
    monkeypatch.setattr(checkpoints, "write_bytes_atomic", failing_after(2, error_number))
    finished = Trainer.new_run(config, runs_root=tmp_path).run()
    assert finished.status == "stopped", finished.error_details
    assert words in finished.error_message and "Resume" in finished.error_message
    run = RunDirectory(finished.run_dir)  # type: ignore[arg-type]
    assert (
        load_checkpoint(run.last_checkpoint_dir).trainer_state["progress"]["epochs_completed"] == 1
    )  # type: ignore[index]
    assert not [p for p in run.path.rglob("*") if ".partial" in p.name]
    assert folder_digest(tiny_dataset) == pictures_before

    monkeypatch.undo()  # space was freed
    resumed = Trainer.resume(run.path).run()
    assert resumed.status == "completed", resumed.error_details
    assert [record["epoch"] for record in run.read_metrics("epoch")] == [1, 2, 3]


def test_too_little_free_space_is_caught_before_writing(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(
        checkpoints.shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000)
    )
    finished = Trainer.new_run(tiny_config(num_epochs=1), runs_root=tmp_path).run()
    assert finished.status == "stopped"
    assert "nearly full" in finished.error_message and "MB free" in finished.error_message
    run_dir = RunDirectory(finished.run_dir)  # type: ignore[arg-type]
    assert not run_dir.last_checkpoint_dir.exists()
    assert not [p for p in run_dir.path.rglob("*") if ".partial" in p.name]
