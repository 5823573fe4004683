"""Backbones, the ImageClassifier, and safe loading of starting weights.

What describes a backbone (the catalogue) needs no torch and is imported here at once; the
networks and the weight loading load torch on first use (PEP 562), so the window and
``ptm-studio models`` can list the backbones before torch has loaded (issue 14, B5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptm_studio.core.lazy_exports import loaded_on_first_use
from ptm_studio.core.models.catalogue import (
    BackboneSpec,
    get_backbone_spec,
    imagenet_status,
    imagenet_weights_path,
    list_backbones,
)
from ptm_studio.core.models.errors import ModelError, WeightsError

if TYPE_CHECKING:
    from ptm_studio.core.models.classifier import ImageClassifier
    from ptm_studio.core.models.registry import build_backbone, build_classifier, register_backbone
    from ptm_studio.core.models.safe_load import (
        LoadReport,
        apply_state_dict,
        disable_unsafe_load_override,
        load_state_dict_file,
    )
    from ptm_studio.core.models.weights import (
        imagenet_weights_url,
        load_imagenet_weights,
        load_initial_weights,
        load_run_weights,
    )

_REGISTRY = "ptm_studio.core.models.registry"
_SAFE_LOAD = "ptm_studio.core.models.safe_load"
_WEIGHTS = "ptm_studio.core.models.weights"
__getattr__ = loaded_on_first_use(
    globals(),
    {
        "ImageClassifier": "ptm_studio.core.models.classifier",
        "build_backbone": _REGISTRY,
        "build_classifier": _REGISTRY,
        "register_backbone": _REGISTRY,
        "LoadReport": _SAFE_LOAD,
        "apply_state_dict": _SAFE_LOAD,
        "disable_unsafe_load_override": _SAFE_LOAD,
        "load_state_dict_file": _SAFE_LOAD,
        "imagenet_weights_url": _WEIGHTS,
        "load_imagenet_weights": _WEIGHTS,
        "load_initial_weights": _WEIGHTS,
        "load_run_weights": _WEIGHTS,
    },
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
