"""The backbone registry: one name → one spec (:mod:`ptm_studio.core.models.catalogue`, which
needs no torch) and one builder, after torchvision's get_model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace as dataclasses_replace

from torch import nn
from torchvision.models import get_model

from ptm_studio.core.models.catalogue import SPEED_HINTS as SPEED_HINTS
from ptm_studio.core.models.catalogue import (
    BackboneSpec,
    add_backbone_spec,
    get_backbone_spec,
    list_backbones,
)
from ptm_studio.core.models.classifier import ImageClassifier
from ptm_studio.core.models.errors import ModelError
from ptm_studio.core.models.small_cnn import SMALL_CNN_FEATURE_DIM, SmallCNN

__all__ = [
    "BackboneSpec",
    "ImageClassifier",
    "ModelError",
    "build_backbone",
    "build_classifier",
    "classifier_path",
    "get_backbone_spec",
    "list_backbones",
    "register_backbone",
]

BackboneBuilder = Callable[[], tuple[nn.Module, int]]

# Builders of backbones registered in code (PTM Studio's own, a test's); a torchvision backbone
# in the catalogue is built from its spec.
_BUILDERS: dict[str, BackboneBuilder] = {}


def register_backbone(
    spec: BackboneSpec, builder: BackboneBuilder, *, classifier_path: str | None = None
) -> None:
    if classifier_path is not None:
        spec = dataclasses_replace(spec, classifier_path=classifier_path)
    add_backbone_spec(spec)
    _BUILDERS[spec.name] = builder


def classifier_path(name: str) -> str | None:
    """The torchvision classifier module this backbone drops (``fc``, ``classifier.2``…)."""
    return get_backbone_spec(name).classifier_path


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """A randomly initialised backbone (images → ``[batch, F]``) and its feature size F."""
    spec = get_backbone_spec(name)
    builder = _BUILDERS.get(name)
    if builder is not None:
        return builder()
    if spec.torchvision_name is None or spec.classifier_path is None:
        raise ModelError(f"The backbone {name!r} has no builder registered.")
    return _build_torchvision(spec.torchvision_name, spec.classifier_path)


def build_classifier(name: str, num_classes: int, *, dropout: float = 0.0) -> ImageClassifier:
    """A randomly initialised backbone with a new ``num_classes`` head."""
    backbone, feature_dim = build_backbone(name)
    return ImageClassifier(backbone, feature_dim, num_classes, backbone_name=name, dropout=dropout)


def _build_torchvision(torchvision_name: str, path: str) -> tuple[nn.Module, int]:
    """The torchvision model with its classifier swapped for nn.Identity."""
    model = get_model(torchvision_name, weights=None)
    *parent_names, leaf_name = path.split(".")
    parent = model.get_submodule(".".join(parent_names))
    classifier = parent.get_submodule(leaf_name)
    linear_layers = [module for module in classifier.modules() if isinstance(module, nn.Linear)]
    # The first Linear's input is the pooled feature vector the backbone now returns.
    feature_dim = linear_layers[0].in_features
    # setattr also replaces a numbered child of an nn.Sequential ("2") in place.
    setattr(parent, leaf_name, nn.Identity())
    return model, feature_dim


def _build_small_cnn() -> tuple[nn.Module, int]:
    return SmallCNN(), SMALL_CNN_FEATURE_DIM


_BUILDERS["small_cnn"] = _build_small_cnn  # its facts are in the catalogue
