"""Self-supervised objectives that work with the small batches a laptop affords.

SimCLR's NT-Xent compares each picture with the other pictures of its batch: with a batch of 32
that is 62 negatives, and contrastive learning is known to need many more. Two answers:

* **MoCo** (:class:`MoCoObjective`, He et al. 2020): the keys of the last ``memory_size``
  pictures, made by a slowly following copy of the network, serve as extra negatives, so a
  batch of 32 with a memory of 1024 compares each picture with 2,079 others. The memory and the
  copy are part of the objective: saved in the resumable checkpoint, so a resumed run goes on
  with the same negatives.
* **VICReg** (:class:`VICRegObjective`, Bardes, Ponce and LeCun 2022) needs no negatives at
  all: the two views' embeddings are pulled together while each dimension is kept spread out
  (variance) and the dimensions apart from each other (covariance), which is what stops the
  network from giving every picture the same output.

Lightly has both kinds, but as a large package with its own transforms and training loop
conventions; these are a few lines each, stated in formulas and tested on hand-made cases.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as functional
from torch import nn

from ptm_studio.core.objectives.self_supervised import (
    PretrainOutput,
    SettingValue,
    TwoViewObjective,
    across_processes,
    rows_of_every_process,
)

KEY_MOMENTUM = 0.99  # MoCo's 0.999 suits hundreds of epochs; a few dozen need a quicker copy
VICREG_INVARIANCE, VICREG_VARIANCE, VICREG_COVARIANCE = 25.0, 25.0, 1.0  # the paper's weights
VICREG_TARGET_STD = 1.0
VICREG_EPSILON = 1e-4


def info_nce_with_memory(
    queries: torch.Tensor,
    keys: torch.Tensor,
    memory: torch.Tensor,
    temperature: float,
    first_key: int = 0,
) -> torch.Tensor:
    """InfoNCE of B queries against the batch's keys and the ``memory``'s rows (earlier keys,
    already normalised): mean over i of −log(exp(q_i·k_(s+i)/τ) / Σ_c exp(q_i·c/τ)) over the
    candidates c = the batch's keys, then the memory's. The other pictures' keys are negatives.
    ``first_key`` s: under torchrun the keys are every process's and this process's queries
    match those from s on.

    With an empty memory this is the in-batch loss. A batch cut in two halves A and C, each with
    the other half's keys as its memory, gives exactly the two halves' shares of the whole
    batch's in-batch loss: the memory lets a small batch see what a larger one would.
    """
    queries = functional.normalize(queries, dim=1)
    candidates = torch.cat([functional.normalize(keys, dim=1), memory.to(queries.dtype)])
    logits = queries @ candidates.T / temperature
    positives = first_key + torch.arange(len(queries), device=logits.device)
    return functional.cross_entropy(logits, positives)


def vicreg_loss(first: torch.Tensor, second: torch.Tensor) -> dict[str, torch.Tensor]:
    """VICReg on two views' embeddings ``[B, D]``: the weighted sum and its three terms.

    invariance = 1/(B·D) Σ ‖z − z'‖²; variance(Z) = 1/D Σ_j max(0, γ − √(Var(z_j) + ε));
    covariance(Z) = 1/D Σ_{i≠j} C(Z)_ij² with C the covariance matrix;
    loss = λ·invariance + μ·(variance(Z) + variance(Z')) + ν·(covariance(Z) + covariance(Z')).
    """
    invariance = functional.mse_loss(first, second)
    variance = _variance_term(first) + _variance_term(second)
    covariance = _covariance_term(first) + _covariance_term(second)
    loss = (
        VICREG_INVARIANCE * invariance + VICREG_VARIANCE * variance + VICREG_COVARIANCE * covariance
    )
    return {"loss": loss, "invariance": invariance, "variance": variance, "covariance": covariance}


def _variance_term(embeddings: torch.Tensor) -> torch.Tensor:
    std = torch.sqrt(embeddings.var(dim=0) + VICREG_EPSILON)
    return functional.relu(VICREG_TARGET_STD - std).mean()


def _covariance_term(embeddings: torch.Tensor) -> torch.Tensor:
    count, dimensions = embeddings.shape
    centred = embeddings - embeddings.mean(dim=0)
    covariance = centred.T @ centred / max(1, count - 1)
    off_diagonal = covariance - torch.diag(torch.diagonal(covariance))
    return off_diagonal.pow(2).sum() / dimensions


class MoCoObjective(TwoViewObjective):
    """MoCo (He et al. 2020, v2's projection head and symmetric form): the keys come from a
    slowly following copy of the network (weights θ_k ← m·θ_k + (1 − m)·θ before each step,
    m = KEY_MOMENTUM), and the last ``memory_size`` pictures' keys stay as extra negatives. q = projection(backbone(view)), k = key copy of the same;
    L = ½·[InfoNCE(q₁, k₂, memory) + InfoNCE(q₂, k₁, memory)], see :func:`info_nce_with_memory`.
    After each training batch its keys (both views, normalised) replace the oldest rows.

    Measured on a toy set (4 batches of 8 pictures, the small CNN, 120 steps), which is why it
    is built so: with keys from the learning network itself (no copy) and a memory of 16
    pictures the loss stuck at chance (log 47) from the third step on, the memory going stale
    as the network learns; with the copy normalising by the batch-norm statistics it follows
    (eval mode) its early keys were nearly all alike and the loss stuck at chance too; with the
    copy normalising each batch by its own statistics, as MoCo does on one device, the loss fell
    from 3.4 to 2.4. (Across several graphics cards MoCo shuffles the keys' batches so that
    batch statistics cannot give a pair away; on one device that is not needed to learn.)"""

    name = "moco"
    memory: torch.Tensor  # buffers (registered in __init__), saved with the objective
    memory_filled: torch.Tensor
    memory_next: torch.Tensor
    description = (
        "Like Contrastive (SimCLR), and also compares each picture with the last thousand or "
        "so pictures seen (MoCo), not only those of its batch: better with the small batches a "
        "laptop can afford."
    )

    def __init__(
        self,
        feature_dim: int,
        image_size: int,
        *,
        temperature: float = 0.5,
        memory_size: SettingValue = 1024,
        projection_dim: SettingValue = 128,
        **settings: SettingValue,
    ) -> None:
        super().__init__(feature_dim, image_size, projection_dim=projection_dim, **settings)
        if temperature <= 0:
            raise ValueError(f"The temperature must be above 0, got {temperature}.")
        if memory_size != int(memory_size) or memory_size < 0:
            raise ValueError(f"memory_size must be a whole number of pictures, got {memory_size}.")
        self.temperature = float(temperature)
        self.key_backbone: nn.Module | None = None  # the backbone's copy, see attach()
        self.key_projection = _frozen_copy(self.projection)
        rows = 2 * int(memory_size)  # two views a picture
        self.register_buffer("memory", torch.zeros(rows, int(projection_dim)))
        self.register_buffer("memory_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("memory_next", torch.zeros((), dtype=torch.long))

    def attach(self, backbone: nn.Module) -> None:
        self.key_backbone = _frozen_copy(backbone)

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        if self.key_backbone is None:
            raise RuntimeError("MoCo needs attach(backbone) before its first step")
        features, first, second = self._project_views(backbone, views)
        if self.training:
            self._follow(backbone, self.key_backbone)
        with torch.no_grad():
            keys = self.key_projection(self.key_backbone(torch.cat(views)))
            first_keys, second_keys = keys.float().chunk(2)
        # Under torchrun a training step's keys are every process's (negatives for each
        # query, and all remembered: every process keeps the same memory, as one would).
        learning = self.training and torch.is_grad_enabled()
        start = 0
        if learning:
            first_keys, start = rows_of_every_process(first_keys)
            second_keys, _ = rows_of_every_process(second_keys)
        kept = self.memory[: int(self.memory_filled)]
        loss = 0.5 * (
            info_nce_with_memory(first.float(), second_keys, kept, self.temperature, start)
            + info_nce_with_memory(second.float(), first_keys, kept, self.temperature, start)
        )
        if self.training:
            self._remember(torch.cat([first_keys, second_keys]))
        return PretrainOutput(loss=loss, embeddings=features.detach())

    @torch.no_grad()
    def _follow(self, backbone: nn.Module, key_backbone: nn.Module) -> None:
        """The key copy takes a small step towards the learning network (once a batch)."""
        _move_towards(key_backbone, backbone, KEY_MOMENTUM)
        _move_towards(self.key_projection, self.projection, KEY_MOMENTUM)

    @torch.no_grad()
    def _remember(self, keys: torch.Tensor) -> None:
        rows = self.memory.shape[0]
        if rows == 0:
            return
        keys = functional.normalize(keys, dim=1)[-rows:]
        positions = (int(self.memory_next) + torch.arange(len(keys))) % rows
        self.memory[positions.to(self.memory.device)] = keys.to(self.memory.dtype)
        self.memory_next.fill_((int(self.memory_next) + len(keys)) % rows)
        self.memory_filled.fill_(min(rows, int(self.memory_filled) + len(keys)))


def _frozen_copy(module: nn.Module) -> nn.Module:
    copied = copy.deepcopy(module)
    for parameter in copied.parameters():
        parameter.requires_grad_(False)
    return copied


def _move_towards(follower: nn.Module, leader: nn.Module, momentum: float) -> None:
    """θ_f ← m·θ_f + (1 − m)·θ_l for weights and floating buffers; counters are copied."""
    for kept, learnt in zip(follower.parameters(), leader.parameters(), strict=True):
        kept.mul_(momentum).add_(learnt.detach(), alpha=1 - momentum)
    for kept_buffer, learnt_buffer in zip(follower.buffers(), leader.buffers(), strict=True):
        if kept_buffer.is_floating_point():
            kept_buffer.mul_(momentum).add_(learnt_buffer, alpha=1 - momentum)
        else:
            kept_buffer.copy_(learnt_buffer)


class VICRegObjective(TwoViewObjective):
    """VICReg (Bardes et al. 2022): no negatives; see :func:`vicreg_loss`. The embeddings are
    the projection head's output (the paper's "expander"), the backbone's features are kept.
    extras: the three terms (detached), so a health view can show which one dominates."""

    name = "vicreg"
    description = (
        "Pulls two random changes of the same picture together while keeping the pictures' "
        "summaries varied, with no comparison between pictures: does not need large batches."
    )

    def forward(self, backbone: nn.Module, views: list[torch.Tensor]) -> PretrainOutput:
        features, first, second = self._project_views(backbone, views)
        # Under torchrun the variance and covariance are the whole step's batch's (every
        # process's embeddings, gradients flowing back to each): as one process's.
        terms = vicreg_loss(across_processes(first.float()), across_processes(second.float()))
        extras = {name: value.detach() for name, value in terms.items() if name != "loss"}
        return PretrainOutput(loss=terms["loss"], embeddings=features.detach(), extras=extras)
