"""Pretraining runs through the same Trainer: events, health signals, backbone reuse, resume."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from training_helpers import StopAt, train_and_record

from ptm_studio.core.checkpoints import CheckpointError, load_checkpoint, read_meta
from ptm_studio.core.config import PRETRAIN_LOSSES, RunConfig, replace_field
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import (
    BatchFinished,
    EpochFinished,
    PredictionsReady,
    PretrainSamplesReady,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.core.inference import Predictor
from ptm_studio.core.run_models import model_checkpoint
from ptm_studio.core.runs import RunDirectory

ConfigFactory = Callable[..., RunConfig]


def pretrain_config(tiny_config: ConfigFactory, loss: str, **optim: object) -> RunConfig:
    config = replace_field(tiny_config(**optim), "objective.task", "pretrain")
    return replace_field(config, "objective.loss", loss).validate()


def train(
    config: RunConfig, runs_root: Path, *callbacks: Callback, **options: object
) -> tuple[TrainingFinished, EventRecorder]:
    finished, recorder = train_and_record(config, runs_root, *callbacks, **options)
    assert finished.status in ("completed", "stopped"), finished.error_details
    return finished, recorder


@pytest.mark.parametrize("loss", PRETRAIN_LOSSES)
def test_each_objective_pretrains_and_saves_a_reusable_backbone(
    tiny_config: ConfigFactory, tmp_path: Path, loss: str
) -> None:
    finished, recorder = train(pretrain_config(tiny_config, loss), tmp_path)
    started = recorder.of_type(TrainingStarted)[0]
    assert started.task == "pretrain" and started.class_names == ()
    epochs = recorder.of_type(EpochFinished)
    assert len(epochs) == 2
    for epoch in epochs:
        assert math.isfinite(epoch.train_loss) and math.isfinite(epoch.embedding_spread)
        assert 0.0 <= epoch.val_accuracy <= 1.0  # k-NN accuracy on the folder's own classes
        assert 0.0 <= epoch.probe_accuracy <= 1.0  # and a linear probe on the same features
        assert math.isnan(epoch.val_loss)
    assert math.isfinite(epochs[-1].train_accuracy) == (loss == "rotation")
    assert not recorder.of_type(PredictionsReady)
    run = RunDirectory(finished.run_dir)  # type: ignore[arg-type]
    # The folder has classes: the epochs are ranked by the linear probe, and the best epoch's
    # backbone is kept apart for later runs (model_checkpoint picks it).
    best = epochs[0]
    for epoch in epochs[1:]:  # higher probe accuracy; on a tie, lower training loss
        if (epoch.probe_accuracy, -epoch.train_loss) > (best.probe_accuracy, -best.train_loss):
            best = epoch
    assert [epoch.epoch for epoch in epochs if epoch.is_best][-1] == best.epoch
    assert finished.best_val_accuracy == best.probe_accuracy
    assert model_checkpoint(run.path) == run.best_checkpoint_dir
    assert read_meta(run.best_checkpoint_dir)["epoch"] == best.epoch
    for folder in (run.best_checkpoint_dir, run.last_checkpoint_dir):
        weights = load_checkpoint(folder).model_state
        assert weights and all(name.startswith("backbone.") for name in weights)


def test_without_labels_later_runs_start_from_the_last_backbone(
    tiny_config: ConfigFactory, tiny_dataset: Path, tmp_path: Path
) -> None:
    """No classes, no probe to rank the epochs by: no best epoch is kept apart, and the last
    backbone is the one later runs start from (as in SimCLR and its kin)."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for index, path in enumerate(sorted(tiny_dataset.rglob("*.png"))):
        path.rename(flat / f"picture_{index}.png")
    config = replace_field(pretrain_config(tiny_config, "nt_xent"), "data.data_dir", str(flat))
    finished, recorder = train(config.validate(), tmp_path / "runs")
    epochs = recorder.of_type(EpochFinished)
    assert epochs and all(math.isnan(epoch.probe_accuracy) for epoch in epochs)
    run = RunDirectory(finished.run_dir)  # type: ignore[arg-type]
    assert not run.best_checkpoint_dir.exists()
    assert model_checkpoint(run.path) == run.last_checkpoint_dir


def test_sample_views_show_what_the_objective_sees(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    _, contrastive = train(pretrain_config(tiny_config, "nt_xent", num_epochs=1), tmp_path)
    pairs = contrastive.of_type(PretrainSamplesReady)
    assert [event.kind for event in pairs] == ["pair"]
    assert pairs[0].first_images.shape == (8, 16, 16, 3) and pairs[0].first_images.dtype == np.uint8
    assert not np.array_equal(pairs[0].first_images, pairs[0].second_images)  # two random views

    _, reconstruction = train(
        pretrain_config(tiny_config, "reconstruction", num_epochs=1), tmp_path
    )
    samples = reconstruction.of_type(PretrainSamplesReady)[0]
    assert samples.kind == "reconstruction" and samples.second_images.shape == (8, 16, 16, 3)


def test_showing_samples_does_not_change_the_training_run(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = pretrain_config(tiny_config, "nt_xent", num_epochs=2)
    _, first = train(config, tmp_path)
    _, second = train(config, tmp_path)
    losses = [[event.loss for event in run.of_type(BatchFinished)] for run in (first, second)]
    assert losses[0] == losses[1]


def test_finetuning_starts_from_the_pretrained_backbone(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    pretrained, _ = train(pretrain_config(tiny_config, "rotation"), tmp_path)
    config = replace_field(tiny_config(), "model.weights", "run")
    config = replace_field(config, "model.weights_path", str(pretrained.run_dir)).validate()
    finished, recorder = train(config, tmp_path)
    assert finished.status == "completed"
    assert recorder.of_type(PredictionsReady)
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert "head" in status["weights"].lower()  # the load report says the head is new


@pytest.mark.parametrize("loss", ["nt_xent", "moco", "vicreg"])
def test_a_pretraining_run_resumed_mid_epoch_matches_an_uninterrupted_one(
    tiny_config: ConfigFactory, tmp_path: Path, loss: str
) -> None:
    config = pretrain_config(tiny_config, loss, num_epochs=2)
    # A memory smaller than the run's pictures: it is full and wrapping when the run stops,
    # and must come back with the checkpoint for the losses to match.
    config = replace_field(config, "objective.memory_size", 6)
    _straight, straight_events = train(config, tmp_path / "straight")

    stop = StopRequest()
    stopped, _ = train(config, tmp_path / "resumed", StopAt(stop, step=2), stop_request=stop)
    assert stopped.status == "stopped"
    _, resumed_events = train(config, tmp_path / "resumed", resume_from=stopped.run_dir)
    straight_losses = [event.loss for event in straight_events.of_type(BatchFinished)]
    resumed_losses = [event.loss for event in resumed_events.of_type(BatchFinished)]
    assert np.allclose(straight_losses[2:], resumed_losses, rtol=1e-5), (
        straight_losses,
        resumed_losses,
    )


def test_predict_refuses_a_pretraining_run_with_advice(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    finished, _ = train(pretrain_config(tiny_config, "rotation", num_epochs=1), tmp_path)
    with pytest.raises(CheckpointError, match="Finetune it"):
        Predictor.from_run(finished.run_dir)  # type: ignore[arg-type]
