"""What PTM Studio knows about each backbone without building it: names, descriptions, sizes,
the preprocessing it expects and where its ImageNet weights are kept. Plain values, no torch:
``ptm-studio models`` and the window's network list read them before torch has loaded (issue
14, B5). :mod:`ptm_studio.core.models.registry` builds the networks these facts describe; tests
hold every number here against torchvision so none can drift unnoticed."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ptm_studio.core.data.normalisation import IMAGENET_MEAN, IMAGENET_STD
from ptm_studio.core.models.errors import ModelError, WeightsError

SPEED_HINTS = ("fastest", "fast", "medium", "slow")
STATUS_AVAILABLE_OFFLINE = "available_offline"
STATUS_NEEDS_DOWNLOAD = "needs_download"
STATUS_NOT_AVAILABLE = "not_available"


@dataclass(frozen=True)
class BackboneSpec:
    """What the GUI shows about a backbone and what preprocessing it expects.

    ``parameter_count`` counts the backbone without any classifier; tests check it against a
    built model, so the hard-coded numbers below cannot drift from torchvision unnoticed.
    ``classifier_path`` is the dotted path of the torchvision classifier the backbone replaces
    by nn.Identity (its keys in a torchvision state dict are dropped); ``imagenet_weights_file``
    the name torchvision downloads the ImageNet weights under (its sha256 prefix included).
    """

    name: str
    display_name: str
    description: str
    parameter_count: int
    default_image_size: int
    speed_hint: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    has_imagenet_weights: bool
    torchvision_name: str | None
    classifier_path: str | None = None
    imagenet_weights_file: str | None = None


_SPECS: dict[str, BackboneSpec] = {}


def add_backbone_spec(spec: BackboneSpec) -> None:
    if spec.name in _SPECS:
        raise ModelError(f"A backbone named {spec.name!r} is already registered.")
    if spec.speed_hint not in SPEED_HINTS:
        raise ModelError(f"speed_hint must be one of {SPEED_HINTS}, got {spec.speed_hint!r}.")
    _SPECS[spec.name] = spec


def list_backbones() -> list[BackboneSpec]:
    """Every registered backbone, in registration order (small and fast first)."""
    return list(_SPECS.values())


def get_backbone_spec(name: str) -> BackboneSpec:
    try:
        return _SPECS[name]
    except KeyError:
        known = ", ".join(_SPECS)
        raise ModelError(
            f"There is no backbone called {name!r}. Known backbones: {known}."
        ) from None


def torch_hub_dir() -> Path:
    """torch.hub's folder, as ``torch.hub.get_dir()`` answers: that function itself once torch
    has loaded (it knows about ``set_dir``), else its documented rule: ``$TORCH_HOME/hub``,
    ``$TORCH_HOME`` defaulting to ``$XDG_CACHE_HOME/torch`` and that to ``~/.cache/torch``."""
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir())
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def imagenet_spec(name: str) -> BackboneSpec:
    """The spec of a backbone that has ImageNet weights; WeightsError (said for the user) for
    one that has none."""
    spec = get_backbone_spec(name)
    if (
        not spec.has_imagenet_weights
        or spec.imagenet_weights_file is None
        or spec.torchvision_name is None
    ):
        raise WeightsError(
            f"{spec.display_name} has no ImageNet weights.",
            advice="Start from random weights, a file or an earlier run, or pick another backbone.",
        )
    return spec


def imagenet_weights_path(name: str) -> Path:
    """Where torch.hub keeps (or would keep) the file: ``$TORCH_HOME/hub/checkpoints/…``."""
    weights_file = imagenet_spec(name).imagenet_weights_file
    assert weights_file is not None  # imagenet_spec checked it
    return torch_hub_dir() / "checkpoints" / weights_file


def imagenet_status(name: str) -> str:
    """``available_offline``, ``needs_download`` or ``not_available`` (no ImageNet weights)."""
    spec = get_backbone_spec(name)
    if not spec.has_imagenet_weights or spec.imagenet_weights_file is None:
        return STATUS_NOT_AVAILABLE
    return (
        STATUS_AVAILABLE_OFFLINE if imagenet_weights_path(name).is_file() else STATUS_NEEDS_DOWNLOAD
    )


def _add_torchvision(
    name: str,
    display_name: str,
    description: str,
    *,
    parameter_count: int,
    speed_hint: str,
    weights_file: str,
    classifier_path: str,
    default_image_size: int = 224,
) -> None:
    add_backbone_spec(
        BackboneSpec(
            name=name,
            display_name=display_name,
            description=description,
            parameter_count=parameter_count,
            default_image_size=default_image_size,
            speed_hint=speed_hint,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            has_imagenet_weights=True,
            torchvision_name=name,
            classifier_path=classifier_path,
            imagenet_weights_file=weights_file,
        )
    )


_SMALLER_IMAGES_NOTE = " Also works with smaller pictures (96–160 px) when speed matters."

add_backbone_spec(
    BackboneSpec(
        name="small_cnn",
        display_name="Small CNN",
        description=(
            "Small and fast; a good first try on a laptop. PTM Studio's own network, made for "
            "small pictures (64–96 px) and trained from scratch, so it needs a few hundred "
            "pictures per class. No ImageNet weights."
        ),
        parameter_count=1_163_936,
        default_image_size=64,
        speed_hint="fastest",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        has_imagenet_weights=False,
        torchvision_name=None,
    )
)
_add_torchvision(
    "mobilenet_v3_small",
    "MobileNet V3 Small",
    "Tiny network built for phones: the quickest choice with ImageNet weights. Good when the "
    "computer is slow or the classes are easy to tell apart." + _SMALLER_IMAGES_NOTE,
    parameter_count=927_008,
    speed_hint="fastest",
    weights_file="mobilenet_v3_small-047dcff4.pth",
    classifier_path="classifier",
)
_add_torchvision(
    "mobilenet_v3_large",
    "MobileNet V3 Large",
    "Light and fast, noticeably more accurate than MobileNet V3 Small. A good default for a "
    "laptop when you start from ImageNet weights." + _SMALLER_IMAGES_NOTE,
    parameter_count=2_971_952,
    speed_hint="fast",
    weights_file="mobilenet_v3_large-5c1a4163.pth",
    classifier_path="classifier",
)
_add_torchvision(
    "resnet18",
    "ResNet-18",
    "A classic, reliable network. With ImageNet weights it learns well from a few hundred "
    "pictures per class; a safe first choice on a GPU and still fine on a laptop."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=11_176_512,
    speed_hint="fast",
    weights_file="resnet18-f37072fd.pth",
    classifier_path="fc",
)
_add_torchvision(
    "regnet_x_400mf",
    "RegNet X 400MF",
    "Compact network with good accuracy for its speed; an alternative to MobileNet on a "
    "laptop." + _SMALLER_IMAGES_NOTE,
    parameter_count=5_094_976,
    speed_hint="fast",
    weights_file="regnet_x_400mf-62229a5f.pth",
    classifier_path="fc",
)
_add_torchvision(
    "regnet_y_400mf",
    "RegNet Y 400MF",
    "Compact network, slightly more accurate than RegNet X 400MF at about the same speed."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=3_903_144,
    speed_hint="fast",
    weights_file="regnet_y_400mf-e6988f5f.pth",
    classifier_path="fc",
)
_add_torchvision(
    "efficientnet_b0",
    "EfficientNet-B0",
    "Accurate for its size, but slower to train than its size suggests; best with a GPU."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=4_007_548,
    speed_hint="medium",
    weights_file="efficientnet_b0_rwightman-7f5810bc.pth",
    classifier_path="classifier",
)
_add_torchvision(
    "resnet34",
    "ResNet-34",
    "A deeper ResNet-18: a little more accurate on harder problems, about twice as slow."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=21_284_672,
    speed_hint="medium",
    weights_file="resnet34-b627a593.pth",
    classifier_path="fc",
)
_add_torchvision(
    "resnet50",
    "ResNet-50",
    "The standard workhorse of image research. More accurate than ResNet-18 on varied "
    "pictures; use a GPU." + _SMALLER_IMAGES_NOTE,
    parameter_count=23_508_032,
    speed_hint="slow",
    weights_file="resnet50-11ad3fa6.pth",
    classifier_path="fc",
)
_add_torchvision(
    "convnext_tiny",
    "ConvNeXt Tiny",
    "A modern, very accurate network for fine differences between classes; needs a GPU and "
    "benefits most from ImageNet weights." + _SMALLER_IMAGES_NOTE,
    parameter_count=27_820_128,
    speed_hint="slow",
    weights_file="convnext_tiny-983f1562.pth",
    # Keep the LayerNorm and Flatten before the Linear: the features are normalised like in
    # ImageNet training, and those two layers' ImageNet weights still load.
    classifier_path="classifier.2",
)
_add_torchvision(
    "vit_b_16",
    "Vision Transformer B/16",
    "Large transformer network; strong with ImageNet weights and plenty of pictures, but "
    "needs a good GPU. Pictures must be exactly 224 × 224 pixels.",
    parameter_count=85_798_656,
    speed_hint="slow",
    weights_file="vit_b_16-c867db91.pth",
    classifier_path="heads",
)
