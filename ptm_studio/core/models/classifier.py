"""ImageClassifier: a backbone that turns images into feature vectors plus a linear head."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ptm_studio.core.models.errors import ModelError


class ImageClassifier(nn.Module):
    """``head(backbone(images))``: logits of shape ``[batch, num_classes]``.

    The state-dict keys are ``backbone.*`` (the torchvision keys minus its ImageNet classifier)
    and ``head.0`` (dropout, no weights) / ``head.1.*`` (the linear classifier).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        *,
        backbone_name: str,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ModelError(f"A classifier needs at least one class, got {num_classes}.")
        if not 0.0 <= dropout < 1.0:
            raise ModelError(f"Dropout must be at least 0 and below 1, got {dropout}.")
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(feature_dim, num_classes))
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.backbone_name = backbone_name

    @property
    def classifier_layer(self) -> nn.Linear:
        layer = self.head[-1]
        assert isinstance(layer, nn.Linear)
        return layer

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))

    def extract_features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's feature vectors ``[batch, feature_dim]`` (embeddings, no head)."""
        return self.backbone(images)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return self.head.parameters()

    def reset_head(self) -> None:
        """Give the head fresh random weights (PyTorch's default initialisation for Linear)."""
        self.classifier_layer.reset_parameters()
