"""Label-free health signals: the collapse detector, the k-NN and linear probes, feature
extraction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ptm_studio.core.objectives.pretrain_health import (
    COLLAPSE_WARNING_THRESHOLD,
    describe_spread,
    embedding_spread,
    extract_features,
    knn_accuracy,
    linear_probe_accuracy,
)


def test_spread_is_about_one_for_random_gaussian_embeddings() -> None:
    generator = torch.Generator().manual_seed(0)
    spread = embedding_spread(torch.randn(512, 64, generator=generator))
    assert 0.8 < spread < 1.2


def test_spread_is_zero_when_every_picture_maps_to_the_same_point() -> None:
    collapsed = torch.tensor([[0.3, -1.0, 2.0]]).repeat(16, 1)
    assert embedding_spread(collapsed) == pytest.approx(0.0, abs=1e-6)
    assert "Collapsed" in describe_spread(embedding_spread(collapsed))


def test_spread_ignores_scale_but_sees_a_shared_direction() -> None:
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(256, 32, generator=generator)
    assert embedding_spread(100 * noise) == pytest.approx(embedding_spread(noise), rel=1e-5)
    # A large common offset makes every embedding point the same way: nearly collapsed.
    assert embedding_spread(noise + 50.0) < COLLAPSE_WARNING_THRESHOLD


def test_spread_is_nan_for_a_single_embedding() -> None:
    value = embedding_spread(torch.randn(1, 8))
    assert math.isnan(value)
    assert "Not enough" in describe_spread(value)


def test_describe_spread_reads_healthy_low_and_collapsed() -> None:
    assert describe_spread(1.0).startswith("Healthy")
    assert describe_spread(0.2).startswith("Low")
    assert describe_spread(0.05).startswith("Collapsed")


def _clusters(per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centres = torch.eye(4, 16) * 10
    labels = torch.arange(4).repeat_interleave(per_class)
    return centres[labels] + torch.randn(len(labels), 16, generator=generator), labels


def test_knn_accuracy_is_perfect_on_well_separated_clusters() -> None:
    generator = torch.Generator().manual_seed(2)
    train, train_labels = _clusters(30, generator)
    query, query_labels = _clusters(10, generator)
    assert knn_accuracy(train, train_labels, query, query_labels) == 1.0


def test_knn_accuracy_is_near_chance_on_random_labels() -> None:
    generator = torch.Generator().manual_seed(3)
    train = torch.randn(2000, 32, generator=generator)
    query = torch.randn(1500, 32, generator=generator)
    train_labels = torch.randint(4, (2000,), generator=generator)
    query_labels = torch.randint(4, (1500,), generator=generator)
    accuracy = knn_accuracy(train, train_labels, query, query_labels)
    assert 0.2 < accuracy < 0.3


def test_knn_accuracy_caps_k_and_works_across_query_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ptm_studio.core.objectives.pretrain_health.KNN_QUERY_CHUNK", 3)
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    query = torch.tensor([[1.0, 0.1], [0.1, 1.0], [2.0, 0.0], [0.0, 3.0], [1.0, -0.2]])
    # With k = 20 capped at 2, the nearer neighbour's exp(sim/0.07) weight dominates the vote.
    accuracy = knn_accuracy(train, torch.tensor([0, 1]), query, torch.tensor([0, 1, 0, 1, 1]), k=20)
    assert accuracy == pytest.approx(4 / 5)


def test_knn_accuracy_refuses_unlabelled_pictures() -> None:
    with pytest.raises(ValueError, match="no class"):
        knn_accuracy(
            torch.randn(3, 2), torch.tensor([0, -1, 1]), torch.randn(2, 2), torch.tensor([0, 1])
        )


def test_the_linear_probe_is_perfect_on_well_separated_clusters_and_chance_on_random_labels() -> (
    None
):
    generator = torch.Generator().manual_seed(2)
    train, train_labels = _clusters(30, generator)
    query, query_labels = _clusters(10, generator)
    assert linear_probe_accuracy(train, train_labels, query, query_labels) == 1.0
    noise = torch.randn(2000, 32, generator=generator)
    random_labels = torch.randint(4, (2000,), generator=generator)
    chance = linear_probe_accuracy(
        noise[:1500], random_labels[:1500], noise[1500:], random_labels[1500:]
    )
    assert 0.18 < chance < 0.32


def test_the_linear_probe_finds_a_direction_that_nearest_neighbours_miss() -> None:
    """The class is told by one of 32 numbers; the other 31 are larger noise. Distances are
    dominated by the noise (k-NN near chance), a linear classifier reads the one number."""
    generator = torch.Generator().manual_seed(4)
    labels = torch.randint(2, (1200,), generator=generator)
    features = 3.0 * torch.randn(1200, 32, generator=generator)
    features[:, 0] = labels.float() * 2 - 1 + 0.3 * torch.randn(1200, generator=generator)
    knn = knn_accuracy(features[:800], labels[:800], features[800:], labels[800:])
    probe = linear_probe_accuracy(features[:800], labels[:800], features[800:], labels[800:])
    assert knn < 0.75 and probe > 0.95
    again = linear_probe_accuracy(features[:800], labels[:800], features[800:], labels[800:])
    assert again == probe  # closed form: no random draws


def test_extract_features_runs_in_eval_mode_and_restores_training() -> None:
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Dropout(0.9))
    backbone.train()
    images = torch.randn(10, 3, 2, 2)
    loader = DataLoader(TensorDataset(images, torch.arange(10)), batch_size=4)
    features, labels = extract_features(backbone, loader, "cpu")
    assert backbone.training
    assert torch.equal(labels, torch.arange(10))
    # Eval mode turns dropout off, so the features are the plain linear map.
    with torch.no_grad():
        assert torch.allclose(features, backbone[1](images.flatten(1)), atol=1e-6)
    assert not features.is_inference()


def test_extract_features_takes_the_first_of_several_views() -> None:
    views = [torch.ones(2, 3), torch.zeros(2, 3)]
    features, _ = extract_features(nn.Identity(), [(views, torch.tensor([0, 1]))], "cpu")
    assert torch.equal(features, torch.ones(2, 3))
