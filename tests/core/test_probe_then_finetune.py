"""LP-FT (model.training_mode "probe_then_finetune"): the last layer is fitted on the frozen
network's features before the first step, then every layer learns, the network more slowly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import StopAt, train_and_record

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import (
    BatchFinished,
    FrozenFeaturesMeasured,
    TrainingStarted,
)
from ptm_studio.core.engine.parts import build_training

ConfigFactory = Callable[..., RunConfig]
BACKBONE_FACTOR = 0.25


def _probe_then_finetune(config: RunConfig) -> RunConfig:
    config = replace_field(config, "model.training_mode", "probe_then_finetune")
    config = replace_field(config, "model.backbone_learning_rate_factor", BACKBONE_FACTOR)
    return replace_field(config, "data.augmentations", ("flip",))


def test_the_last_layer_is_fitted_on_the_frozen_network_before_the_first_step(
    tiny_config: ConfigFactory,
) -> None:
    parts = build_training(_probe_then_finetune(tiny_config(num_epochs=1)))
    model = parts.task.trained_module()
    backbone_before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    head_before = model.classifier_layer.weight.detach().clone()
    random_state = torch.get_rng_state()

    events = parts.task.before_training()

    assert [type(event) for event in events] == [FrozenFeaturesMeasured]
    for name, parameter in model.backbone.named_parameters():
        assert torch.equal(parameter, backbone_before[name]), f"{name} learnt while frozen"
    assert not torch.equal(model.classifier_layer.weight, head_before)
    assert torch.equal(torch.get_rng_state(), random_state)  # the run's draws are its own
    assert all(parameter.requires_grad for parameter in model.parameters())
    # What the event says the fitted layer scores is what the whole network scores.
    measured = events[0]
    assert isinstance(measured, FrozenFeaturesMeasured)
    assert measured.probe_accuracy == pytest.approx(parts.task.evaluate().val_accuracy)
    assert 0.0 <= measured.knn_accuracy <= 1.0 and measured.penalty > 0


def test_every_layer_learns_from_the_first_step_the_network_more_slowly(
    tiny_config: ConfigFactory,
) -> None:
    config = _probe_then_finetune(tiny_config(num_epochs=1))
    parts = build_training(config)
    rates = {group["name"]: group["lr"] for group in parts.step.context.optimizer.param_groups}
    learning_rate = config.optim.learning_rate
    assert rates == {"head": learning_rate, "backbone": learning_rate * BACKBONE_FACTOR}


def test_the_fit_comes_between_the_start_and_the_first_step(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    finished, events = train_and_record(_probe_then_finetune(tiny_config(num_epochs=2)), tmp_path)
    assert finished.status == "completed"
    kinds = [type(event) for event in events.events]
    fitted = kinds.index(FrozenFeaturesMeasured)
    assert kinds.index(TrainingStarted) < fitted < kinds.index(BatchFinished)
    assert kinds.count(FrozenFeaturesMeasured) == 1


def test_a_resumed_run_does_not_fit_again_and_ends_with_the_same_weights(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = _probe_then_finetune(tiny_config(num_epochs=2))
    straight, _ = train_and_record(config, tmp_path / "straight")
    stop = StopRequest()
    stopped, _ = train_and_record(
        config, tmp_path / "resumed", StopAt(stop, step=3), stop_request=stop
    )
    assert stopped.status == "stopped" and stopped.run_dir is not None
    resumed, resumed_events = train_and_record(
        config, tmp_path / "resumed", resume_from=stopped.run_dir
    )
    assert resumed.status == "completed"
    assert resumed_events.of_type(FrozenFeaturesMeasured) == []
    assert straight.run_dir is not None and resumed.run_dir is not None
    expected = load_file(str(straight.run_dir / "checkpoints" / "last" / "model.safetensors"))
    got = load_file(str(resumed.run_dir / "checkpoints" / "last" / "model.safetensors"))
    for name, tensor in expected.items():
        assert torch.allclose(tensor, got[name], atol=1e-6), name
