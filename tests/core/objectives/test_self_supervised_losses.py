"""The pretraining losses on hand-computed cases, the rotation labels and the objective registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ptm_studio.core.config import PRETRAIN_LOSSES
from ptm_studio.core.objectives.pretrain_objectives import (
    PRETRAIN_OBJECTIVES,
    build_pretrain_objective,
    describe_objective,
)
from ptm_studio.core.objectives.self_supervised import (
    ContrastiveMarginObjective,
    NTXentObjective,
    ReconstructionObjective,
    RotationObjective,
    margin_pair_loss,
    nt_xent_loss,
    rotate_batch,
)


def test_margin_pair_loss_is_the_distance_for_positive_pairs() -> None:
    # A 3-4-5 triangle: the two points are exactly 5 apart.
    first = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    second = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    losses = margin_pair_loss(first, second, torch.tensor([1.0, 1.0]), margin=1.0)
    assert torch.allclose(losses, torch.tensor([5.0, 0.0]))


def test_margin_pair_loss_is_the_hinge_below_the_margin_for_negative_pairs() -> None:
    first = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    second = torch.tensor([[0.6, 0.8], [0.3, 0.4], [3.0, 4.0]])  # distances 1.0, 0.5, 5.0
    losses = margin_pair_loss(first, second, torch.tensor([0, 0, 0]), margin=2.0)
    assert torch.allclose(losses, torch.tensor([1.0, 1.5, 0.0]))


def test_margin_pair_loss_gradient_is_finite_for_identical_embeddings() -> None:
    # A collapsed batch gives D = 0, where the norm has no derivative; it must not produce NaN.
    first = torch.ones(2, 3, requires_grad=True)
    margin_pair_loss(first, torch.ones(2, 3), torch.tensor([1, 0]), margin=1.0).sum().backward()
    assert first.grad is not None and torch.isfinite(first.grad).all()


def test_margin_objective_averages_positive_and_shifted_negative_pairs() -> None:
    objective = ContrastiveMarginObjective(2, 16, margin=1.5)
    objective.projection = nn.Identity()  # type: ignore[assignment]
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    # Positives: D = 0 and D = sqrt(2). Negatives (shift by one): z1_0–z2_1 D = 2 → hinge 0,
    # z1_1–z2_0 D = sqrt(2) → hinge 1.5 − sqrt(2).
    expected = (0.0 + math.sqrt(2) + 0.0 + (1.5 - math.sqrt(2))) / 4
    output = objective(nn.Identity(), [first, second])
    assert output.loss.item() == pytest.approx(expected, abs=1e-6)


def _nt_xent_by_loops(first: torch.Tensor, second: torch.Tensor, temperature: float) -> float:
    rows = [vector / vector.norm() for vector in torch.cat([first, second])]
    count, batch_size = len(rows), first.shape[0]
    total = 0.0
    for anchor in range(count):
        positive = (anchor + batch_size) % count
        scores = {
            other: math.exp(float(rows[anchor] @ rows[other]) / temperature)
            for other in range(count)
            if other != anchor
        }
        total += -math.log(scores[positive] / sum(scores.values()))
    return total / count


@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_nt_xent_matches_a_loop_over_anchors_and_pairs(temperature: float) -> None:
    generator = torch.Generator().manual_seed(3)
    first = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    second = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    expected = _nt_xent_by_loops(first, second, temperature)
    assert nt_xent_loss(first, second, temperature).item() == pytest.approx(expected, rel=1e-9)


def test_nt_xent_is_low_when_views_agree_and_pictures_differ() -> None:
    distinct = torch.eye(4)
    agreeing = nt_xent_loss(distinct, distinct, 0.1).item()
    shuffled = nt_xent_loss(distinct, distinct.roll(1, dims=0), 0.1).item()
    assert agreeing < 0.01 < shuffled


def test_rotate_batch_turns_each_picture_by_its_own_quarter_turns() -> None:
    # An asymmetric 3×3 picture: every rotation of it is different.
    picture = np.arange(9, dtype=np.float32).reshape(3, 3)
    images = torch.from_numpy(np.stack([np.stack([picture] * 3)] * 4))
    rotated = rotate_batch(images, torch.tensor([0, 1, 2, 3]))
    for quarter_turns in range(4):
        expected = np.rot90(picture, quarter_turns).copy()
        for channel in range(3):
            assert np.array_equal(rotated[quarter_turns, channel].numpy(), expected)
    assert rotated[1, 0, 0].tolist() == [2.0, 5.0, 8.0]  # counter-clockwise: right column on top


def test_rotation_objective_labels_are_the_rotations_applied() -> None:
    torch.manual_seed(11)
    images = torch.randn(6, 3, 16, 16)
    seen: list[torch.Tensor] = []

    def recording_backbone(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch)
        return batch.flatten(1)[:, :8]

    objective = RotationObjective(8, 16)
    torch.manual_seed(5)
    objective(recording_backbone, [images])
    torch.manual_seed(5)
    labels = torch.randint(4, (6,))
    for index in range(6):
        expected = torch.rot90(images[index], int(labels[index]), dims=(1, 2))
        assert torch.equal(seen[0][index], expected)


def test_rotate_batch_refuses_non_square_pictures() -> None:
    with pytest.raises(ValueError, match="square"):
        rotate_batch(torch.zeros(1, 3, 8, 9), torch.tensor([1]))


@pytest.mark.parametrize("image_size", [16, 32, 48, 64])
def test_reconstruction_has_the_input_shape_and_its_loss_is_the_mean_squared_error(
    image_size: int,
) -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 32))
    objective = ReconstructionObjective(32, image_size)
    images = torch.randn(3, 3, image_size, image_size)
    output = objective(backbone, [images])
    reconstruction = output.extras["reconstruction"]
    assert reconstruction.shape == images.shape
    manual = ((images - reconstruction) ** 2).sum() / (3 * 3 * image_size * image_size)
    assert output.loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert output.embeddings.shape == (3, 32) and not output.embeddings.requires_grad


def test_reconstruction_decoder_stays_light() -> None:
    objective = ReconstructionObjective(256, 64)
    assert sum(parameter.numel() for parameter in objective.parameters()) < 1_000_000


@pytest.mark.parametrize("objective_class", [ContrastiveMarginObjective, NTXentObjective])
def test_two_view_objectives_need_two_pictures_per_batch(objective_class: type) -> None:
    objective = objective_class(4, 16)
    single = [torch.randn(1, 3, 16, 16), torch.randn(1, 3, 16, 16)]
    with pytest.raises(ValueError, match="at least 2 pictures"):
        objective(nn.Identity(), single)


def test_objectives_refuse_the_wrong_number_of_views() -> None:
    objective = NTXentObjective(4, 16)
    with pytest.raises(ValueError, match="needs 2 view"):
        objective(nn.Identity(), [torch.randn(2, 3, 16, 16)])


def test_registry_builds_every_objective_with_its_settings() -> None:
    assert set(PRETRAIN_OBJECTIVES) == set(PRETRAIN_LOSSES)  # every loss the settings offer
    for name, objective_class in PRETRAIN_OBJECTIVES.items():
        objective = build_pretrain_objective(name, 16, 32, margin=0.5, temperature=0.2)
        assert type(objective) is objective_class and objective.name == name
        assert objective.views_per_image in (1, 2)
        assert len(describe_objective(name)) > 20
    margin = build_pretrain_objective("contrastive_margin", 16, 32, margin=0.5, projection_dim=8)
    assert isinstance(margin, ContrastiveMarginObjective) and margin.margin == 0.5
    assert margin.projection(torch.zeros(1, 16)).shape == (1, 8)
    nt_xent = build_pretrain_objective("nt_xent", 16, 32, temperature=0.2)
    assert isinstance(nt_xent, NTXentObjective) and nt_xent.temperature == 0.2


def test_registry_names_the_known_objectives_for_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="nt_xent"):
        build_pretrain_objective("jigsaw", 16, 32)
    with pytest.raises(ValueError, match="rotation"):
        describe_objective("jigsaw")


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="Unknown pretraining settings"):
        RotationObjective(8, 16, temprature=0.5)
