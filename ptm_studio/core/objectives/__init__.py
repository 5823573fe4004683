"""Training objectives: supervised losses, optimisers, learning-rate schedules and freeze policies."""

from ptm_studio.core.objectives.freezing import is_backbone_frozen, set_backbone_trainable
from ptm_studio.core.objectives.optimization import (
    build_optimizer,
    build_scheduler,
    keep_built_kernels,
    learning_rate_multiplier,
)
from ptm_studio.core.objectives.supervised import build_supervised_loss, class_weights_from_counts

__all__ = [
    "build_optimizer",
    "build_scheduler",
    "build_supervised_loss",
    "class_weights_from_counts",
    "is_backbone_frozen",
    "keep_built_kernels",
    "learning_rate_multiplier",
    "set_backbone_trainable",
]
