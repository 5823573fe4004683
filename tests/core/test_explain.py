"""Heatmaps: Grad-CAM finds the quadrant a hand-built model reads, follows the class asked for,
leaves a real backbone exactly as it was, covers every registered CNN, refuses ViT and a missing
Captum in plain words; the picture shown is the crop the model saw; overlays and the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from training_helpers import train_with_the_cli

from ptm_studio.cli import EXIT_OK, EXIT_USAGE, main
from ptm_studio.core.data import load_image
from ptm_studio.core.explain import (
    INSTALL_HINT,
    NO_HEATMAP,
    TARGET_LAYERS,
    CaptumMissing,
    Heatmap,
    HeatmapNotAvailable,
    colourise,
    heatmap,
    heatmaps_for_paths,
    model_input_picture,
    overlay,
    target_layer_for,
    write_overlay,
)
from ptm_studio.core.inference import PredictionCancelled, Predictor
from ptm_studio.core.models import ImageClassifier, build_classifier, list_backbones

SIZE = 32
HALF = SIZE // 2


class TwoQuadrants(nn.Module):
    """Channels 0–3 see only the top-left quarter of the picture, channels 4–7 only the
    top-right one (the rest is zeroed before any convolution, which has no bias). Two quarters
    side by side: a map flipped either way or transposed puts the heat in the wrong one."""

    def __init__(self) -> None:
        super().__init__()
        self.top_left = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU())
        self.top_right = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU())
        for branch in (self.top_left, self.top_right):
            with torch.no_grad():
                branch[0].weight.abs_()  # positive weights: positive pictures light them up

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        top_left = torch.zeros_like(images)
        top_left[..., :HALF, :HALF] = images[..., :HALF, :HALF]
        top_right = torch.zeros_like(images)
        top_right[..., :HALF, HALF:] = images[..., :HALF, HALF:]
        return torch.cat([self.top_left(top_left), self.top_right(top_right)], dim=1)


def quadrant_model() -> tuple[ImageClassifier, nn.Module]:
    """Class 0 adds up the top-left channels, class 1 the top-right ones."""
    maps = TwoQuadrants()
    backbone = nn.Sequential(maps, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    model = ImageClassifier(backbone, 8, 2, backbone_name="two_quadrants")
    with torch.no_grad():
        model.classifier_layer.weight.copy_(
            torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4])
        )
        model.classifier_layer.bias.zero_()
    return model.eval(), maps


def positive_picture(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) + 0.1


def share_inside(values: np.ndarray, rows: slice, columns: slice) -> float:
    return float(values[rows, columns].sum() / values.sum())


def test_the_heat_lies_in_the_quadrant_the_model_reads_and_follows_the_class() -> None:
    model, layer = quadrant_model()
    picture = positive_picture()
    # Class 0 reads the top-left quarter; the rest of the picture is bright too.
    first = heatmap(model, picture, class_index=0, target_layer=layer)
    assert first.values.shape == (SIZE, SIZE) and first.values.dtype == np.float32
    assert first.values.min() >= 0.0 and first.values.max() == pytest.approx(1.0)
    low, high = slice(0, HALF), slice(HALF, SIZE)
    assert share_inside(first.values, low, low) > 0.9
    assert first.class_index == 0 and first.class_name == "class 0"
    # The other class: the heat moves to the top-right quarter.
    second = heatmap(model, picture, class_index=1, target_layer=layer)
    assert share_inside(second.values, low, high) > 0.9
    assert np.abs(first.values - second.values).max() > 0.5
    # By default the predicted class: make the top-right brighter, so class 1 wins.
    picture[:, :HALF, HALF:] += 1.0
    default = heatmap(model, picture, target_layer=layer)
    assert default.class_index == default.predicted_index == 1 and default.is_for_prediction
    logits = model(picture.unsqueeze(0)).detach()
    assert default.probability == pytest.approx(float(torch.softmax(logits, 1)[0, 1]), rel=1e-5)


def test_a_real_backbone_gets_a_heatmap_and_is_left_exactly_as_it_was() -> None:
    torch.manual_seed(0)
    model = build_classifier("resnet18", 3).train()  # a model being trained, even
    for parameter in model.backbone.layer1.parameters():
        parameter.requires_grad_(False)  # partly frozen: that must stay so
    requires_grad = [parameter.requires_grad for parameter in model.parameters()]
    state = {name: value.clone() for name, value in model.state_dict().items()}
    picture = torch.randn(3, 96, 96)

    with torch.inference_mode():  # a caller that predicts in inference mode still gets one
        result = heatmap(model, picture)
    assert result.values.shape == (96, 96) and result.values.dtype == np.float32
    assert result.values.min() >= 0.0 and result.values.max() <= 1.0
    assert 0 <= result.class_index < 3 and 0.0 < result.probability < 1.0
    other = heatmap(model, picture, class_index=(result.class_index + 1) % 3)
    assert other.class_index != result.class_index and not other.is_for_prediction

    assert model.training  # its mode is given back
    assert [parameter.requires_grad for parameter in model.parameters()] == requires_grad
    assert all(parameter.grad is None for parameter in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks
    # Eval mode was used: BatchNorm's running statistics did not move.
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_every_registered_network_has_a_layer_to_read_or_says_why_not() -> None:
    for spec in list_backbones():
        try:
            with torch.device("meta"):  # no memory, no time: only the shapes
                model = build_classifier(spec.name, 2).eval()
            device = "meta"
        except NotImplementedError:  # RegNet computes its widths with real tensors
            model, device = build_classifier(spec.name, 2).eval(), "cpu"
        if spec.name in NO_HEATMAP:
            with pytest.raises(HeatmapNotAvailable, match="not available for Vision Transformer"):
                target_layer_for(model)
            continue
        assert spec.name in TARGET_LAYERS
        shape = _output_shape(
            model, target_layer_for(model), torch.zeros(1, 3, 64, 64, device=device)
        )
        assert len(shape) == 4 and shape[2] >= 2, spec.name  # [1, channels, height, width]


def _output_shape(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> tuple[int, ...]:
    shapes: list[tuple[int, ...]] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            model(images)
    finally:
        hook.remove()
    assert len(shapes) == 1
    return shapes[0]


def test_a_vit_is_refused_in_plain_words_before_any_work() -> None:
    with torch.device("meta"):
        model = build_classifier("vit_b_16", 2)
    with pytest.raises(HeatmapNotAvailable) as refused:
        heatmap(model, torch.zeros(3, 224, 224, device="meta"))
    assert "Heatmaps are not available for Vision Transformer B/16 yet" in str(refused.value)
    assert "ResNet-18" in str(refused.value)  # what to do instead


def test_a_network_without_an_entry_is_refused_naming_the_table() -> None:
    model, _ = quadrant_model()
    with pytest.raises(HeatmapNotAvailable, match="TARGET_LAYERS"):
        heatmap(model, positive_picture())


def test_a_missing_captum_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "captum", None)  # import captum… now raises ImportError
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    model, layer = quadrant_model()
    with pytest.raises(CaptumMissing) as missing:
        heatmap(model, positive_picture(), target_layer=layer)
    assert INSTALL_HINT in str(missing.value) and isinstance(missing.value, ImportError)


def test_bad_requests_are_refused_in_plain_words() -> None:
    model, layer = quadrant_model()
    with pytest.raises(ValueError, match="no class number 2"):
        heatmap(model, positive_picture(), class_index=2, target_layer=layer)
    with pytest.raises(ValueError, match="pass a Predictor"):
        heatmap(model, "picture.png", target_layer=layer)
    with pytest.raises(ValueError, match=r"\[3, height, width\]"):
        heatmap(model, torch.zeros(2, 3, SIZE, SIZE), target_layer=layer)


def small_cnn_predictor(temperature: float = 1.0) -> Predictor:
    torch.manual_seed(0)
    model = build_classifier("small_cnn", 3)
    names = ("circle", "square", "stripe")
    return Predictor(
        model, names, 16, (0.5,) * 3, (0.5,) * 3, torch.device("cpu"), temperature=temperature
    )


def test_the_picture_shown_is_the_crop_the_model_saw(tmp_path: Path) -> None:
    # 40 × 20 px: red, green, blue thirds. Shorter side to 16 px, then the centre square.
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :13, 0] = pixels[:, 13:27, 1] = pixels[:, 27:, 2] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    predictor = small_cnn_predictor()
    crop = model_input_picture(predictor, path)
    assert crop.shape == (16, 16, 3) and crop.dtype == np.uint8
    assert crop[:, 4:12, 1].min() > 200 and crop[:, 4:12, [0, 2]].max() < 50  # the green middle
    # The tensor made from that crop is exactly what the predictor feeds the model.
    result = heatmap(predictor, path)
    assert result.picture is not None and np.array_equal(result.picture, crop)
    assert result.path == path and result.values.shape == (16, 16)


def test_heatmaps_for_a_folder_report_unreadable_files_progress_and_stop(
    tiny_dataset: Path,
) -> None:
    predictor = small_cnn_predictor(temperature=2.0)
    paths = sorted((tiny_dataset / "square").glob("*.png"))[:5]
    broken = tiny_dataset / "broken.png"
    broken.write_bytes(b"not a picture")
    before = predictor.predict_paths(paths, top_k=3)
    progress: list[tuple[int, int]] = []

    result = heatmaps_for_paths(
        predictor, [*paths, broken], batch_size=2, on_progress=lambda *p: progress.append(p)
    )
    assert [item.path for item in result.heatmaps] == paths
    assert set(result.unreadable) == {broken} and "not an image" in result.unreadable[broken]
    assert progress == [(2, 6), (4, 6), (6, 6)]
    for item, prediction in zip(result.heatmaps, before, strict=True):
        assert item.class_name == prediction.predicted_class  # calibrated, as predictions are
        assert item.probability == pytest.approx(prediction.confidence, rel=1e-4)
        assert item.picture is not None and item.picture.shape == (16, 16, 3)
    assert predictor.predict_paths(paths, top_k=3) == before  # it predicts as before

    chosen = heatmaps_for_paths(predictor, paths[:2], class_index=1)
    assert {item.class_name for item in chosen.heatmaps} == {"square"}
    with pytest.raises(PredictionCancelled):
        heatmaps_for_paths(predictor, paths, should_stop=lambda: True)


def test_the_colours_and_the_overlay(tmp_path: Path) -> None:
    colours = colourise(np.array([[0.0, 0.5, 1.0]]))
    assert colours[0].tolist() == [[0, 0, 128], [128, 255, 128], [128, 0, 0]]  # blue … red
    picture = np.full((8, 8, 3), 200, dtype=np.uint8)
    values = np.zeros((4, 4), dtype=np.float32)
    values[:2, :2] = 1.0  # another size: stretched over the picture
    assert np.array_equal(overlay(picture, values, opacity=0.0), picture)
    covered = overlay(picture, values, opacity=1.0)
    assert covered.shape == (8, 8, 3) and covered.dtype == np.uint8
    assert covered[0, 0].tolist() == [128, 0, 0] and covered[7, 7].tolist() == [0, 0, 128]
    with pytest.raises(ValueError, match="between 0 and 1"):
        overlay(picture, values, opacity=1.5)

    made = Heatmap(values, 0, "circle", 0.9, 0, picture=picture)
    written = write_overlay(tmp_path / "out" / "circle.png", made, opacity=0.5)
    assert np.array_equal(np.asarray(load_image(written)), overlay(picture, values, 0.5))
    with pytest.raises(ValueError, match="no picture"):
        write_overlay(tmp_path / "none.png", Heatmap(values, 0, "circle", 0.9, 0))


def test_the_heatmap_command_writes_an_overlay_per_picture(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train_with_the_cli(tiny_dataset, tmp_path / "run")
    capsys.readouterr()
    (tiny_dataset / "square" / "broken.png").write_bytes(b"not a picture")
    out = tmp_path / "heatmaps"
    code = main(["heatmap", "--run", str(run), str(tiny_dataset / "square"), "--to", str(out)])
    captured = capsys.readouterr()
    assert code == EXIT_OK
    assert "square_000.png" in captured.out and "broken.png" in captured.err
    written = sorted(out.glob("*.png"))
    assert len(written) == 8 and written[0].name == "square_000_heatmap.png"
    assert load_image(written[0]).size == (16, 16)

    one = tiny_dataset / "square" / "square_001.png"
    chosen = ["--class", "stripe", "--opacity", "0.8"]
    code = main(["heatmap", "--run", str(run), str(one), "--to", str(out), *chosen])
    assert code == EXIT_OK and "stripe" in capsys.readouterr().out
    code = main(["heatmap", "--run", str(run), str(tiny_dataset), "--to", str(out), "--class", "x"])
    assert code == EXIT_USAGE and "circle, square, stripe" in capsys.readouterr().err
