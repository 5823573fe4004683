"""Backbones, the ImageClassifier, and safe loading of starting weights."""

from ptm_studio.core.models.classifier import ImageClassifier
from ptm_studio.core.models.errors import ModelError, WeightsError
from ptm_studio.core.models.registry import (
    BackboneSpec,
    build_backbone,
    build_classifier,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)
from ptm_studio.core.models.safe_load import (
    LoadReport,
    apply_state_dict,
    disable_unsafe_load_override,
    load_state_dict_file,
)
from ptm_studio.core.models.weights import (
    imagenet_status,
    imagenet_weights_path,
    imagenet_weights_url,
    load_imagenet_weights,
    load_initial_weights,
    load_run_weights,
)

__all__ = [
    "BackboneSpec",
    "ImageClassifier",
    "LoadReport",
    "ModelError",
    "WeightsError",
    "apply_state_dict",
    "build_backbone",
    "build_classifier",
    "disable_unsafe_load_override",
    "get_backbone_spec",
    "imagenet_status",
    "imagenet_weights_path",
    "imagenet_weights_url",
    "list_backbones",
    "load_imagenet_weights",
    "load_initial_weights",
    "load_run_weights",
    "load_state_dict_file",
    "register_backbone",
]
