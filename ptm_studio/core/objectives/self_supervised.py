"""Self-supervised pretraining objectives: learn from unlabelled pictures, keep only the backbone.

Each objective is an nn.Module that owns its heads (decoder, projection, rotation classifier), so
the optimiser trains them with the backbone and saving the backbone alone drops them. Formulas are
stated in each class's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as functional
from torch import nn

from ptm_studio.core.objectives.decoders import FeatureDecoder, ProjectionHead

SETTING_NAMES = frozenset({"margin", "temperature", "projection_dim", "memory_size"})
NUM_ROTATIONS = 4
# projection_dim and memory_size are whole numbers, margin and temperature are not; one type lets
# a single call pass them all to whichever objective is chosen.
SettingValue = int | float


@dataclass(frozen=True)
class PretrainOutput:
    """One batch's result: the loss to minimise and detached signals for health displays.

    ``embeddings`` are the backbone features ``[B, F]`` of the first view (what the backbone saw);
    ``extras`` holds objective-specific detached tensors ("reconstruction", "rotation_accuracy").
    """

    loss: torch.Tensor
    embeddings: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class PretrainObjective(nn.Module):
    """Base class: ``forward(backbone, views)`` → PretrainOutput.

    ``views`` holds ``views_per_image`` normalised tensors of shape ``[B, 3, S, S]``. Subclasses
    take their own keyword settings; settings meant for other objectives (margin, temperature,
    projection_dim, memory_size) are accepted and ignored so one call can build any objective.
    """

    name: ClassVar[str] = ""
    views_per_image: ClassVar[int] = 1
    transform_strength: ClassVar[str] = "light"
    description: ClassVar[str] = ""

    def __init__(self, feature_dim: int, image_size: int, **settings: SettingValue) -> None:
        super().__init__()
        unknown = sorted(set(settings) - SETTING_NAMES)
        if unknown:
            raise ValueError(
                f"Unknown pretraining settings {unknown}; known: {sorted(SETTING_NAMES)}."
            )
        if feature_dim < 1:
            raise ValueError(f"feature_dim must be at least 1, got {feature_dim}.")
        self.feature_dim = feature_dim
        self.image_size = image_size

    def attach(self, backbone: nn.Module) -> None:
        """Called once with the backbone it will train, before any step (MoCo keeps a copy)."""

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        raise NotImplementedError

    def _check_views(self, views: list[torch.Tensor]) -> None:
        if len(views) != self.views_per_image:
            raise ValueError(
                f"The {self.name} objective needs {self.views_per_image} view(s) of each "
                f"picture, got {len(views)}."
            )


# --- pure loss functions (tested on hand-computed cases) -------------------------------------


def margin_pair_loss(
    first: torch.Tensor, second: torch.Tensor, same: torch.Tensor, margin: float
) -> torch.Tensor:
    """Per-pair loss y·D + (1−y)·max(0, m − D), with D = ‖first − second‖₂ row by row.

    ``same`` is 1 for a positive pair and 0 for a negative one; returns a ``[num_pairs]`` tensor.
    """
    distance = torch.linalg.vector_norm(first - second, dim=1)
    same = same.to(distance.dtype)
    return same * distance + (1 - same) * functional.relu(margin - distance)


def nt_xent_loss(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent: mean over the 2B anchors of −log softmax(sim/τ) at the other view.

    ``first`` and ``second`` are ``[B, P]`` projections of two views (normalised here). Each row's
    own similarity is excluded from the softmax by setting it to −inf.
    """
    batch_size = first.shape[0]
    embeddings = functional.normalize(torch.cat([first, second]), dim=1)
    similarity = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(2 * batch_size, dtype=torch.bool, device=similarity.device)
    similarity = similarity.masked_fill(self_mask, -math.inf)
    # Anchor i's positive is i + B (and i + B's is i).
    positives = torch.arange(2 * batch_size, device=similarity.device).roll(batch_size)
    return functional.cross_entropy(similarity, positives)


def across_processes(projections: torch.Tensor) -> torch.Tensor:
    """Under torchrun, every process's projections, in rank order, with gradients flowing back
    to the process each came from: NT-Xent then compares each picture with the whole step's
    batch, not only its own share (2N − 2 negatives instead of 2N/P − 2). Every process
    computes the same loss over the whole batch; the gather's backward sums what each process
    sent back, and DDP's mean over the processes makes that exactly the gradient of the one
    loss. Unchanged in one process, and while measuring (no gradients: no exchange)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return projections
    if not torch.is_grad_enabled():
        return projections
    gathered: torch.Tensor = _GatherWithGradients.apply(projections)
    return gathered


def rows_of_every_process(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Under torchrun, every process's ``rows`` in rank order (no gradients flow back) and
    where this process's begin among them; ``(rows, 0)`` in one process. Every process must
    call it at the same point. The processes may hold different numbers of rows (a picture
    that could not be read leaves its batch one short): each sends its count first, then its
    rows padded to the largest count."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows, 0
    world_size = dist.get_world_size()
    rows = rows.detach().contiguous()
    count = torch.tensor([len(rows)], dtype=torch.int64, device=rows.device)
    counts = [torch.empty_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    sizes = [int(size) for size in torch.cat(counts).tolist()]
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: len(rows)] = rows
    pieces = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(pieces, padded)
    gathered = torch.cat([piece[:size] for piece, size in zip(pieces, sizes, strict=True)])
    return gathered, sum(sizes[: dist.get_rank()])


class _GatherWithGradients(torch.autograd.Function):
    """rows_of_every_process whose backward sums the processes' gradients and keeps this
    process's rows (an all-reduce: it works on every backend; gloo has no reduce-scatter)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, rows: torch.Tensor) -> torch.Tensor:
        gathered, start = rows_of_every_process(rows)
        ctx.start, ctx.rows = start, len(rows)  # type: ignore[attr-defined]
        return gathered

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, gradient: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        summed = gradient.contiguous().clone()  # the same shape on every process: all rows
        dist.all_reduce(summed)
        start = ctx.start  # type: ignore[attr-defined]
        return summed[start : start + ctx.rows]  # type: ignore[attr-defined]


def rotate_batch(images: torch.Tensor, rotation_indices: torch.Tensor) -> torch.Tensor:
    """Turns image i counter-clockwise by ``rotation_indices[i]`` × 90° (torch.rot90, dims 2→3).

    The images must be square so every rotation keeps the batch shape.
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"Rotation needs square pictures, got {tuple(images.shape[-2:])}.")
    rotated = images.clone()
    for quarter_turns in range(1, NUM_ROTATIONS):
        chosen = rotation_indices == quarter_turns
        if chosen.any():
            rotated[chosen] = torch.rot90(images[chosen], quarter_turns, dims=(2, 3))
    return rotated


# --- objectives -------------------------------------------------------------------------------


class ReconstructionObjective(PretrainObjective):
    """Autoencoding: a light decoder redraws each view from its pooled backbone features.

    x̂ = decoder(backbone(x)); L = 1/(B·3·S·S) Σ (x − x̂)², the mean squared error over every
    normalised pixel value. extras["reconstruction"] = x̂ (detached).
    """

    name = "reconstruction"
    views_per_image = 1
    transform_strength = "light"
    description = (
        "Learns by redrawing each picture from a compact summary of it. Simple and steady; "
        "it learns colours and overall shapes well, fine details less so."
    )

    def __init__(self, feature_dim: int, image_size: int, **settings: SettingValue) -> None:
        super().__init__(feature_dim, image_size, **settings)
        self.decoder = FeatureDecoder(feature_dim, image_size)

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        self._check_views(views)
        images = views[0]
        features = backbone(images)
        reconstruction = self.decoder(features)
        loss = functional.mse_loss(reconstruction, images)
        return PretrainOutput(
            loss=loss,
            embeddings=features.detach(),
            extras={"reconstruction": reconstruction.detach()},
        )


class TwoViewObjective(PretrainObjective):
    """Shared parts of the two-view objectives: a projection head and one pass over both views."""

    views_per_image = 2
    transform_strength = "contrastive"

    def __init__(
        self,
        feature_dim: int,
        image_size: int,
        *,
        projection_dim: SettingValue = 128,
        **settings: SettingValue,
    ) -> None:
        super().__init__(feature_dim, image_size, **settings)
        if projection_dim != int(projection_dim):
            raise ValueError(f"projection_dim must be a whole number, got {projection_dim}.")
        self.projection = ProjectionHead(feature_dim, int(projection_dim))

    def _project_views(
        self, backbone: nn.Module, views: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(first-view features, first projection, second projection)."""
        self._check_views(views)
        if views[0].shape[0] < 2:
            raise ValueError(
                f"The {self.name} objective compares pictures with each other, so each batch "
                "needs at least 2 pictures; raise the batch size or add pictures."
            )
        # One backbone pass over both views: BatchNorm then sees one batch, as in SimCLR.
        features = backbone(torch.cat(views))
        first_features, second_features = features.chunk(2)
        return first_features, self.projection(first_features), self.projection(second_features)


class ContrastiveMarginObjective(TwoViewObjective):
    """Contrastive loss with a margin on pairs of views (linear form of Hadsell et al. 2006).

    z = normalise(projection(backbone(view))). Pairs: (z1_i, z2_i) positive, y = 1; and
    (z1_i, z2_{(i+1) mod B}) negative, y = 0. Shifting by one gives every picture exactly one
    negative partner that is a different picture, without sampling. D = ‖z_a − z_b‖₂ and
    L = 1/(2B) Σ_pairs [y·D + (1 − y)·max(0, m − D)]. Hadsell et al. square both terms
    (y·D² + (1 − y)·max(0, m − D)²); PTM Studio uses the linear form. Needs B ≥ 2.
    """

    name = "contrastive_margin"
    description = (
        "Learns that two altered copies of the same picture belong together and that different "
        "pictures should stay at least a set distance apart (the margin)."
    )

    def __init__(
        self, feature_dim: int, image_size: int, *, margin: float = 1.0, **settings: SettingValue
    ) -> None:
        super().__init__(feature_dim, image_size, **settings)
        if margin <= 0:
            raise ValueError(f"The margin must be above 0, got {margin}.")
        self.margin = float(margin)

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        features, first, second = self._project_views(backbone, views)
        first = functional.normalize(first, dim=1)
        second = functional.normalize(second, dim=1)
        batch_size = first.shape[0]
        pairs_first = torch.cat([first, first])
        pairs_second = torch.cat([second, second.roll(-1, dims=0)])
        same = torch.cat([first.new_ones(batch_size), first.new_zeros(batch_size)])
        loss = margin_pair_loss(pairs_first, pairs_second, same, self.margin).mean()
        return PretrainOutput(loss=loss, embeddings=features.detach())


class NTXentObjective(TwoViewObjective):
    """SimCLR (Chen et al. 2020): normalised-temperature cross-entropy over 2B projections.

    z = normalise(projection(backbone(view))) for both views, 2B rows; s_ij = z_i·z_j / τ with
    s_ii = −inf. For anchor i with positive p(i) (its other view):
    ℓ_i = −log(exp(s_{i,p(i)}) / Σ_{j≠i} exp(s_ij)); L = 1/(2B) Σ_i ℓ_i. Needs B ≥ 2.
    """

    name = "nt_xent"
    description = (
        "Learns to pick out, among all pictures in a batch, the altered copy of each picture "
        "(SimCLR). Usually the strongest choice; works best with larger batches."
    )

    def __init__(
        self,
        feature_dim: int,
        image_size: int,
        *,
        temperature: float = 0.5,
        **settings: SettingValue,
    ) -> None:
        super().__init__(feature_dim, image_size, **settings)
        if temperature <= 0:
            raise ValueError(f"The temperature must be above 0, got {temperature}.")
        self.temperature = float(temperature)

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        features, first, second = self._project_views(backbone, views)
        loss = nt_xent_loss(across_processes(first), across_processes(second), self.temperature)
        return PretrainOutput(loss=loss, embeddings=features.detach())


class RotationObjective(PretrainObjective):
    """Rotation prediction (Gidaris et al. 2018): guess by how many quarter turns a view was turned.

    k_i ~ Uniform{0, 1, 2, 3} per picture (torch.randint, the global generator, so seeding
    reproduces it); x'_i = rot90(x_i, k_i); logits = Linear(F → 4)(backbone(x'));
    L = 1/B Σ_i −log softmax(logits_i)[k_i]. extras["rotation_accuracy"] = share of k_i guessed.
    The embeddings are those of the rotated views, the pictures the backbone actually saw.
    """

    name = "rotation"
    views_per_image = 1
    transform_strength = "light"
    description = (
        "Learns by guessing how far each picture was turned (0, 90, 180 or 270 degrees). Fast; "
        "works when pictures have a natural 'up', less so for specimens seen at any angle."
    )

    def __init__(self, feature_dim: int, image_size: int, **settings: SettingValue) -> None:
        super().__init__(feature_dim, image_size, **settings)
        self.classifier = nn.Linear(feature_dim, NUM_ROTATIONS)

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        self._check_views(views)
        images = views[0]
        rotation_indices = torch.randint(NUM_ROTATIONS, (images.shape[0],)).to(images.device)
        features = backbone(rotate_batch(images, rotation_indices))
        logits = self.classifier(features)
        loss = functional.cross_entropy(logits, rotation_indices)
        accuracy = (logits.detach().argmax(dim=1) == rotation_indices).float().mean()
        return PretrainOutput(
            loss=loss, embeddings=features.detach(), extras={"rotation_accuracy": accuracy}
        )
