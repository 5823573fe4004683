"""The last layer fitted on frozen features (objectives/head_fit.py), the first half of LP-FT."""

from __future__ import annotations

import torch
from torch import nn

from ptm_studio.core.objectives.head_fit import PENALTIES, _held_out_rows, fit_linear_head


def _blobs(
    num_classes: int, per_class: int, dims: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes as gaussian blobs around random centres, far from the origin and of very
    different spreads per feature (as a network's features are)."""
    generator = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(num_classes, dims, generator=generator) + 10
    scales = torch.logspace(-3, 1, dims)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    noise = torch.randn(len(labels), dims, generator=generator)
    return (centres[labels] + noise) * scales, labels


def test_the_fitted_layer_separates_separable_classes_and_keeps_its_shape() -> None:
    features, labels = _blobs(num_classes=4, per_class=30, dims=16, seed=0)
    layer = nn.Linear(16, 4)
    fit = fit_linear_head(layer, features, labels, torch.arange(len(labels)), seed=0)
    assert layer.weight.shape == (4, 16) and layer.bias.shape == (4,)
    predicted = layer(features).argmax(dim=1)
    assert float((predicted == labels).float().mean()) > 0.95
    assert fit.penalty in PENALTIES
    assert set(fit.held_out_loss) == set(PENALTIES)


def test_the_chosen_penalty_has_the_lowest_held_out_loss() -> None:
    features, labels = _blobs(num_classes=3, per_class=20, dims=8, seed=1)
    fit = fit_linear_head(nn.Linear(8, 3), features, labels, torch.arange(len(labels)), seed=3)
    assert fit.held_out_loss[fit.penalty] == min(fit.held_out_loss.values())


def test_a_tiny_spread_feature_gets_no_huge_weight() -> None:
    """Scaling each feature by its own spread would give a near-constant feature a weight of
    about 1/spread, and a network whose features move a little would then explode."""
    features, labels = _blobs(num_classes=2, per_class=20, dims=4, seed=2)
    features[:, 0] = 1.0 + 1e-6 * torch.randn(len(labels))
    layer = nn.Linear(4, 2)
    fit_linear_head(layer, features, labels, torch.arange(len(labels)), seed=0)
    assert float(layer.weight.detach()[:, 0].abs().max()) < 1e3


def test_copies_of_one_picture_are_held_out_together() -> None:
    """Augmented copies share their picture: a held-out picture seen through a copy would make
    the held-out loss flatter the weakest penalty."""
    pictures = torch.arange(50).repeat(4)  # 4 copies of 50 pictures
    held_out = _held_out_rows(pictures, seed=0)
    out = set(pictures[held_out].tolist())
    assert len(out) == 10  # a fifth of the pictures
    assert out.isdisjoint(pictures[~held_out].tolist())
    assert int(held_out.sum()) == 4 * len(out)


def test_the_fit_is_the_same_every_time_and_leaves_the_random_state_alone() -> None:
    features, labels = _blobs(num_classes=3, per_class=10, dims=6, seed=5)
    first, second = nn.Linear(6, 3), nn.Linear(6, 3)
    state = torch.get_rng_state()
    fit_linear_head(first, features, labels, torch.arange(len(labels)), seed=9)
    fit_linear_head(second, features, labels, torch.arange(len(labels)), seed=9)
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)
    assert torch.equal(torch.get_rng_state(), state)
