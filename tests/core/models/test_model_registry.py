"""The backbone registry: every backbone builds, counts its parameters right, and predicts."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from ptm_studio.core.models import (
    BackboneSpec,
    ImageClassifier,
    ModelError,
    build_backbone,
    build_classifier,
    get_backbone_spec,
    list_backbones,
    register_backbone,
)
from ptm_studio.core.models.registry import SPEED_HINTS, classifier_path

REQUIRED_BACKBONES = (
    "small_cnn",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "convnext_tiny",
    "vit_b_16",
    "regnet_y_400mf",
    "regnet_x_400mf",
)


@functools.cache
def built_classifier(name: str) -> ImageClassifier:
    """One build per backbone for the whole module: ViT alone takes seconds to initialise."""
    torch.manual_seed(0)
    return build_classifier(name, 3, dropout=0.2)


def torchvision_reference(name: str) -> nn.Module:
    # The meta device skips weight initialisation; RegNet computes its layer widths with real
    # tensors while building, so it is built on the CPU.
    device = "cpu" if name.startswith("regnet") else "meta"
    with torch.device(device):
        return get_model(name, weights=None)


def test_every_required_backbone_is_registered() -> None:
    names = [spec.name for spec in list_backbones()]
    assert set(REQUIRED_BACKBONES) <= set(names)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", REQUIRED_BACKBONES)
def test_backbone_builds_counts_and_predicts_three_classes(name: str) -> None:
    spec = get_backbone_spec(name)
    model = built_classifier(name)
    assert model.backbone_name == name
    assert model.num_classes == 3
    assert sum(p.numel() for p in model.backbone.parameters()) == spec.parameter_count
    assert isinstance(model.head[-1], nn.Linear)
    assert model.classifier_layer is model.head[-1]
    assert (model.classifier_layer.in_features, model.classifier_layer.out_features) == (
        model.feature_dim,
        3,
    )
    assert model.head[0].p == pytest.approx(0.2)
    # ViT checks for exactly its training size; every other backbone takes small pictures.
    size, batch_size = (224, 1) if name == "vit_b_16" else (64, 2)
    images = torch.randn(batch_size, 3, size, size)
    model.eval()
    with torch.no_grad():
        logits = model(images)
        features = model.extract_features(images)
    assert logits.shape == (batch_size, 3)
    assert features.shape == (batch_size, model.feature_dim)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", [n for n in REQUIRED_BACKBONES if n != "small_cnn"])
def test_backbone_keys_are_torchvision_keys_minus_classifier(name: str) -> None:
    backbone = built_classifier(name).backbone
    torchvision_keys = set(torchvision_reference(name).state_dict())
    path = classifier_path(name)
    assert path is not None
    classifier_keys = {key for key in torchvision_keys if key.startswith(path + ".")}
    assert classifier_keys, "the classifier path must name real torchvision weights"
    assert set(backbone.state_dict()) == torchvision_keys - classifier_keys


@pytest.mark.parametrize("name", [n for n in REQUIRED_BACKBONES if n != "small_cnn"])
def test_catalogue_names_the_weights_file_torchvision_downloads(name: str) -> None:
    """The catalogue needs no torchvision, so it states the file name; this holds it to
    torchvision's own address (the sha256 prefix in the name is what the cache is checked by)."""
    url = get_model_weights(name).DEFAULT.url
    assert get_backbone_spec(name).imagenet_weights_file == url.rsplit("/", 1)[-1]


def test_convnext_keeps_its_layer_norm_before_the_dropped_linear() -> None:
    model = built_classifier("convnext_tiny")
    backbone = model.backbone
    assert model.feature_dim == 768
    assert "classifier.0.weight" in backbone.state_dict()
    assert isinstance(backbone.get_submodule("classifier.2"), nn.Identity)


@pytest.mark.parametrize("spec", list_backbones(), ids=lambda spec: spec.name)
def test_spec_fields_are_sensible(spec: BackboneSpec) -> None:
    assert spec.display_name and len(spec.description) > 40
    assert spec.speed_hint in SPEED_HINTS
    assert len(spec.mean) == len(spec.std) == 3
    if spec.has_imagenet_weights:
        assert spec.torchvision_name is not None
        transforms = get_model_weights(spec.torchvision_name).DEFAULT.transforms()
        assert spec.mean == pytest.approx(tuple(transforms.mean))
        assert spec.std == pytest.approx(tuple(transforms.std))
    else:
        assert spec.torchvision_name is None


def test_vit_states_its_fixed_image_size() -> None:
    spec = get_backbone_spec("vit_b_16")
    assert spec.default_image_size == 224
    assert "224" in spec.description


def test_small_cnn_spec_and_size() -> None:
    spec = get_backbone_spec("small_cnn")
    assert (spec.default_image_size, spec.mean, spec.std) == (64, (0.5,) * 3, (0.5,) * 3)
    assert not spec.has_imagenet_weights
    assert 500_000 <= spec.parameter_count <= 1_500_000


@pytest.mark.parametrize("size", [32, 64, 96])
def test_small_cnn_trains_at_several_image_sizes(size: int) -> None:
    torch.manual_seed(0)
    model = build_classifier("small_cnn", 3)
    model.train()
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 3)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_groups_cover_the_model_once(small_model: ImageClassifier) -> None:
    backbone_ids = {id(p) for p in small_model.backbone_parameters()}
    head_ids = {id(p) for p in small_model.head_parameters()}
    assert not backbone_ids & head_ids
    assert backbone_ids | head_ids == {id(p) for p in small_model.parameters()}


def test_reset_head_changes_only_the_head(small_model: ImageClassifier) -> None:
    backbone_before = small_model.backbone.state_dict()["features.0.0.weight"].clone()
    head_before = small_model.classifier_layer.weight.detach().clone()
    small_model.reset_head()
    assert torch.equal(small_model.backbone.state_dict()["features.0.0.weight"], backbone_before)
    assert not torch.equal(small_model.classifier_layer.weight, head_before)


def test_unknown_backbone_lists_the_known_ones() -> None:
    with pytest.raises(ModelError, match="no backbone called 'resnet_9000'") as caught:
        get_backbone_spec("resnet_9000")
    assert "resnet18" in str(caught.value) and "small_cnn" in str(caught.value)
    with pytest.raises(ModelError):
        build_classifier("resnet_9000", 3)


@pytest.mark.parametrize(("num_classes", "dropout"), [(0, 0.0), (3, 1.0), (3, -0.1)])
def test_impossible_heads_are_refused(num_classes: int, dropout: float) -> None:
    with pytest.raises(ModelError):
        build_classifier("small_cnn", num_classes, dropout=dropout)


def test_a_name_registers_only_once() -> None:
    spec = get_backbone_spec("small_cnn")
    with pytest.raises(ModelError, match="already registered"):
        register_backbone(spec, lambda: build_backbone("small_cnn"))
