"""The runs history as people see it (core/run_catalog.py): names, states, renaming, deleting
to the trash, settings side by side, settings out and in, saved predictions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ptm_studio.core import run_catalog
from ptm_studio.core.config import ConfigFileError, RunConfig, replace_field
from ptm_studio.core.run_catalog import (
    RunBusyError,
    TrashUnavailable,
    data_name_of,
    delete_run,
    describe_runs,
    export_settings,
    import_settings,
    made_title,
    rename_run,
    run_title,
    saved_predictions,
    setting_rows,
)
from ptm_studio.core.runs import RUNS_TRAINING_HERE, RunDirectory
from tests.core.training_helpers import train_and_record


def make_run(
    root: Path,
    folder: str,
    *,
    data_dir: str = "/home/ann/pictures/flowers/train",
    task: str = "finetune",
    loss: str = "cross_entropy",
    backbone: str = "small_cnn",
    **status: object,
) -> RunDirectory:
    """A run folder as training leaves it, without training."""
    run = RunDirectory(root / folder)
    run.path.mkdir(parents=True)
    config = replace_field(RunConfig(), "data.data_dir", data_dir)
    config = replace_field(config, "objective.task", task)
    config = replace_field(config, "objective.loss", loss)
    config = replace_field(config, "model.backbone", backbone)
    run.write_config(config)
    run.write_status(**{"status": "completed", "data_dir": data_dir, **status})
    return run


def test_runs_get_readable_names_from_data_network_and_result(tmp_path: Path) -> None:
    make_run(tmp_path, "a", best_val_accuracy=0.764, created="2026-12-01T10:00:00")
    make_run(
        tmp_path, "b", task="pretrain", loss="nt_xent", backbone="resnet18",
        created="2026-12-02T10:00:00",
    )  # fmt: skip
    newest, oldest = describe_runs(tmp_path)
    assert oldest.title == "flowers · Small CNN · 76 %"
    assert newest.title == "flowers · ResNet-18 · pretraining (SimCLR)"
    assert (oldest.state, oldest.state_words) == ("finished", "finished")
    assert newest.is_pretraining and not oldest.is_pretraining


@pytest.mark.parametrize(
    ("data_dir", "expected"),
    [
        ("/data/skin/images/train", "skin"),
        ("C:/Users/ann/Bilder/Käfer", "Käfer"),
        ("", "demo pictures"),
        ("/opt/app/resources/demo_data", "demo pictures"),
        ("/data", "data"),
    ],
)
def test_the_pictures_are_named_by_the_folder_that_says_most(data_dir: str, expected: str) -> None:
    assert data_name_of(data_dir) == expected


def test_a_run_without_a_score_says_so() -> None:
    assert made_title("x", "Small CNN", "finetune", "cross_entropy", None).endswith("no score yet")
    assert made_title("x", "Small CNN", "finetune", "cross_entropy", float("nan")).endswith(
        "no score yet"
    )


def test_a_rename_is_kept_beside_run_json_and_an_empty_name_goes_back(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", best_val_accuracy=0.5)
    before = run.status_path.read_bytes()
    assert rename_run(run.path, "  Beetles,\n second try  ") == "Beetles, second try"
    (entry,) = describe_runs(tmp_path)
    assert entry.title == entry.own_name == "Beetles, second try"
    assert run.status_path.read_bytes() == before  # the trainer's file is not touched
    # the trainer rewriting run.json keeps the name
    run.write_status(epochs_completed=3)
    assert describe_runs(tmp_path)[0].title == "Beetles, second try"
    rename_run(run.path, "   ")
    assert describe_runs(tmp_path)[0].title == "flowers · Small CNN · 50 %"


def test_other_windows_name_a_run_as_the_list_does(tmp_path: Path) -> None:
    run = make_run(tmp_path, "2026-12-01_10-00-00", best_val_accuracy=0.5)
    assert run_title(run.path) == "flowers · Small CNN · 50 %"
    rename_run(run.path, "Beetles")
    assert run_title(run.path) == "Beetles"
    run.status_path.write_text("{ not json")
    assert run_title(run.path) in ("Beetles", run.path.name)  # damaged: still named
    assert run_title(tmp_path / "gone") == "gone"


def test_a_damaged_name_file_falls_back_to_the_made_name(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", best_val_accuracy=0.5)
    (run.path / "name.txt").write_bytes(b"\xff\xfe\x00broken")
    (run.path / "name.txt").chmod(0o644)
    assert describe_runs(tmp_path)[0].title == "flowers · Small CNN · 50 %"


def test_states_follow_the_trainer_and_the_save(tmp_path: Path) -> None:
    make_run(tmp_path, "stopped", status="stopped", created="2026-12-01T10:00:01")
    dead = make_run(
        tmp_path, "dead", status="running", pid=1, process_started=1.0, host="elsewhere",
        created="2026-12-01T10:00:02",
    )  # fmt: skip
    live = make_run(tmp_path, "live", status="running", created="2026-12-01T10:00:03")
    RUNS_TRAINING_HERE.add(live.path.resolve())
    live.write_status(**run_catalog.RunDirectory(live.path).read_status(), **_this_process())
    try:
        states = {entry.path.name: entry for entry in describe_runs(tmp_path)}
    finally:
        RUNS_TRAINING_HERE.discard(live.path.resolve())
    assert states["stopped"].state == "stopped"
    assert states["dead"].state == "interrupted"
    assert states["live"].state == "running"
    # nothing saved yet: nothing to resume
    assert not states["stopped"].can_resume and not states["dead"].can_resume
    assert dead.path.is_dir()


def _this_process() -> dict[str, object]:
    from ptm_studio.core.runs import this_process

    return this_process()


def test_duration_is_the_epochs_time_or_first_to_last_write(tmp_path: Path) -> None:
    make_run(tmp_path, "timed", training_seconds=125.5, created="2026-12-01T10:00:00")
    old = make_run(tmp_path, "old", created="2026-12-01T09:00:00")
    status = old.read_status()
    status["updated"] = "2026-12-01T09:02:00"
    old.status_path.write_text(json.dumps(status))
    durations = {entry.path.name: entry.duration_seconds for entry in describe_runs(tmp_path)}
    assert durations == {"timed": 125.5, "old": 120.0}


def test_settings_side_by_side_mark_what_differs(tmp_path: Path) -> None:
    first = RunConfig()
    second = replace_field(first, "optim.learning_rate", 0.01)
    rows = {row.name: row for row in setting_rows([first, second, None])}
    assert rows["optim.learning_rate"].differs
    assert rows["optim.learning_rate"].values[2] == "?"
    assert "run_name" not in rows
    same = {row.name for row in setting_rows([first, first]) if row.differs}
    assert same == set()
    assert rows["data.augmentations"].values[0] == ", ".join(first.data.augmentations)


def test_settings_go_out_and_come_back(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r")
    config = replace_field(run.read_config(), "run_name", "only-this-run")
    run.write_config(replace_field(config, "optim.learning_rate", 0.0042))
    written = export_settings(run.path, tmp_path / "settings.json")
    imported = import_settings(written)
    assert imported.optim.learning_rate == 0.0042
    assert imported.run_name is None
    (tmp_path / "bad.json").write_text('{"optim": {"learning_rate": "fast"}}')
    with pytest.raises(ConfigFileError, match=r"bad\.json"):
        import_settings(tmp_path / "bad.json")


def test_delete_moves_the_run_to_the_trash(tmp_path: Path, private_trash: Path) -> None:
    run = make_run(tmp_path / "runs", "r")
    delete_run(run.path)
    assert not run.path.exists()
    trashed = private_trash / "files" / "r"
    assert (trashed / "config.json").is_file()  # it can be restored


def test_a_run_being_trained_is_not_deleted(tmp_path: Path) -> None:
    run = make_run(tmp_path, "live", status="running")
    run.write_status(**_this_process())
    RUNS_TRAINING_HERE.add(run.path.resolve())
    try:
        with pytest.raises(RunBusyError, match="being trained"):
            delete_run(run.path)
        with pytest.raises(RunBusyError):
            run_catalog.delete_permanently(run.path)
    finally:
        RUNS_TRAINING_HERE.discard(run.path.resolve())
    assert run.path.is_dir()


def test_without_a_trash_nothing_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    send2trash = pytest.importorskip("send2trash")

    def refuse(path: str) -> None:
        raise send2trash.TrashPermissionError(path)

    monkeypatch.setattr(send2trash, "send2trash", refuse)
    run = make_run(tmp_path, "r")
    with pytest.raises(TrashUnavailable):
        delete_run(run.path)
    assert run.path.is_dir()
    run_catalog.delete_permanently(run.path)
    assert not run.path.exists()
    with pytest.raises(FileNotFoundError, match="not a PTM Studio run"):
        (tmp_path / "other").mkdir()
        run_catalog.delete_permanently(tmp_path / "other")


def test_a_trained_run_is_listed_with_its_time_and_predictions(
    tmp_path: Path, tiny_config: Callable[..., RunConfig]
) -> None:
    config = tiny_config(num_epochs=2)
    finished, _events = train_and_record(config, tmp_path)
    (entry,) = describe_runs(tmp_path)
    assert entry.state == "finished" and not entry.can_resume
    assert entry.duration_seconds is not None and entry.duration_seconds > 0
    assert entry.best_accuracy == pytest.approx(finished.best_val_accuracy)
    predictions = saved_predictions(entry.path)
    assert predictions is not None
    rows = RunDirectory(entry.path).read_predictions()
    assert len(predictions.records) == len(rows) > 0
    names = predictions.class_names
    assert [names[record.predicted_index] for record in predictions.records] == [
        row["predicted_class"] for row in rows
    ]
    assert saved_predictions(tmp_path / "nowhere") is None
