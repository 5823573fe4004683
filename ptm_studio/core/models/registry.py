"""The backbone registry: one name → one spec and one builder, after torchvision's get_model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torchvision.models import get_model

from ptm_studio.core.data.transforms import IMAGENET_MEAN, IMAGENET_STD
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

SPEED_HINTS = ("fastest", "fast", "medium", "slow")

BackboneBuilder = Callable[[], tuple[nn.Module, int]]


@dataclass(frozen=True)
class BackboneSpec:
    """What the GUI shows about a backbone and what preprocessing it expects.

    ``parameter_count`` counts the backbone without any classifier; tests check it against a
    built model, so the hard-coded numbers below cannot drift from torchvision unnoticed.
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


@dataclass(frozen=True)
class _RegisteredBackbone:
    spec: BackboneSpec
    builder: BackboneBuilder
    # Dotted path of the torchvision classifier that the backbone replaces by nn.Identity;
    # its keys in a torchvision state dict have no place in the backbone and are dropped.
    classifier_path: str | None


_REGISTRY: dict[str, _RegisteredBackbone] = {}


def register_backbone(
    spec: BackboneSpec, builder: BackboneBuilder, *, classifier_path: str | None = None
) -> None:
    if spec.name in _REGISTRY:
        raise ModelError(f"A backbone named {spec.name!r} is already registered.")
    if spec.speed_hint not in SPEED_HINTS:
        raise ModelError(f"speed_hint must be one of {SPEED_HINTS}, got {spec.speed_hint!r}.")
    _REGISTRY[spec.name] = _RegisteredBackbone(spec, builder, classifier_path)


def list_backbones() -> list[BackboneSpec]:
    """Every registered backbone, in registration order (small and fast first)."""
    return [entry.spec for entry in _REGISTRY.values()]


def get_backbone_spec(name: str) -> BackboneSpec:
    return _lookup(name).spec


def classifier_path(name: str) -> str | None:
    """The torchvision classifier module this backbone drops (``fc``, ``classifier.2``…)."""
    return _lookup(name).classifier_path


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """A randomly initialised backbone (images → ``[batch, F]``) and its feature size F."""
    return _lookup(name).builder()


def build_classifier(name: str, num_classes: int, *, dropout: float = 0.0) -> ImageClassifier:
    """A randomly initialised backbone with a new ``num_classes`` head."""
    backbone, feature_dim = build_backbone(name)
    return ImageClassifier(backbone, feature_dim, num_classes, backbone_name=name, dropout=dropout)


def _lookup(name: str) -> _RegisteredBackbone:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY)
        raise ModelError(
            f"There is no backbone called {name!r}. Known backbones: {known}."
        ) from None


def _build_small_cnn() -> tuple[nn.Module, int]:
    return SmallCNN(), SMALL_CNN_FEATURE_DIM


def _torchvision_builder(torchvision_name: str, path: str) -> BackboneBuilder:
    """A builder that makes the torchvision model and swaps its classifier for nn.Identity."""

    def build() -> tuple[nn.Module, int]:
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

    return build


def _register_torchvision(
    name: str,
    display_name: str,
    description: str,
    *,
    parameter_count: int,
    speed_hint: str,
    path: str,
    default_image_size: int = 224,
) -> None:
    spec = BackboneSpec(
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
    )
    register_backbone(spec, _torchvision_builder(name, path), classifier_path=path)


_SMALLER_IMAGES_NOTE = " Also works with smaller pictures (96–160 px) when speed matters."

register_backbone(
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
    ),
    _build_small_cnn,
)
_register_torchvision(
    "mobilenet_v3_small",
    "MobileNet V3 Small",
    "Tiny network built for phones: the quickest choice with ImageNet weights. Good when the "
    "computer is slow or the classes are easy to tell apart." + _SMALLER_IMAGES_NOTE,
    parameter_count=927_008,
    speed_hint="fastest",
    path="classifier",
)
_register_torchvision(
    "mobilenet_v3_large",
    "MobileNet V3 Large",
    "Light and fast, noticeably more accurate than MobileNet V3 Small. A good default for a "
    "laptop when you start from ImageNet weights." + _SMALLER_IMAGES_NOTE,
    parameter_count=2_971_952,
    speed_hint="fast",
    path="classifier",
)
_register_torchvision(
    "resnet18",
    "ResNet-18",
    "A classic, reliable network. With ImageNet weights it learns well from a few hundred "
    "pictures per class; a safe first choice on a GPU and still fine on a laptop."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=11_176_512,
    speed_hint="fast",
    path="fc",
)
_register_torchvision(
    "regnet_x_400mf",
    "RegNet X 400MF",
    "Compact network with good accuracy for its speed; an alternative to MobileNet on a "
    "laptop." + _SMALLER_IMAGES_NOTE,
    parameter_count=5_094_976,
    speed_hint="fast",
    path="fc",
)
_register_torchvision(
    "regnet_y_400mf",
    "RegNet Y 400MF",
    "Compact network, slightly more accurate than RegNet X 400MF at about the same speed."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=3_903_144,
    speed_hint="fast",
    path="fc",
)
_register_torchvision(
    "efficientnet_b0",
    "EfficientNet-B0",
    "Accurate for its size, but slower to train than its size suggests; best with a GPU."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=4_007_548,
    speed_hint="medium",
    path="classifier",
)
_register_torchvision(
    "resnet34",
    "ResNet-34",
    "A deeper ResNet-18: a little more accurate on harder problems, about twice as slow."
    + _SMALLER_IMAGES_NOTE,
    parameter_count=21_284_672,
    speed_hint="medium",
    path="fc",
)
_register_torchvision(
    "resnet50",
    "ResNet-50",
    "The standard workhorse of image research. More accurate than ResNet-18 on varied "
    "pictures; use a GPU." + _SMALLER_IMAGES_NOTE,
    parameter_count=23_508_032,
    speed_hint="slow",
    path="fc",
)
_register_torchvision(
    "convnext_tiny",
    "ConvNeXt Tiny",
    "A modern, very accurate network for fine differences between classes; needs a GPU and "
    "benefits most from ImageNet weights." + _SMALLER_IMAGES_NOTE,
    parameter_count=27_820_128,
    speed_hint="slow",
    # Keep the LayerNorm and Flatten before the Linear: the features are normalised like in
    # ImageNet training, and those two layers' ImageNet weights still load.
    path="classifier.2",
)
_register_torchvision(
    "vit_b_16",
    "Vision Transformer B/16",
    "Large transformer network; strong with ImageNet weights and plenty of pictures, but "
    "needs a good GPU. Pictures must be exactly 224 × 224 pixels.",
    parameter_count=85_798_656,
    speed_hint="slow",
    path="heads",
)
