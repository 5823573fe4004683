"""The Trainer on a tiny generated dataset: events, stop, resume, reproducibility, run folder."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import StopAt, train_and_record

from ptm_studio.core.checkpoints import load_checkpoint
from ptm_studio.core.config import DataConfig, ModelConfig, RunConfig, replace_field
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import (
    BatchFinished,
    CheckpointSaved,
    EarlyStopRequested,
    EpochFinished,
    PredictionRecord,
    PredictionsReady,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.core.inference import Predictor, collect_image_paths
from ptm_studio.core.runs import RunDirectory

ConfigFactory = Callable[..., RunConfig]


_train = train_and_record


def test_events_come_in_order_with_plain_payloads(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    finished, recorder = _train(tiny_config(), tmp_path)
    assert finished.status == "completed", finished.error_details
    kinds = [type(event).__name__ for event in recorder.events]
    steps = recorder.events[0].steps_per_epoch  # type: ignore[union-attr]
    epoch_block = ["BatchFinished"] * steps + [
        "EpochFinished",
        "PredictionsReady",
        "CheckpointSaved",
    ]
    assert kinds[0] == "TrainingStarted" and kinds[-1] == "TrainingFinished"
    middle = [kind for kind in kinds[1:-1] if kind != "CheckpointSaved"]
    assert middle == [kind for kind in epoch_block * 2 if kind != "CheckpointSaved"]
    started = recorder.of_type(TrainingStarted)[0]
    assert started.class_names == ("circle", "square", "stripe") and started.start_epoch == 1
    for batch in recorder.of_type(BatchFinished):
        assert isinstance(batch.loss, float) and isinstance(batch.learning_rate, float)
    epoch = recorder.of_type(EpochFinished)[-1]
    assert (
        isinstance(epoch.confusion_matrix, np.ndarray)
        and epoch.confusion_matrix.sum() == started.num_val_images
    )
    predictions = recorder.of_type(PredictionsReady)[-1]
    assert len(predictions.records) == started.num_val_images
    assert all(
        isinstance(record, PredictionRecord) and isinstance(record.path, str)
        for record in predictions.records
    )
    reasons = {event.reason for event in recorder.of_type(CheckpointSaved)}
    assert reasons <= {"epoch", "best"} and "epoch" in reasons
    assert [event.global_step for event in recorder.of_type(BatchFinished)] == list(
        range(1, 2 * steps + 1)
    )


def test_a_tiny_run_learns_and_leaves_a_complete_run_folder(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(), "optim.num_epochs", 6)
    finished, recorder = _train(config, tmp_path)
    assert finished.status == "completed"
    assert finished.final_val_accuracy >= 0.8  # three colour classes: easy once it learns anything
    run = RunDirectory(finished.run_dir)  # type: ignore[arg-type]
    assert run.read_config() == config
    assert len(run.read_metrics("epoch")) == 6
    assert len(run.read_metrics("batch")) == recorder.of_type(BatchFinished)[-1].global_step
    assert run.read_status()["status"] == "completed"
    rows = run.read_predictions()
    assert {row["true_class"] for row in rows} == {"circle", "square", "stripe"}
    meta = load_checkpoint(run.best_checkpoint_dir, with_trainer_state=False).meta
    assert meta["class_names"] == ["circle", "square", "stripe"] and meta["image_size"] == 16
    predictor = Predictor.from_run(run.path)
    images = collect_image_paths([Path(config.data.data_dir) / "square"])  # type: ignore[arg-type]
    answers = predictor.predict_paths(images, top_k=2)
    assert sum(answer.predicted_class == "square" for answer in answers) >= 0.75 * len(answers)
    assert all(len(answer.top_classes) == 2 for answer in answers)


def test_stop_after_the_first_batch_saves_a_checkpoint(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    stop = StopRequest()
    finished, recorder = _train(tiny_config(), tmp_path, StopAt(stop, step=1), stop_request=stop)
    assert finished.status == "stopped"
    assert len(recorder.of_type(BatchFinished)) == 1
    saved = recorder.of_type(CheckpointSaved)
    assert [event.reason for event in saved] == ["stopped"]
    state = load_checkpoint(saved[0].path).trainer_state
    assert (
        state is not None
        and state["progress"]["global_step"] == 1
        and state["progress"]["batch_index"] == 1
    )
    assert RunDirectory(finished.run_dir).read_status()["status"] == "stopped"  # type: ignore[arg-type]
    assert isinstance(recorder.events[-1], TrainingFinished)


def _epoch_losses(run_dir: Path) -> list[tuple[float, float]]:
    return [(r["train_loss"], r["val_loss"]) for r in RunDirectory(run_dir).read_metrics("epoch")]


def test_same_seed_twice_gives_identical_losses(tiny_config: ConfigFactory, tmp_path: Path) -> None:
    first, first_events = _train(tiny_config(), tmp_path)
    second, second_events = _train(tiny_config(), tmp_path)
    losses = [
        [event.loss for event in run.of_type(BatchFinished)]
        for run in (first_events, second_events)
    ]
    assert losses[0] == losses[1]
    assert _epoch_losses(first.run_dir) == _epoch_losses(second.run_dir)  # type: ignore[arg-type]
    _other_seed, other_events = _train(replace_field(tiny_config(), "seed", 8), tmp_path)
    assert [event.loss for event in other_events.of_type(BatchFinished)] != losses[0]


@pytest.mark.parametrize(
    "stop_where", [{"epoch": 1}, {"step": 2}], ids=["after-epoch-1", "mid-epoch"]
)
def test_resume_continues_and_matches_an_uninterrupted_run(
    tiny_config: ConfigFactory, tmp_path: Path, stop_where: dict[str, int]
) -> None:
    config = replace_field(tiny_config(), "optim.num_epochs", 3)
    uninterrupted, _ = _train(config, tmp_path / "straight")
    stop = StopRequest()
    stopped, _ = _train(config, tmp_path / "resumed", StopAt(stop, **stop_where), stop_request=stop)
    assert stopped.status == "stopped"
    resumed, recorder = _train(config, tmp_path / "resumed", resume_from=stopped.run_dir)
    assert resumed.status == "completed" and resumed.run_dir == stopped.run_dir
    started = recorder.of_type(TrainingStarted)[0]
    assert started.start_epoch == (2 if "epoch" in stop_where else 1)
    log = RunDirectory(resumed.run_dir).read_metrics()  # type: ignore[arg-type]
    assert [record["epoch"] for record in log if record["type"] == "epoch"] == [1, 2, 3]
    steps = [record["global_step"] for record in log if record["type"] == "batch"]
    assert steps == sorted(set(steps)) and len(steps) == 3 * started.steps_per_epoch
    # On CPU with the data loaded in-process, resuming reproduces the uninterrupted run.
    straight, again = _epoch_losses(uninterrupted.run_dir), _epoch_losses(resumed.run_dir)  # type: ignore[arg-type]
    assert np.allclose(straight, again, rtol=1e-5, atol=1e-6), (straight, again)


def test_feature_extraction_keeps_the_backbone_unchanged(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(), "model.training_mode", "feature_extraction")
    torch.manual_seed(config.seed)
    finished, _ = _train(config, tmp_path)
    assert finished.status == "completed"
    first_epoch_start = load_checkpoint(
        RunDirectory(finished.run_dir).last_checkpoint_dir
    ).model_state  # type: ignore[arg-type]
    from ptm_studio.core.engine.setup import build_model, seed_everything

    seed_everything(config.seed)
    fresh, _spec, _note = build_model(config, 3)
    for name, tensor in fresh.state_dict().items():
        if name.startswith("backbone.") and "num_batches_tracked" not in name:
            assert torch.equal(tensor, first_epoch_start[name]), name
    head = [name for name in first_epoch_start if name.startswith("head.")]
    assert any(not torch.equal(fresh.state_dict()[name], first_epoch_start[name]) for name in head)


def test_bad_data_fails_with_a_readable_message_and_one_finished_event(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = RunConfig(data=DataConfig(data_dir=str(empty)), model=ModelConfig())
    finished, recorder = _train(config, tmp_path / "runs")
    assert finished.status == "failed"
    assert finished.kind == "data_unusable"
    assert finished.error_message and "Traceback" not in finished.error_message
    assert [type(event) for event in recorder.events] == [TrainingFinished]


class NaNLoss(torch.nn.Module):
    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.sum() * float("nan")


def test_a_diverging_loss_stops_the_run_with_advice(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "ptm_studio.core.engine.tasks.build_supervised_loss", lambda *_args: NaNLoss()
    )
    finished, recorder = _train(tiny_config(num_epochs=3), tmp_path)
    losses = [event.loss for event in recorder.of_type(BatchFinished)]
    assert len(losses) == 5 and not any(math.isfinite(loss) for loss in losses)
    assert finished.status == "failed"
    assert (
        "diverged at step 5" in finished.error_message
        and "lower learning rate" in finished.error_message
    )


def test_early_stopping_ends_the_run_after_patience_epochs_without_improvement(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ptm_studio.core.engine import tasks as trainer_module

    real_evaluate = trainer_module.evaluate
    scripted_accuracy = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])

    def scripted(*args: object, **kwargs: object) -> object:
        result = real_evaluate(*args, **kwargs)  # type: ignore[arg-type]
        return dataclasses.replace(result, accuracy=next(scripted_accuracy), loss=1.0)

    monkeypatch.setattr(trainer_module, "evaluate", scripted)
    config = tiny_config(num_epochs=6, early_stopping_patience=2)
    finished, recorder = _train(config, tmp_path)
    assert finished.status == "completed"
    epochs = recorder.of_type(EpochFinished)
    assert [event.epoch for event in epochs] == [1, 2, 3, 4]  # epochs 3 and 4 did not beat 0.7
    assert [event.is_best for event in epochs] == [True, True, False, False]
    assert finished.best_val_accuracy == 0.7
    best = load_checkpoint(
        RunDirectory(finished.run_dir).best_checkpoint_dir, with_trainer_state=False
    )  # type: ignore[arg-type]
    assert best.meta["epoch"] == 2  # keep-best: the best folder holds epoch 2's weights
    # The user is told why the run ended before its last epoch, and the run folder keeps it.
    (early,) = recorder.of_type(EarlyStopRequested)
    assert early.epochs_completed == 4 and "for 2 epochs" in early.reason
    assert recorder.events.index(early) < recorder.events.index(finished)
    assert finished.kind == "ended_early"
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert status["ended_early_because"] == early.reason
