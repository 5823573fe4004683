"""Loss, optimiser groups, schedules and freeze policies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ptm_studio.core.config import ModelConfig, ObjectiveConfig, OptimConfig
from ptm_studio.core.objectives import (
    build_optimizer,
    build_scheduler,
    build_supervised_loss,
    class_weights_from_counts,
    is_backbone_frozen,
    keep_built_kernels,
    learning_rate_multiplier,
)


def test_class_weights_are_inverse_frequency_and_one_when_balanced() -> None:
    assert class_weights_from_counts([10, 10]).tolist() == [1.0, 1.0]
    weights = class_weights_from_counts([30, 10])
    assert weights.tolist() == pytest.approx([40 / 60, 40 / 20])


def test_loss_uses_label_smoothing_and_weights() -> None:
    loss = build_supervised_loss(
        ObjectiveConfig(label_smoothing=0.1, use_class_weights=True), [30, 10]
    )
    assert isinstance(loss, nn.CrossEntropyLoss)
    assert loss.label_smoothing == 0.1
    assert loss.weight is not None and loss.weight.tolist() == pytest.approx([2 / 3, 2.0])
    logits = torch.tensor([[2.0, 0.0]])
    plain = nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert float(
        build_supervised_loss(ObjectiveConfig(), [1, 1])(logits, torch.tensor([0]))
    ) == pytest.approx(float(plain))


def _two_part_model() -> tuple[nn.Module, nn.Module]:
    return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), nn.Linear(4, 2)


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam", "adamw"])
def test_optimizer_groups_follow_the_training_mode(optimizer_name: str) -> None:
    backbone, head = _two_part_model()
    optim = OptimConfig(optimizer=optimizer_name, learning_rate=0.01, weight_decay=0.05)
    full = build_optimizer(head, backbone, optim, ModelConfig())
    assert {group["name"] for group in full.param_groups} == {"head", "backbone"}
    assert all(group["weight_decay"] in (0.0, 0.05) for group in full.param_groups)
    biases = [g for g in full.param_groups if any(p.ndim == 1 for p in g["params"])]
    assert all(group["weight_decay"] == 0.0 for group in biases)
    extraction = build_optimizer(
        head, backbone, optim, ModelConfig(training_mode="feature_extraction")
    )
    assert {group["name"] for group in extraction.param_groups} == {"head"}
    staged = build_optimizer(
        head,
        backbone,
        optim,
        ModelConfig(training_mode="freeze_then_unfreeze", backbone_learning_rate_factor=0.1),
    )
    rates = {group["name"]: group["lr"] for group in staged.param_groups}
    assert rates == {"head": 0.01, "backbone": pytest.approx(0.001)}


def test_adam_runs_fused_on_the_processor_and_a_loaded_state_keeps_this_computers_kernels() -> None:
    backbone, head = _two_part_model()
    optim = OptimConfig(optimizer="adamw", learning_rate=0.01)
    optimizer = build_optimizer(head, backbone, optim, ModelConfig())
    assert all(group["fused"] is True for group in optimizer.param_groups)
    # A state saved where the kernels were not fused (an older checkpoint, another device).
    saved = optimizer.state_dict()
    for group in saved["param_groups"]:
        group["fused"] = None
    optimizer.load_state_dict(saved)
    assert all(group["fused"] is None for group in optimizer.param_groups)  # torch's way
    keep_built_kernels(optimizer)
    assert all(group["fused"] is True for group in optimizer.param_groups)


def test_schedules_warm_up_then_follow_their_shape() -> None:
    assert learning_rate_multiplier(0, 100, 10, "constant") == pytest.approx(0.01)
    assert learning_rate_multiplier(5, 100, 10, "constant") == pytest.approx(0.01 + 0.99 * 0.5)
    assert learning_rate_multiplier(50, 100, 10, "constant") == 1.0
    assert learning_rate_multiplier(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert learning_rate_multiplier(100, 100, 10, "cosine") == pytest.approx(0.0)
    assert learning_rate_multiplier(55, 100, 10, "cosine") == pytest.approx(0.5)
    peak = [learning_rate_multiplier(step, 100, 0, "one_cycle") for step in range(100)]
    assert max(peak) == pytest.approx(1.0) and peak.index(max(peak)) == 30 and peak[-1] < 0.01


def test_scheduler_steps_the_optimizer_learning_rate() -> None:
    backbone, head = _two_part_model()
    optim = OptimConfig(learning_rate=0.1, num_epochs=2, schedule="cosine")
    optimizer = build_optimizer(head, backbone, optim, ModelConfig())
    scheduler = build_scheduler(optimizer, optim, steps_per_epoch=5)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.1) and rates == sorted(rates, reverse=True)


def test_freeze_policies() -> None:
    assert not is_backbone_frozen(ModelConfig(), 0)
    assert is_backbone_frozen(ModelConfig(training_mode="feature_extraction"), 5)
    staged = ModelConfig(training_mode="freeze_then_unfreeze", unfreeze_after_epochs=2)
    assert [is_backbone_frozen(staged, epoch) for epoch in range(4)] == [True, True, False, False]
