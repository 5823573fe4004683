"""Freeze policies: which part of the classifier learns in a given epoch."""

from __future__ import annotations

from torch import nn

from ptm_studio.core.config import ModelConfig


def is_backbone_frozen(model_config: ModelConfig, epoch_index: int) -> bool:
    """``epoch_index`` counts from 0. Feature extraction freezes always; freeze-then-unfreeze
    freezes for the first ``unfreeze_after_epochs`` epochs."""
    if model_config.training_mode == "feature_extraction":
        return True
    if model_config.training_mode == "freeze_then_unfreeze":
        return epoch_index < model_config.unfreeze_after_epochs
    return False


def set_backbone_trainable(backbone: nn.Module, is_trainable: bool) -> None:
    for parameter in backbone.parameters():
        parameter.requires_grad_(is_trainable)
