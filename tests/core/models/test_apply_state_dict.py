"""Fitting weights onto a model (fault M6, docs/fault-catalogue.md): all or nothing, head-only
changes reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_test_helpers import assert_same_state, clone_state
from torchvision.models import get_model

from ptm_studio.core.models import (
    ImageClassifier,
    WeightsError,
    apply_state_dict,
    build_classifier,
    load_state_dict_file,
)


def fresh(name: str, num_classes: int = 3, seed: int = 1) -> ImageClassifier:
    torch.manual_seed(seed)
    return build_classifier(name, num_classes)


def test_full_state_dict_loads_everything() -> None:
    source = fresh("small_cnn", seed=1)
    target = fresh("small_cnn", seed=2)
    report = apply_state_dict(target, source.state_dict(), source="test file")
    assert_same_state(clone_state(target), clone_state(source))
    assert report.loaded_keys == len(source.state_dict())
    assert not report.head_reinitialised
    assert report.missing_keys == report.unexpected_keys == report.shape_mismatches == ()
    assert report.summary() == f"Loaded {report.loaded_keys} weight tensors from test file."


def test_other_class_count_keeps_the_fresh_head_and_says_so() -> None:
    source = fresh("small_cnn", num_classes=5, seed=1)
    target = fresh("small_cnn", num_classes=3, seed=2)
    head_before = clone_state(target.head)
    report = apply_state_dict(target, source.state_dict(), source="'five.pt'")
    assert_same_state(clone_state(target.backbone), clone_state(source.backbone))
    assert_same_state(clone_state(target.head), head_before)
    assert report.head_reinitialised
    assert ("head.1.weight", (5, 256), (3, 256)) in report.shape_mismatches
    assert set(report.missing_keys) == {"head.1.weight", "head.1.bias"}
    assert "made for 5 classes, this model has 3" in report.summary()


def test_backbone_only_state_dict_from_a_pretraining_run() -> None:
    source = fresh("small_cnn", seed=1)
    backbone_only = {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}
    target = fresh("small_cnn", seed=2)
    report = apply_state_dict(target, backbone_only, source="pretraining run")
    assert_same_state(clone_state(target.backbone), clone_state(source.backbone))
    assert report.head_reinitialised
    assert report.shape_mismatches == ()
    assert "starts fresh" in report.summary()


def test_bare_torchvision_state_dict_drops_the_imagenet_classifier() -> None:
    torch.manual_seed(3)
    reference = get_model("resnet18", weights=None)
    target = fresh("resnet18")
    report = apply_state_dict(target, reference.state_dict(), source="torchvision resnet18")
    expected = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    assert_same_state(clone_state(target.backbone), expected)
    assert set(report.unexpected_keys) == {"fc.weight", "fc.bias"}
    assert report.head_reinitialised
    assert "Left out 2 entries" in report.summary()


def test_convnext_keeps_its_layer_norm_weights_from_a_torchvision_state_dict() -> None:
    # Only the key mapping matters here, so skip ConvNeXt's slow random initialisation:
    # build on the meta device, then give it real (uninitialised) CPU memory.
    with torch.device("meta"):
        target = build_classifier("convnext_tiny", 3)
    target.to_empty(device="cpu")
    # A torchvision-style state dict: backbone keys without prefix plus ImageNet's Linear,
    # which sits at classifier.2 right after the LayerNorm (classifier.0) the backbone keeps.
    state = {key: torch.zeros_like(value) for key, value in target.backbone.state_dict().items()}
    state["classifier.0.weight"].fill_(0.5)
    state["classifier.2.weight"] = torch.zeros(1000, 768)
    state["classifier.2.bias"] = torch.zeros(1000)
    report = apply_state_dict(target, state, source="torchvision convnext")
    assert torch.equal(target.backbone.classifier[0].weight, torch.full((768,), 0.5))
    assert set(report.unexpected_keys) == {"classifier.2.weight", "classifier.2.bias"}
    assert report.head_reinitialised
    assert not target.backbone.features[0][0].weight.any()


@pytest.mark.parametrize(
    ("prefix", "wrapper"), [("module.", None), ("_orig_mod.", None), ("", "state_dict")]
)
def test_prefixed_and_wrapped_files_load(tmp_path: Path, prefix: str, wrapper: str | None) -> None:
    source = fresh("small_cnn", seed=1)
    state = {prefix + key: value for key, value in source.state_dict().items()}
    payload = {wrapper: state, "epoch": 4} if wrapper else state
    path = tmp_path / "checkpoint.pth"
    torch.save(payload, path)
    target = fresh("small_cnn", seed=2)
    report = apply_state_dict(target, load_state_dict_file(path), source="'checkpoint.pth'")
    assert_same_state(clone_state(target), clone_state(source))
    assert not report.head_reinitialised


@pytest.mark.parametrize("file_backbone", ["resnet34", "small_cnn", "mobilenet_v3_small"])
def test_other_architecture_is_refused_and_the_model_is_unchanged(file_backbone: str) -> None:
    source = fresh(file_backbone, seed=1)
    target = fresh("resnet18", seed=2)
    before = clone_state(target)
    with pytest.raises(WeightsError, match="do not fit the ResNet-18 backbone") as caught:
        apply_state_dict(target, source.state_dict(), source="'other.pt'")
    assert_same_state(clone_state(target), before)
    error = caught.value
    assert error.details, "the individual differences are listed"
    assert error.message.count("\n  - ") == min(10, len(error.details))
    assert "pick the backbone" in error.advice


def test_resnet34_into_resnet18_names_the_extra_layers() -> None:
    # Every ResNet-18 tensor exists in ResNet-34 with the same size: only the extra blocks
    # betray the other architecture.
    source = fresh("resnet34", seed=1)
    target = fresh("resnet18", seed=2)
    with pytest.raises(WeightsError) as caught:
        apply_state_dict(target, source.state_dict(), source="'resnet34.pt'")
    assert "layer1.2.conv1.weight: in the file but not in this model" in caught.value.details


def test_mismatched_sizes_are_listed_readably() -> None:
    source = fresh("small_cnn", seed=1)
    state = dict(source.state_dict())
    state["backbone.features.0.0.weight"] = torch.zeros(16, 3, 3, 3)
    target = fresh("small_cnn", seed=2)
    with pytest.raises(WeightsError) as caught:
        apply_state_dict(target, state, source="'edited.pt'")
    assert caught.value.details == (
        "features.0.0.weight: the file has size 16×3×3×3, this model 32×3×3×3",
    )


def test_missing_batch_norm_counters_are_harmless() -> None:
    source = fresh("small_cnn", seed=1)
    state = {k: v for k, v in source.state_dict().items() if "num_batches_tracked" not in k}
    target = fresh("small_cnn", seed=2)
    report = apply_state_dict(target, state, source="old checkpoint")
    assert all(key.endswith("num_batches_tracked") for key in report.missing_keys)
    assert report.missing_keys
    assert "keep their starting values" in report.summary()
    assert torch.equal(target.classifier_layer.weight, source.classifier_layer.weight)


def test_non_finite_state_dict_is_refused_before_touching_the_model() -> None:
    source = fresh("small_cnn", seed=1)
    state = {key: value.clone() for key, value in source.state_dict().items()}
    state["backbone.features.1.0.weight"][0, 0, 0, 0] = float("nan")
    target = fresh("small_cnn", seed=2)
    before = clone_state(target)
    with pytest.raises(WeightsError, match=r"features\.1\.0\.weight"):
        apply_state_dict(target, state, source="'diverged.pt'")
    assert_same_state(clone_state(target), before)


def test_weights_in_another_precision_are_converted() -> None:
    source = fresh("small_cnn", seed=1)
    half = {k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}
    target = fresh("small_cnn", seed=2)
    apply_state_dict(target, half, source="half precision")
    assert target.classifier_layer.weight.dtype == torch.float32
    assert torch.allclose(target.classifier_layer.weight, source.classifier_layer.weight, atol=1e-3)
