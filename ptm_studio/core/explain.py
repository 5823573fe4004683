"""Where a model looked: Grad-CAM heatmaps (with Captum) over the very crop the model saw.

:func:`heatmap` explains one picture, :func:`heatmaps_for_paths` many (progress, stop check):
a map in [0, 1] at the model's input size for the predicted class (or any class chosen), that
class's calibrated probability and the centre-cropped picture the model saw. :func:`overlay`
lays the map over that picture in colour (numpy only), for the window and for reports.

Grad-CAM (Selvaraju et al. 2017) weighs each channel of the backbone's last convolutional stage
by the mean gradient of the class score and keeps the positive sum. It runs with gradients (even
inside a caller's inference_mode) in eval mode; Captum's hooks are removed afterwards, gradients
go to torch.autograd.grad (no ``.grad`` is set) and the train/eval mode is put back, so the
model predicts on unchanged — but not from another thread while a heatmap is being drawn.
Captum is an optional extra (``explain``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image
from torch import nn

from ptm_studio.core.atomic_io import atomic_writer
from ptm_studio.core.calibration import softmax
from ptm_studio.core.data import ImageLoadError, load_for_model
from ptm_studio.core.inference import PredictionCancelled, Predictor
from ptm_studio.core.models import ImageClassifier, ModelError, get_backbone_spec

INSTALL_HINT = 'pip install "ptm-studio[explain]"'

# The backbone's last convolutional stage, as a dotted path inside ``ImageClassifier.backbone``;
# a negative number counts from the end of an nn.Sequential. Every registered CNN has an entry
# (tests/core/test_explain.py checks it against the registry).
TARGET_LAYERS: dict[str, str] = {
    # The last stage's last ReLU, before its max-pool: twice the resolution of the stage output
    # (8 × 8 cells at 64 px instead of 4 × 4), which small pictures need.
    "small_cnn": "features.-1.-2",
    "mobilenet_v3_small": "features.-1",
    "mobilenet_v3_large": "features.-1",
    "efficientnet_b0": "features.-1",
    "resnet18": "layer4",
    "resnet34": "layer4",
    "resnet50": "layer4",
    "regnet_x_400mf": "trunk_output",
    "regnet_y_400mf": "trunk_output",
    "convnext_tiny": "features.-1",
}
# Backbones without a convolutional stage, and why they get no heatmap.
NO_HEATMAP: dict[str, str] = {
    "vit_b_16": (
        "it is a transformer, and PTM Studio draws heatmaps from the feature maps of "
        "convolutional networks"
    ),
}


class HeatmapNotAvailable(Exception):
    """This kind of network cannot be explained with a heatmap (yet); the message says why."""


class CaptumMissing(ImportError):
    """The optional Captum package, which draws the heatmaps, is not installed."""


@dataclass(frozen=True)
class Heatmap:
    """Where the evidence for one class lies in one picture.

    ``values`` is ``[height, width]`` float32 in [0, 1] at the model's input size: 1 where the
    evidence is strongest, 0 where there is none (all 0 when nothing in the picture speaks for
    the class). ``picture`` is the crop the model saw (uint8 RGB), when it came from a file.
    """

    values: np.ndarray
    class_index: int
    class_name: str
    probability: float  # calibrated probability of ``class_index``
    predicted_index: int  # the model's answer, which ``class_index`` need not be
    picture: np.ndarray | None = None
    path: Path | None = None

    @property
    def is_for_prediction(self) -> bool:
        return self.class_index == self.predicted_index

    @property
    def has_evidence(self) -> bool:
        return bool(self.values.max(initial=0.0) > 0.0)


@dataclass(frozen=True)
class Heatmaps:
    """Heatmaps of the pictures that could be read, in order, and why the others could not."""

    heatmaps: tuple[Heatmap, ...]
    unreadable: dict[Path, str] = field(default_factory=dict)


def target_layer_for(model: ImageClassifier) -> nn.Module:
    """The layer Grad-CAM reads for this model's backbone.

    Raises:
        HeatmapNotAvailable: the backbone is a transformer, or has no entry in TARGET_LAYERS.
    """
    name = model.backbone_name
    if name in NO_HEATMAP:
        raise HeatmapNotAvailable(
            f"Heatmaps are not available for {_display_name(name)} yet: {NO_HEATMAP[name]}. "
            "Train a convolutional network (ResNet-18 or MobileNet, for example) to see where "
            "the model looks."
        )
    if name not in TARGET_LAYERS:
        raise HeatmapNotAvailable(
            f"PTM Studio does not know which layer of the '{name}' network to draw heatmaps "
            "from: it has no entry in TARGET_LAYERS (ptm_studio/core/explain.py)."
        )
    return _submodule(model.backbone, TARGET_LAYERS[name])


def model_input_picture(predictor: Predictor, picture: str | Path | Image.Image) -> np.ndarray:
    """The picture as the model sees it (shorter side resized, centre square cut out), as
    uint8 RGB ``[size, size, 3]``. Raises ImageLoadError for a file that cannot be read."""
    return _prepare(predictor, _as_image(predictor, picture))[0]


def heatmap(
    source: Predictor | ImageClassifier,
    picture: torch.Tensor | str | Path | Image.Image,
    class_index: int | None = None,
    *,
    target_layer: nn.Module | None = None,
) -> Heatmap:
    """The Grad-CAM heatmap of one picture for ``class_index`` (default: the predicted class).

    Args:
        source: a Predictor (its preprocessing, class names and calibration are used), or a bare
            ImageClassifier (then ``picture`` must be a preprocessed tensor; probabilities are
            uncalibrated and classes are named by number).
        picture: an image file or picture (with a Predictor), or a normalised tensor
            ``[3, height, width]`` or ``[1, 3, height, width]``.
        target_layer: the layer to read instead of the backbone's entry in TARGET_LAYERS.

    Raises:
        ImageLoadError: the file cannot be read.
        HeatmapNotAvailable: the network has no layer to read (a ViT).
        CaptumMissing: Captum is not installed.
        ValueError: ``class_index`` is not one of the model's classes, or the tensor's shape is wrong.
    """
    model = source.model if isinstance(source, Predictor) else source
    layer = target_layer if target_layer is not None else target_layer_for(model)
    crop: np.ndarray | None = None
    path = Path(picture) if isinstance(picture, str | Path) else None
    if isinstance(picture, torch.Tensor):
        images = _as_batch(picture)
    elif isinstance(source, Predictor):
        crop, tensor = _prepare(source, _as_image(source, picture))
        images = tensor.unsqueeze(0)
    else:
        raise ValueError(
            "A picture file needs the model's preprocessing: pass a Predictor "
            "(Predictor.from_run(run_folder)), or a preprocessed tensor with the bare model."
        )
    return _explain(source, layer, images, class_index, [crop], [path])[0]


def heatmaps_for_paths(
    predictor: Predictor,
    paths: Iterable[Path],
    class_index: int | None = None,
    *,
    batch_size: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Heatmaps:
    """A heatmap per readable picture, in order; ``on_progress(done, total)`` after each batch.

    Raises:
        PredictionCancelled: ``should_stop`` returned True.
        HeatmapNotAvailable, CaptumMissing, ValueError: as :func:`heatmap` (before any file is read).
    """
    layer = target_layer_for(predictor.model)
    _check_class(class_index, predictor.model.num_classes)
    _captum()
    paths = list(paths)
    results: list[Heatmap] = []
    unreadable: dict[Path, str] = {}
    for start in range(0, len(paths), batch_size):
        if should_stop is not None and should_stop():
            raise PredictionCancelled
        crops, tensors, readable = [], [], []
        for path in paths[start : start + batch_size]:
            try:
                crop, tensor = _prepare(predictor, _as_image(predictor, path))
            except ImageLoadError as error:
                unreadable[path] = error.reason
                continue
            crops.append(crop)
            tensors.append(tensor)
            readable.append(path)
        if tensors:
            images = torch.stack(tensors)
            results += _explain(predictor, layer, images, class_index, crops, readable)
        if on_progress is not None:
            on_progress(min(start + batch_size, len(paths)), len(paths))
    return Heatmaps(tuple(results), unreadable)


def colourise(values: np.ndarray) -> np.ndarray:
    """A ``[height, width]`` map in [0, 1] as uint8 RGB in the classic "jet" colours: dark blue
    (0) through cyan, yellow, to dark red (1)."""
    scaled = 4.0 * np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0)
    channels = [np.clip(1.5 - np.abs(scaled - centre), 0.0, 1.0) for centre in (3.0, 2.0, 1.0)]
    return np.rint(255.0 * np.stack(channels, axis=-1)).astype(np.uint8)


def overlay(picture: np.ndarray, heatmap: Heatmap | np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """``picture`` (uint8 RGB ``[height, width, 3]``) with the heatmap's colours laid over it:
    ``opacity`` 0 shows the picture alone, 1 the colours alone. A map of another size is
    stretched to the picture (bilinear)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"The opacity must be between 0 and 1, got {opacity}.")
    pixels = np.asarray(picture)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"The picture must be RGB [height, width, 3], got {pixels.shape}.")
    values = heatmap.values if isinstance(heatmap, Heatmap) else np.asarray(heatmap)
    height, width = pixels.shape[:2]
    if values.shape != (height, width):
        stretched = Image.fromarray(values.astype(np.float32)).resize(
            (width, height), Image.Resampling.BILINEAR
        )
        values = np.asarray(stretched)
    blended = (1.0 - opacity) * pixels.astype(np.float32) + opacity * colourise(values)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def write_overlay(path: str | Path, heatmap: Heatmap, opacity: float = 0.5) -> Path:
    """Save the heatmap over the picture the model saw as a PNG (atomically); returns the path."""
    if heatmap.picture is None:
        raise ValueError(
            "This heatmap has no picture to lay it over (it was made from a tensor); use "
            "overlay(picture, heatmap) with the picture, then save that."
        )
    target = Path(path)
    image = Image.fromarray(overlay(heatmap.picture, heatmap, opacity))
    with atomic_writer(target, "wb") as handle:
        image.save(handle, format="PNG")
    return target


# ---------------------------------------------------------------------------- the work
def _explain(
    source: Predictor | ImageClassifier,
    layer: nn.Module,
    images: torch.Tensor,
    class_index: int | None,
    crops: Sequence[np.ndarray | None],
    paths: Sequence[Path | None],
) -> list[Heatmap]:
    model = source.model if isinstance(source, Predictor) else source
    _check_class(class_index, model.num_classes)
    names = (
        source.class_names
        if isinstance(source, Predictor)
        else tuple(f"class {index}" for index in range(model.num_classes))
    )
    temperature = source.temperature if isinstance(source, Predictor) else 1.0
    logits, maps = _grad_cam(model, layer, images, class_index)
    probabilities = softmax(logits, temperature)
    predicted = probabilities.argmax(axis=1)
    heatmaps = []
    for row in range(len(images)):
        chosen = int(predicted[row]) if class_index is None else class_index
        heatmaps.append(
            Heatmap(
                values=maps[row],
                class_index=chosen,
                class_name=names[chosen],
                probability=float(probabilities[row, chosen]),
                predicted_index=int(predicted[row]),
                picture=crops[row],
                path=paths[row],
            )
        )
    return heatmaps


def _grad_cam(
    model: ImageClassifier, layer: nn.Module, images: torch.Tensor, class_index: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits ``[N, classes]`` and Grad-CAM maps ``[N, height, width]`` in [0, 1]."""
    attribution = _captum()
    was_training = model.training
    model.eval()  # BatchNorm with its running statistics, no dropout: the model as it predicts
    try:
        # Inference mode off even inside a caller's inference_mode block: Grad-CAM needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            device = next(model.parameters()).device
            inputs = images.detach().to(device).clone()  # a plain tensor, never an inference one
            with torch.no_grad():
                logits = model(inputs).float()
            targets = (
                logits.argmax(dim=1).tolist()
                if class_index is None
                else [class_index] * len(inputs)
            )
            grad_cam = attribution.LayerGradCam(model, layer)
            cams = grad_cam.attribute(inputs, target=targets, relu_attributions=True)
            cams = attribution.LayerAttribution.interpolate(
                cams.detach(), tuple(inputs.shape[-2:]), interpolate_mode="bilinear"
            )
    finally:
        model.train(was_training)
    maps = cams[:, 0].float().cpu().numpy()
    return logits.cpu().numpy(), _scaled_to_unit(maps)


def _scaled_to_unit(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its own peak; a map with no positive evidence stays all 0."""
    maps = np.nan_to_num(np.clip(maps, 0.0, None), nan=0.0, posinf=0.0)
    peaks = maps.reshape(len(maps), -1).max(axis=1, initial=0.0)
    safe = np.where(peaks > 0.0, peaks, 1.0)[:, None, None]
    return np.clip(maps / safe, 0.0, 1.0).astype(np.float32)


def _captum() -> ModuleType:
    """captum.attr, imported only when a heatmap is asked for (it loads matplotlib too)."""
    try:
        import captum.attr as attribution
    except ImportError as error:
        raise CaptumMissing(
            "Heatmaps need the Captum package, which is not installed. Install it with: "
            f"{INSTALL_HINT}"
        ) from error
    return attribution


def _prepare(predictor: Predictor, image: Image.Image) -> tuple[np.ndarray, torch.Tensor]:
    """The crop the model sees (uint8 RGB, height × width × 3) and the normalised tensor made
    from it — exactly ``predictor.transform(image)``, in its two stages."""
    crop = predictor.transform.prepare(image)
    return crop.permute(1, 2, 0).numpy(), predictor.transform.augment(crop)


def _as_image(predictor: Predictor, picture: str | Path | Image.Image) -> Image.Image:
    if isinstance(picture, Image.Image):
        return picture.convert("RGB")
    return load_for_model(picture, predictor.decode_side)


def _as_batch(picture: torch.Tensor) -> torch.Tensor:
    if picture.ndim == 3:
        picture = picture.unsqueeze(0)
    if picture.ndim != 4 or picture.shape[0] != 1 or picture.shape[1] != 3:
        raise ValueError(
            "The picture tensor must be [3, height, width] or [1, 3, height, width], "
            f"got {tuple(picture.shape)}; heatmaps_for_paths explains several pictures."
        )
    return picture


def _check_class(class_index: int | None, num_classes: int) -> None:
    if class_index is not None and not 0 <= class_index < num_classes:
        raise ValueError(
            f"There is no class number {class_index}: this model knows {num_classes} "
            f"classes (0 to {num_classes - 1})."
        )


def _submodule(root: nn.Module, dotted: str) -> nn.Module:
    module = root
    for part in dotted.split("."):
        if part.lstrip("-").isdigit() and isinstance(module, nn.Sequential):
            module = module[int(part)]
        else:
            module = module.get_submodule(part)
    return module


def _display_name(backbone: str) -> str:
    try:
        return get_backbone_spec(backbone).display_name
    except ModelError:  # a model built outside the registry: its own name will do
        return backbone
