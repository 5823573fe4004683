"""Signals that tell, without labels, whether pretraining is learning or has collapsed."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as functional
from torch import nn

COLLAPSE_WARNING_THRESHOLD = 0.1
LOW_SPREAD_THRESHOLD = 0.3
# Queries per similarity block: 1024 × 10 000 train features is 40 MB of float32.
KNN_QUERY_CHUNK = 1024
PROBE_RIDGE = 1e-2  # the linear probe's regularisation, relative to the number of pictures


def embedding_spread(embeddings: torch.Tensor) -> float:
    """How spread out a batch's embeddings are: ≈ 1 when well spread, → 0 when collapsed.

    Rows are L2-normalised; spread = sqrt(F) · mean_d std_b(z_bd). For directions spread evenly
    over the sphere each coordinate has standard deviation 1/sqrt(F), so the value is ≈ 1; when
    every picture maps to the same point it is 0. This is SimSiam's collapse monitor (Chen & He
    2021, who plot the std itself, ≈ 1/sqrt(F)) scaled so the value does not depend on F.
    Returns NaN for fewer than 2 embeddings, where a spread has no meaning.
    """
    if embeddings.ndim != 2:
        raise ValueError(
            f"Embeddings must be [batch, features], got shape {tuple(embeddings.shape)}."
        )
    if embeddings.shape[0] < 2:
        return math.nan
    normalised = functional.normalize(embeddings.detach().float(), dim=1)
    per_dimension = normalised.std(dim=0)
    return float(per_dimension.mean() * math.sqrt(embeddings.shape[1]))


def describe_spread(value: float) -> str:
    """Plain-language reading of ``embedding_spread`` for the GUI."""
    if math.isnan(value):
        return "Not enough pictures in the batch to judge the spread."
    if value < COLLAPSE_WARNING_THRESHOLD:
        return (
            "Collapsed: the network describes every picture almost the same way, so it is not "
            "learning anything useful. Try another objective, a lower learning rate or a larger "
            "batch."
        )
    if value < LOW_SPREAD_THRESHOLD:
        return (
            "Low: the pictures' descriptions are bunched together. Normal early on; worrying if "
            "it keeps falling."
        )
    return "Healthy: the network tells pictures apart."


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
) -> float:
    """Share of query pictures whose class a weighted k-nearest-neighbour vote gets right.

    Features are L2-normalised; each query's k most cosine-similar train features vote for their
    class with weight exp(similarity / temperature) (Wu et al. 2018, as in DINO's evaluation);
    the class with the largest total wins. k is capped at the number of train features. Queries
    are processed in blocks so 10 000 × 10 000 features never builds the full similarity matrix.
    """
    _check_labelled(train_features, train_labels, "train")
    _check_labelled(query_features, query_labels, "query")
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be at least 1 and temperature above 0, got {k}, {temperature}.")
    train = functional.normalize(train_features.float(), dim=1)
    train_labels = train_labels.long().to(train.device)
    num_classes = int(max(train_labels.max(), query_labels.max())) + 1
    neighbours = min(k, train.shape[0])
    correct = 0
    for start in range(0, query_features.shape[0], KNN_QUERY_CHUNK):
        queries = functional.normalize(
            query_features[start : start + KNN_QUERY_CHUNK].float().to(train.device), dim=1
        )
        predictions = _vote(queries @ train.T, train_labels, neighbours, temperature, num_classes)
        expected = query_labels[start : start + KNN_QUERY_CHUNK].long().to(train.device)
        correct += int((predictions == expected).sum())
    return correct / query_features.shape[0]


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    ridge: float = PROBE_RIDGE,
) -> float:
    """Share of query pictures a linear classifier on the frozen features gets right: what a
    finetuned head could make of them, which k-NN (distances only) can miss.

    Features are standardised by the train features' mean and spread; the classifier is ridge
    regression onto one-hot classes, W = (XᵀX + λ·N·I)⁻¹ XᵀY with a bias column, solved in
    closed form (float64): no learning rate, no random draws, the same answer every time. The
    predicted class is the largest output.
    """
    _check_labelled(train_features, train_labels, "train")
    _check_labelled(query_features, query_labels, "query")
    train = train_features.double().cpu()
    mean, spread = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    design = _with_bias((train - mean) / spread)
    num_classes = int(max(train_labels.max(), query_labels.max())) + 1
    targets = functional.one_hot(train_labels.long().cpu(), num_classes).double()
    gram = design.T @ design + ridge * len(design) * torch.eye(design.shape[1], dtype=torch.float64)
    weights = torch.linalg.solve(gram, design.T @ targets)
    queries = _with_bias((query_features.double().cpu() - mean) / spread)
    predictions = (queries @ weights).argmax(dim=1)
    return float((predictions == query_labels.long().cpu()).double().mean())


def _with_bias(features: torch.Tensor) -> torch.Tensor:
    return torch.cat([features, features.new_ones(len(features), 1)], dim=1)


def _vote(
    similarity: torch.Tensor,
    train_labels: torch.Tensor,
    neighbours: int,
    temperature: float,
    num_classes: int,
) -> torch.Tensor:
    top_similarity, top_index = similarity.topk(neighbours, dim=1)
    weights = (top_similarity / temperature).exp()
    votes = similarity.new_zeros(similarity.shape[0], num_classes)
    votes.scatter_add_(1, train_labels[top_index], weights)
    return votes.argmax(dim=1)


def _check_labelled(features: torch.Tensor, labels: torch.Tensor, role: str) -> None:
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"The {role} features must be a non-empty [count, features] tensor.")
    if labels.shape != (features.shape[0],):
        raise ValueError(f"The {role} labels must have one entry per {role} feature vector.")
    if bool((labels < 0).any()):
        raise ValueError(f"Some {role} pictures have no class; measuring features needs labels.")


def extract_features(
    backbone: nn.Module,
    loader: Iterable[Sequence[Any]],
    device: torch.device | str,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backbone features ``[N, F]`` and labels ``[N]`` (both on the CPU) for every batch.
    ``autocast_dtype``: the run's reduced precision, as its training steps compute (a
    pretraining epoch's end computes the features of every labelled picture: bf16 on a CPU
    that has it took a third of the time, issue 12), the features returned in float32.

    The loader yields (images, labels) or (images, labels, positions); when images is a list
    of views (a MultiViewTransform) the first view is used. A negative position marks a picture that
    could no longer be read (MarkUnreadable): it is left out. The backbone runs in eval mode (BatchNorm uses its running statistics)
    under inference_mode and gets its previous train/eval mode back afterwards.
    """
    device_type = torch.device(device).type
    precision = (
        torch.autocast(device_type=device_type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    was_training = backbone.training
    backbone.eval()
    features: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    try:
        with torch.inference_mode():
            for images, batch_labels, *positions in loader:
                batch = images[0] if isinstance(images, list) else images
                batch_labels = torch.as_tensor(batch_labels).cpu()
                if positions:
                    readable = torch.as_tensor(positions[0]) >= 0
                    batch, batch_labels = batch[readable], batch_labels[readable]
                if len(batch_labels):
                    with precision:
                        computed = backbone(batch.to(device))
                    features.append(computed.float().cpu())
                    labels.append(batch_labels)
    finally:
        backbone.train(was_training)
    if not features:
        raise ValueError("There are no pictures to compute features for.")
    return torch.cat(features), torch.cat(labels)
