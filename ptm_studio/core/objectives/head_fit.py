"""Fitting the last layer on frozen features to convergence: the "linear probe" of LP-FT.

Finetuning a pretrained network with a freshly initialised last layer lets that random layer's
large, wrong gradients flow into the backbone in the first steps and distort the features
pretraining learnt (Kumar et al., "Fine-Tuning can Distort Pretrained Features", ICLR 2022).
Fitting the last layer first, on the frozen network's features, and only then letting every
layer learn at a smaller rate keeps them.

The fit is multinomial logistic regression with an L2 penalty, solved by L-BFGS on the whole set
at once (no learning rate, no batches, no random draws). Features are centred and divided by one
number, their overall spread, not each by its own: a feature that hardly varies would otherwise
get a weight that large, and once the network learns and that feature moves a little, the
layer's outputs would explode (seen: a training loss of 100 in the first epoch). The penalty is
the one whose held-out loss is lowest on a fifth of the pictures (the loss, not the accuracy: it
also prefers a layer that is not overconfident, which finetuning then moves less), and the layer
is refitted on all of them; the centring and scale are folded into its weights, so the
classifier keeps its usual shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

# L2 strengths tried (on features scaled to a mean squared length of 1), and the one used when
# there are too few pictures to hold any out.
PENALTIES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
DEFAULT_PENALTY = 1e-2
HELD_OUT_SHARE = 0.2
LBFGS_ITERATIONS = 200
MIN_SPREAD = 1e-6


@dataclass(frozen=True)
class HeadFit:
    """What fitting found: the penalty chosen and the held-out loss of each one tried."""

    penalty: float
    held_out_loss: dict[float, float]


def fit_linear_head(
    layer: nn.Linear,
    features: torch.Tensor,
    labels: torch.Tensor,
    pictures: torch.Tensor,
    *,
    seed: int,
    class_weights: torch.Tensor | None = None,
) -> HeadFit:
    """Set ``layer``'s weight and bias to the logistic regression fitted on ``features``.

    ``pictures`` says which picture each row comes from (augmented copies of one picture share
    it), so a picture is held out with all of its copies. ``class_weights``: as the loss's.
    """
    # Single precision and one copy of the features: many pictures of a large network
    # (80,000 rows of 2,048 numbers with the augmented copies) would need 1.3 GB in double.
    features = features.detach().float().cpu()
    labels = labels.long().cpu()
    weights = None if class_weights is None else class_weights.float().cpu()
    mean = features.mean(dim=0)
    standardised = features - mean
    spread = torch.linalg.vector_norm(standardised, dim=1).pow(2).mean().sqrt()
    spread = spread.clamp_min(MIN_SPREAD)
    standardised /= spread  # the rows' mean squared length is 1
    num_classes = layer.out_features
    held_out = _held_out_rows(pictures.cpu(), seed)
    losses: dict[float, float] = {}
    if held_out.any() and (~held_out).any():
        for penalty in PENALTIES:
            weight, bias = _logistic_regression(
                standardised[~held_out], labels[~held_out], num_classes, penalty, weights
            )
            logits = standardised[held_out] @ weight.T + bias
            losses[penalty] = float(functional.cross_entropy(logits, labels[held_out]))
    penalty = min(losses, key=losses.__getitem__) if losses else DEFAULT_PENALTY
    weight, bias = _logistic_regression(standardised, labels, num_classes, penalty, weights)
    with torch.no_grad():
        # logits = W·(x − μ)/σ + b = (W/σ)·x + (b − W·μ/σ)
        folded = weight / spread
        layer.weight.copy_(folded.to(layer.weight.dtype))
        layer.bias.copy_((bias - folded @ mean).to(layer.bias.dtype))
    return HeadFit(penalty, losses)


def _held_out_rows(pictures: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed fifth of the distinct pictures (with every copy of each), under its own seed."""
    distinct = torch.unique(pictures)
    generator = torch.Generator().manual_seed(seed)
    order = distinct[torch.randperm(len(distinct), generator=generator)]
    chosen = order[: int(len(distinct) * HELD_OUT_SHARE)]
    return torch.isin(pictures, chosen)


def _logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    penalty: float,
    class_weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) minimising the mean cross-entropy + penalty/2 · ‖weight‖², from zero."""
    weight = torch.zeros(num_classes, features.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=LBFGS_ITERATIONS,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        logits = features @ weight.T + bias
        loss = functional.cross_entropy(logits, labels, weight=class_weights)
        loss = loss + 0.5 * penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    return weight.detach(), bias.detach()
