"""Every pretraining objective trains the small CNN: gradients reach it and the loss falls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from ptm_studio.core.models.registry import build_backbone
from ptm_studio.core.objectives.pretrain_objectives import (
    PRETRAIN_OBJECTIVES,
    build_pretrain_objective,
)
from ptm_studio.core.objectives.self_supervised import PretrainObjective

IMAGE_SIZE = 16
BATCH_SIZE = 8


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions run several times faster on one thread than on two busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _pictures(generator: torch.Generator) -> torch.Tensor:
    """Smooth random colour fields with a bright block in one corner, so rotation is visible."""
    coarse = torch.randn(BATCH_SIZE, 3, 4, 4, generator=generator)
    pictures = torch.nn.functional.interpolate(coarse, size=IMAGE_SIZE, mode="bilinear")
    pictures[:, :, :5, :5] = 2.5
    return pictures


def _views(pictures: torch.Tensor, count: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Random flips and a little noise: enough for two views of one picture to differ."""
    views = []
    for _ in range(count):
        flip = torch.rand(BATCH_SIZE, generator=generator) < 0.5
        view = torch.where(flip[:, None, None, None], pictures.flip(3), pictures)
        views.append(view + 0.2 * torch.randn(view.shape, generator=generator))
    return views


def _objective(name: str) -> tuple[torch.nn.Module, PretrainObjective]:
    backbone, feature_dim = build_backbone("small_cnn")
    # A memory that is full after the first step: a filling one adds negatives, which raises
    # the loss while it fills.
    objective = build_pretrain_objective(
        name, feature_dim, IMAGE_SIZE, projection_dim=32, memory_size=4
    )
    objective.attach(backbone)  # as the pretraining task does
    return backbone, objective


@pytest.mark.parametrize("name", sorted(PRETRAIN_OBJECTIVES))
def test_gradients_reach_every_backbone_stage(name: str) -> None:
    torch.manual_seed(0)
    backbone, objective = _objective(name)
    generator = torch.Generator().manual_seed(1)
    views = _views(_pictures(generator), objective.views_per_image, generator)
    output = objective(backbone, views)
    output.loss.backward()
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert output.embeddings.shape == (BATCH_SIZE, 256) and not output.embeddings.requires_grad
    if name == "rotation":
        accuracy = output.extras["rotation_accuracy"]
        assert accuracy.ndim == 0 and 0.0 <= accuracy.item() <= 1.0
    convolutions = [module for module in backbone.modules() if isinstance(module, torch.nn.Conv2d)]
    for convolution in (convolutions[0], convolutions[-1]):
        assert convolution.weight.grad is not None
        assert convolution.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(PRETRAIN_OBJECTIVES))
def test_a_short_pretraining_run_lowers_the_loss(name: str) -> None:
    torch.manual_seed(0)
    backbone, objective = _objective(name)
    parameters = list(backbone.parameters()) + list(objective.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=2e-3)
    generator = torch.Generator().manual_seed(2)
    # Batches taken in turn from 4 batches' worth of pictures, as an epoch does: a memory of
    # 2 batches has let a picture's own older copy go before the picture comes back.
    pool = [_pictures(generator) for _ in range(4)]
    losses = []
    for step in range(60):
        pictures = pool[step % len(pool)]
        output = objective(backbone, _views(pictures, objective.views_per_image, generator))
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        losses.append(output.loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, losses
