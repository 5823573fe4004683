"""The engine's seams: parts built without a run folder, callbacks that steer only through the
control, resumes that apply or refuse the settings they are given, structured endings."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ptm_studio.cli import main as cli_main
from ptm_studio.core.checkpoints import CheckpointWriteError, DamagedCheckpointError
from ptm_studio.core.config import ConfigError, RunConfig, config_fields, replace_field
from ptm_studio.core.data import DatasetError, ImageLoadError, scan_folder
from ptm_studio.core.data.skipping import DatasetVanished
from ptm_studio.core.engine import setup
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import (
    BatchFinished,
    CheckpointSaved,
    DownloadProgressed,
    EarlyStopRequested,
    EpochFinished,
    EvaluationFinished,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.core.engine.failures import DataChangedError, ending_for
from ptm_studio.core.engine.loops import TrainingDiverged
from ptm_studio.core.engine.memory import OutOfMemoryError
from ptm_studio.core.engine.parts import build_training
from ptm_studio.core.engine.policies import EarlyStopping
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.models import WeightsError
from ptm_studio.core.runs import RunDirectory

ConfigFactory = Callable[..., RunConfig]


def _everything_under(folder: Path) -> list[str]:
    return (
        sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))
        if folder.exists()
        else []
    )


def test_parts_are_built_and_trained_without_writing_anything(
    tiny_config: ConfigFactory, private_runs_home: Path, tmp_path: Path
) -> None:
    before = _everything_under(private_runs_home), _everything_under(tmp_path)
    parts = build_training(tiny_config(num_epochs=1))
    assert parts.steps_per_epoch > 0 and parts.split.class_names
    events = EventRecorder()
    finished = Trainer(parts, callbacks=[events]).run()
    assert finished.status == "completed", finished.error_details
    assert finished.run_dir is None and events.of_type(TrainingStarted)[0].run_dir is None
    assert events.of_type(CheckpointSaved) == []  # without a recorder nothing is kept
    assert (_everything_under(private_runs_home), _everything_under(tmp_path)) == before


class Steer(Callback):
    """Asks the run for something after a given step, only through the control."""

    def __init__(self, step: int, request: str) -> None:
        self.step, self.request = step, request

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        if event.global_step != self.step:
            return
        if self.request == "stop":
            control.request_stop("enough for this test")
        elif self.request == "save":
            control.request_save()
        else:
            control.request_evaluation()


def _run(
    config: RunConfig, root: Path, *callbacks: Callback
) -> tuple[TrainingFinished, EventRecorder]:
    events = EventRecorder()
    finished = Trainer.new_run(config, runs_root=root, callbacks=[events, *callbacks]).run()
    return finished, events


def test_a_callback_can_end_the_run_early_and_it_completes_with_a_checkpoint(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    finished, events = _run(tiny_config(), tmp_path, Steer(2, "stop"))
    assert finished.status == "completed" and finished.kind == "ended_early"
    assert [event.global_step for event in events.of_type(BatchFinished)] == [1, 2]
    assert [(event.reason, event.global_step) for event in events.of_type(CheckpointSaved)] == [
        ("stopped", 2)
    ]
    assert RunDirectory(finished.run_dir).read_status()["status"] == "completed"  # type: ignore[arg-type]


def test_a_callback_can_ask_for_a_checkpoint(tiny_config: ConfigFactory, tmp_path: Path) -> None:
    _, events = _run(tiny_config(num_epochs=1), tmp_path, Steer(1, "save"))
    saved = events.of_type(CheckpointSaved)
    assert (saved[0].reason, saved[0].global_step) == ("periodic", 1)


def test_an_evaluation_in_mid_epoch_is_reported_and_changes_nothing_in_the_training(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    plain, plain_events = _run(tiny_config(), tmp_path / "plain")
    checked, checked_events = _run(tiny_config(), tmp_path / "checked", Steer(2, "evaluate"))
    (evaluation,) = checked_events.of_type(EvaluationFinished)
    steps = checked_events.of_type(TrainingStarted)[0].steps_per_epoch
    assert evaluation.global_step == 2 and evaluation.epoch == pytest.approx(2 / steps)
    assert 0 <= evaluation.val_accuracy <= 1 and evaluation.confusion_matrix is not None
    losses = [
        [e.loss for e in run.of_type(BatchFinished)] for run in (plain_events, checked_events)
    ]
    assert losses[0] == losses[1]  # the same batches, drawn the same way, bit for bit
    log = RunDirectory(checked.run_dir).read_metrics("evaluation")  # type: ignore[arg-type]
    assert [record["global_step"] for record in log] == [2]
    assert plain.final_val_accuracy == checked.final_val_accuracy


def test_mid_epoch_checks_come_from_the_settings(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(num_epochs=1), "optim.evaluate_every_steps", 2)
    _, events = _run(config, tmp_path)
    steps = events.of_type(TrainingStarted)[0].steps_per_epoch
    expected = [step for step in range(2, steps, 2)]  # not on the epoch's last batch
    assert [event.global_step for event in events.of_type(EvaluationFinished)] == expected


def test_early_stopping_counts_the_epochs_without_improvement_it_is_given() -> None:
    control = TrainingControl()
    rule = EarlyStopping(patience=2)
    base = dict(
        num_epochs=9, train_loss=1.0, train_accuracy=0.5, val_loss=1.0, val_accuracy=0.5,
        val_top5_accuracy=1.0, learning_rate=1e-3, epoch_seconds=1.0, is_best=False,
    )  # fmt: skip
    rule.on_epoch_finished(EpochFinished(epoch=3, epochs_without_improvement=1, **base), control)  # type: ignore[arg-type]
    assert not control.should_stop
    rule.on_epoch_finished(EpochFinished(epoch=4, epochs_without_improvement=2, **base), control)  # type: ignore[arg-type]
    assert control.should_stop and "2 epochs" in control.stop_reason


def test_a_misspelt_hook_is_refused_when_the_callback_is_written() -> None:
    with pytest.raises(TypeError, match="on_batch_finish"):

        class Misspelt(Callback):
            def on_batch_finish(self, event: Any, control: TrainingControl) -> None: ...


# ----------------------------------------------------------------------------- resuming
def _one_epoch_run(tiny_config: ConfigFactory, tmp_path: Path) -> Path:
    finished, _ = _run(tiny_config(num_epochs=1), tmp_path)
    assert finished.status == "completed" and finished.run_dir is not None
    return finished.run_dir


def test_a_resume_applies_more_epochs_and_says_so(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    run = _one_epoch_run(tiny_config, tmp_path)
    events = EventRecorder()
    finished = Trainer.resume(run, changes={"optim.num_epochs": 2}, callbacks=[events]).run()
    assert finished.status == "completed" and finished.epochs_completed == 2
    (started,) = events.of_type(TrainingStarted)
    assert started.start_epoch == 2
    assert started.resume_changes and started.resume_changes[0].startswith("Epochs: 1 → 2")
    assert RunDirectory(run).read_config().optim.num_epochs == 2  # a later resume keeps it


def test_a_resume_refuses_a_setting_it_cannot_take_and_names_it(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    run = _one_epoch_run(tiny_config, tmp_path)
    status = RunDirectory(run).read_status()
    with pytest.raises(ConfigError) as refused:
        Trainer.resume(run, changes={"optim.learning_rate": 0.5})
    assert refused.value.field_path == "optim.learning_rate"
    assert "cannot change when a run is resumed" in refused.value.message
    assert "start a new run" in refused.value.message
    assert RunDirectory(run).read_status() == status  # refused before anything ran
    with pytest.raises(ConfigError) as refused:
        Trainer.resume(run, changes={"seed": 8})
    assert refused.value.field_path == "seed"


def test_a_resume_cannot_ask_for_fewer_epochs_than_were_trained(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    finished, _ = _run(tiny_config(num_epochs=2), tmp_path)
    with pytest.raises(ConfigError, match="already trained 2 epochs"):
        Trainer.resume(finished.run_dir, changes={"optim.num_epochs": 1})  # type: ignore[arg-type]


def test_a_resume_given_the_runs_own_settings_changes_nothing(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    run = _one_epoch_run(tiny_config, tmp_path)
    config = RunDirectory(run).read_config()
    setup_ = Trainer.resume(run, changes=config_fields(config)).setup
    assert setup_.changes.fields == frozenset()  # type: ignore[attr-defined]


def test_the_command_line_applies_or_refuses_settings_given_with_resume(
    tiny_config: ConfigFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _one_epoch_run(tiny_config, tmp_path)
    assert cli_main(["train", "--resume", str(run), "--learning-rate", "0.5", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "optim.learning_rate" in error and "cannot change when a run is resumed" in error
    assert cli_main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert "Resumed with Epochs: 1 → 2" in capsys.readouterr().err
    assert len(RunDirectory(run).read_metrics("epoch")) == 2
    assert cli_main(["train", "--resume", str(tmp_path / "no such run"), "--quiet"]) == 2
    assert "--resume: there is no folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the scan
def test_the_scan_already_made_is_used_unless_the_folder_changed(
    tiny_config: ConfigFactory, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = scan_folder(tiny_dataset)
    scans: list[Path] = []
    real_scan = setup.scan_folder
    monkeypatch.setattr(
        setup, "scan_folder", lambda root, **kw: scans.append(root) or real_scan(root, **kw)
    )
    config = tiny_config(num_epochs=1)
    build_training(config, scan=scan)
    assert scans == []
    picture = next(tiny_dataset.glob("circle/*.png"))
    Image.new("RGB", (16, 16), (1, 2, 3)).save(picture.with_name("new.png"))
    parts = build_training(config, scan=scan)
    assert scans == [tiny_dataset]
    assert any(record.path.name == "new.png" for record in parts.split.train + parts.split.val)
    fresh = scan_folder(tiny_dataset)
    os.utime(picture, ns=(1, 1))  # a picture changed in place counts too
    build_training(config, scan=fresh)
    assert len(scans) == 2


# ----------------------------------------------------------------------------- endings
@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (ConfigError("optim.learning_rate", "too big"), "invalid_settings", "failed"),
        (DataChangedError("classes changed"), "data_changed", "failed"),
        (DatasetVanished(Path("/gone")), "paused_data_missing", "stopped"),
        (DatasetError("too few"), "data_unusable", "failed"),
        (ImageLoadError(Path("x.jpg"), "broken"), "data_unusable", "failed"),
        (WeightsError("no weights"), "weights_unusable", "failed"),
        (CheckpointWriteError(Path("/run"), "the disk is full"), "paused_disk", "stopped"),
        (DamagedCheckpointError(Path("/run/last"), "cut", None), "checkpoint_damaged", "failed"),
        (TrainingDiverged("nan"), "diverged", "failed"),
        (OutOfMemoryError("too big"), "out_of_memory", "failed"),
        (PermissionError("no"), "file_error", "failed"),
        (KeyError("bug"), "unexpected", "failed"),
    ],
)
def test_every_failure_has_a_kind_to_branch_on(
    error: BaseException, kind: str, status: str
) -> None:
    ending = ending_for(error)
    assert (ending, ending.status) == (kind, status)


def test_weights_download_progress_is_an_event_at_most_ten_a_second(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ptm_studio.core.engine import run_setup

    real_build = run_setup.build_training

    def build_while_downloading(config: RunConfig, **options: Any) -> Any:
        for done in range(0, 1001):  # a thousand pieces, as fast as a fast network
            options["download_progress"](done * 1000, 1_000_000)
        return real_build(config, **options)

    monkeypatch.setattr(run_setup, "build_training", build_while_downloading)
    finished, events = _run(tiny_config(num_epochs=1), tmp_path)
    assert finished.status == "completed", finished.error_details
    reports = events.of_type(DownloadProgressed)
    assert 2 <= len(reports) < 100
    assert (reports[0].done_bytes, reports[-1].done_bytes) == (0, 1_000_000)
    assert events.events.index(reports[-1]) < events.events.index(
        events.of_type(TrainingStarted)[0]
    )


def test_a_run_resumed_mid_epoch_counts_its_steps_as_the_uninterrupted_one(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    """The loader of a resumed epoch is shorter (it skips what was trained): the run's step
    counts must not shrink with it (the progress bar, the ETA and the periodic saves use them)."""
    from ptm_studio.core.engine.control import StopRequest

    stop = StopRequest()

    class StopAtStep2(Callback):
        def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
            if event.global_step == 2:
                stop.request()

    first = EventRecorder()
    stopped = Trainer.new_run(
        tiny_config(), runs_root=tmp_path, callbacks=[first, StopAtStep2()], stop_request=stop
    ).run()
    assert stopped.status == "stopped"
    resumed = EventRecorder()
    Trainer.resume(stopped.run_dir, callbacks=[resumed]).run()  # type: ignore[arg-type]
    steps = first.of_type(TrainingStarted)[0].steps_per_epoch
    assert resumed.of_type(TrainingStarted)[0].steps_per_epoch == steps
    batches = resumed.of_type(BatchFinished)
    assert {(event.num_batches, event.total_steps) for event in batches} == {(steps, 2 * steps)}
    assert batches[0].batch_index == 2 and batches[0].global_step == 3


# ----------------------------------------------------------------------------- review findings
def test_a_finished_run_is_never_left_marked_running_when_its_predictions_cannot_be_written(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ptm_studio.core.runs import find_interrupted_runs

    def locked(self: RunDirectory, rows: object) -> None:
        raise PermissionError(13, "the file is open in another program", str(self.predictions_path))

    monkeypatch.setattr(RunDirectory, "write_predictions", locked)
    finished, _ = _run(tiny_config(num_epochs=1), tmp_path)
    assert finished.status == "completed"
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert (
        status["status"] == "completed" and "predictions.csv could not be written" in status["note"]
    )
    assert find_interrupted_runs(tmp_path) == []


def test_a_resume_that_cannot_start_leaves_the_run_folder_as_it_was(
    tiny_config: ConfigFactory, tmp_path: Path, tiny_dataset: Path
) -> None:
    """Its pictures are gone (an unplugged drive): the run stays as it was, still resumable."""
    import json
    import shutil

    run = _one_epoch_run(tiny_config, tmp_path)
    status = {**RunDirectory(run).read_status(), "status": "running", "pid": 999_999_999}
    status["skipped_files"] = {"x.png": "broken"}
    RunDirectory(run).status_path.write_text(json.dumps(status), encoding="utf-8")
    before = _everything_under(run), RunDirectory(run).status_path.read_text(encoding="utf-8")
    shutil.move(str(tiny_dataset), str(tmp_path / "unplugged"))
    finished = Trainer.resume(run).run()
    assert finished.status == "failed" and finished.kind == "data_unusable"
    after = _everything_under(run), RunDirectory(run).status_path.read_text(encoding="utf-8")
    assert after == before


def test_early_stopping_on_the_last_epoch_is_an_ordinary_end(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    class StopEveryEpoch(Callback):
        def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
            control.request_stop("no better score")

    finished, events = _run(tiny_config(num_epochs=1), tmp_path, StopEveryEpoch())
    assert (finished.status, finished.kind) == ("completed", "completed")
    assert events.of_type(EarlyStopRequested) == []


def test_more_epochs_on_resume_follow_the_stretched_schedule_at_once(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    """The restored optimiser holds the rate of the old schedule's last step (cosine over one
    epoch: nearly 0); the first resumed step uses the new schedule's rate for that step."""
    from ptm_studio.core.objectives.optimization import learning_rate_multiplier

    run = _one_epoch_run(tiny_config, tmp_path)
    setup_ = Trainer.resume(run, changes={"optim.num_epochs": 4}).setup
    parts = setup_.prepare(lambda done, total: None)
    steps = parts.steps_per_epoch
    expected = tiny_config().optim.learning_rate * learning_rate_multiplier(
        steps, 4 * steps, 0, "cosine"
    )
    rates = [group["lr"] for group in parts.step.context.optimizer.param_groups]
    assert rates == [pytest.approx(expected)] * len(rates)
    assert expected > 0.5 * tiny_config().optim.learning_rate


def test_more_epochs_are_refused_for_a_one_cycle_run_and_when_not_more(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    finished, _ = _run(tiny_config(num_epochs=1, schedule="one_cycle"), tmp_path / "cycle")
    with pytest.raises(ConfigError, match="one-cycle"):
        Trainer.resume(finished.run_dir, changes={"optim.num_epochs": 3})  # type: ignore[arg-type]


def test_the_same_folder_given_with_a_resume_is_no_change(
    tiny_config: ConfigFactory, tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _one_epoch_run(tiny_config, tmp_path)
    monkeypatch.chdir(tiny_dataset.parent)
    same = Trainer.resume(run, changes={"data.data_dir": f"./{tiny_dataset.name}/"})
    assert same.setup.changes.fields == frozenset()  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"data\.data_dir"):
        Trainer.resume(run, changes={"data.data_dir": str(tmp_path)})


def test_the_demo_images_are_the_same_folder_whether_named_or_not() -> None:
    """A run the window trained on the demo images names their folder; `--demo --resume`
    (no folder) means the same pictures."""
    from ptm_studio.core.data import demo_data_dir
    from ptm_studio.core.engine.run_setup import apply_resume_changes

    named = replace_field(RunConfig(), "data.data_dir", str(demo_data_dir()))
    _, changes = apply_resume_changes(named, {"data.data_dir": None})
    assert changes.fields == frozenset()
    _, changes = apply_resume_changes(RunConfig(), {"data.data_dir": str(demo_data_dir())})
    assert changes.fields == frozenset()


def test_a_failed_run_frees_its_model_before_the_device_memory_is_given_back(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of memory is when freeing matters most: nothing of the failure (its traceback holds
    the frames that held the model) may keep the model alive past the end of the run."""
    import gc
    import weakref

    from ptm_studio.core.engine.tasks import SupervisedTask

    def out_of_memory(self: SupervisedTask, batch: object) -> object:
        raise OutOfMemoryError("simulated: even one picture does not fit")

    monkeypatch.setattr(SupervisedTask, "compute_loss", out_of_memory)
    alive_at_release: list[bool] = []

    def release(self: Trainer) -> None:  # what _release_device does on a graphics card
        model = weakref.ref(self._parts().task.trained_module())
        self.parts = None
        alive_at_release.append(model() is not None)

    monkeypatch.setattr(Trainer, "_release_device", release)
    # pytest keeps every log record, with its exception and so the frames: not the app's log.
    from ptm_studio.core.engine import trainer as trainer_module

    monkeypatch.setattr(trainer_module.LOGGER, "propagate", False)
    gc.disable()  # freed by reference counting alone, as torch.cuda.empty_cache needs
    try:
        finished, _ = _run(tiny_config(num_epochs=1), tmp_path)
    finally:
        gc.enable()
    assert finished.kind == "out_of_memory"
    assert alive_at_release == [False]
