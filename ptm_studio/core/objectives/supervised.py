"""Cross-entropy for labelled images, with optional label smoothing and class weights.

Loss: L = -Σ_c q_c · w_y · log p_c, where p = softmax(logits), q the (optionally smoothed) target
(q = (1-ε)·onehot(y) + ε/C) and w_y the weight of the true class (1 when class weights are off).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ptm_studio.core.config import ObjectiveConfig


def class_weights_from_counts(counts: Sequence[int]) -> torch.Tensor:
    """Inverse-frequency weights normalised so a balanced dataset gets all ones.

    w_c = N / (C · n_c): a class with half the average number of images counts twice.
    """
    counts_tensor = torch.tensor([max(count, 1) for count in counts], dtype=torch.float32)
    return counts_tensor.sum() / (len(counts) * counts_tensor)


def build_supervised_loss(objective: ObjectiveConfig, class_counts: Sequence[int]) -> nn.Module:
    weight = class_weights_from_counts(class_counts) if objective.use_class_weights else None
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=objective.label_smoothing)
