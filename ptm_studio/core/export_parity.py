"""The parity check: does each exported file answer as the app does, on real pictures?

Two comparisons per file, both against the app's own Predictor:

- **same input**: the file gets the very tensors the app's model gets (for a graph with the
  preprocessing baked in, the app's pixels before scaling). Only the runtime differs, so the
  largest probability difference must stay below ``SAME_INPUT_TOLERANCE`` (1e-4).
- **end to end**: the pictures are prepared with Pillow and numpy following model.json alone
  (never the app's torchvision transform), then run through the file. A wrong image size, mean,
  std, filter, crop, channel order, layout or temperature in model.json shows up here. Its
  tolerance, ``END_TO_END_TOLERANCE``, is explained beside it.

A picture counts as answered differently when the file's top class is not the app's, unless
the app itself holds the two classes within the tolerance (a tie may fall either way).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torchvision
from PIL import Image
from torch import nn

from ptm_studio.core.atomic_io import json_safe
from ptm_studio.core.calibration import softmax
from ptm_studio.core.data import load_for_model
from ptm_studio.core.export_files import DESCRIPTION_FILE, FILE_NAMES, quiet_torch_deprecations
from ptm_studio.core.file_reading import read_text
from ptm_studio.core.inference import PredictionCancelled, Predictor
from ptm_studio.core.models import build_classifier

SAME_INPUT_TOLERANCE = 1e-4
# The app resizes with Pillow's bilinear filter too (torchvision hands PIL pictures to
# Image.resize), so following model.json reproduces the app's pixels exactly; what remains is
# float rounding and the runtimes' own arithmetic: about 1e-7 measured for the small CNN and
# ResNet-18 in all three formats. 1e-3 (0.1 percentage point) leaves a wide margin for other
# CPUs' kernels, larger networks and a sharp temperature, while a wrong step in model.json moves
# probabilities by more: on the tests' tiny run a mean off by 0.01 moves them by 3e-3, a filter
# named wrongly (Lanczos) by 1e-2, a size off by a quarter by 6e-2, swapped channels by 0.13.
END_TO_END_TOLERANCE = 1e-3
FORMAT_TITLES = {"safetensors": "safetensors", "torchscript": "TorchScript", "onnx": "ONNX"}
_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
Runner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ParityReport:
    """How one exported file compares with the app on the parity pictures."""

    format: str
    file: str
    pictures: int
    same_answers: int  # end to end: pictures prepared as model.json says
    largest_difference: float  # end to end, in probability (0 to 1)
    same_input_answers: int  # on the app's own input tensors
    same_input_difference: float
    error: str = ""  # the file, or model.json, could not be used at all
    end_to_end_error: str = ""  # the file rejects the pictures prepared as model.json says

    @property
    def is_ok(self) -> bool:
        return not self.problem()

    def problem(self) -> str:
        """What is wrong, in words a user can act on; empty when the file matches the app."""
        title = f"The {FORMAT_TITLES.get(self.format, self.format)} file ({self.file})"
        if self.error:
            return f"{title} could not be checked: {self.error}. Do not use it; export again."
        differing = self.pictures - self.same_input_answers
        if differing or not self.same_input_difference <= SAME_INPUT_TOLERANCE:
            return (
                f"{title} disagrees with the app even on the app's own prepared input "
                f"({differing} of {self.pictures} pictures answered differently, largest "
                f"probability difference {self.same_input_difference:.2g}, allowed "
                f"{SAME_INPUT_TOLERANCE:g}): it does not compute what the app's model computes. "
                "Do not use it; export again, and report it if it happens again."
            )
        differing = self.pictures - self.same_answers
        if self.end_to_end_error:
            how = (
                f"does not take the pictures as model.json prepares them ({self.end_to_end_error})"
            )
        elif differing:
            how = (
                f"disagrees with the app on {differing} of {self.pictures} pictures (largest "
                f"probability difference {self.largest_difference:.2g}) when the pictures are "
                "prepared as model.json says"
            )
        elif not self.largest_difference <= END_TO_END_TOLERANCE:
            how = (
                "gives the app's answers but not its probabilities (largest difference "
                f"{self.largest_difference:.2g}, allowed {END_TO_END_TOLERANCE:g}) when the "
                "pictures are prepared as model.json says"
            )
        else:
            return ""
        return (
            f"{title} {how}: do not use it. The file itself matches the app on the app's own "
            "input, so the preprocessing model.json describes is not the app's; export again, "
            "and report it if it happens again."
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file": self.file,
            "pictures": self.pictures,
            "same_answers": self.same_answers,
            "largest_probability_difference": json_safe(self.largest_difference),
            "same_input_answers": self.same_input_answers,
            "same_input_largest_probability_difference": json_safe(self.same_input_difference),
            "tolerances": {
                "end_to_end": END_TO_END_TOLERANCE,
                "same_input": SAME_INPUT_TOLERANCE,
            },
            "error": self.error,
            "end_to_end_error": self.end_to_end_error,
            "is_ok": self.is_ok,
        }


@dataclass(frozen=True)
class _AppAnswers:
    """What the app computes for the readable parity pictures."""

    paths: tuple[Path, ...]
    probabilities: np.ndarray  # the Predictor end to end
    tensors: np.ndarray  # the app's prepared input [N, 3, S, S], float32
    pixels: np.ndarray  # the same before scaling: uint8 [N, 3, S, S]
    same_input_probabilities: np.ndarray  # the app's model on ``tensors``


def check_parity(
    folder: Path,
    predictor: Predictor,
    pictures: Sequence[Path],
    formats: Sequence[str],
    *,
    app_mean: Sequence[float],
    app_std: Sequence[float],
    should_stop: Callable[[], bool] | None = None,
    on_checked: Callable[[str], None] | None = None,
) -> tuple[ParityReport, ...]:
    """Compare every file of ``formats`` in the export ``folder`` with ``predictor`` on
    ``pictures``; ``app_mean``/``app_std`` are the checkpoint's own (never model.json's).
    ``on_checked(format)`` after each file. Raises PredictionCancelled when stopped."""
    app = _app_answers(predictor, pictures, app_mean, app_std, should_stop)
    if not app.paths:
        return tuple(_failed(name, "none of the parity pictures could be read") for name in formats)
    try:
        description = json.loads(read_text(folder / DESCRIPTION_FILE))
        prepared = _prepare_as_described(app.paths, description["preprocessing"])
    except Exception as error:  # model.json unreadable or describing nonsense: no file can pass
        reason = f"{DESCRIPTION_FILE} cannot be followed ({_short(error)})"
        return tuple(_failed(name, reason) for name in formats)
    reports = []
    for name in formats:
        if should_stop is not None and should_stop():
            raise PredictionCancelled
        reports.append(_check_file(folder, name, description, app, prepared))
        if on_checked is not None:
            on_checked(name)
    return tuple(reports)


def _check_file(
    folder: Path,
    name: str,
    description: dict[str, Any],
    app: _AppAnswers,
    prepared: tuple[np.ndarray, np.ndarray],
) -> ParityReport:
    entry = description.get("files", {}).get(name)
    if not isinstance(entry, dict):
        return _failed(name, f"{DESCRIPTION_FILE} does not list it")
    file = str(entry.get("file", "?"))
    try:
        run = _runner(name, folder / file, description)
        is_baked = entry["input"]["dtype"] == "uint8"
        temperature = float(description["calibration"]["temperature"])
        same_input = _probabilities(
            run, app.pixels if is_baked else app.tensors, entry, temperature
        )
        _check_shape(same_input, app.probabilities)
    except Exception as error:  # any failure of a runtime means: do not use this file
        return _failed(name, _short(error), file)
    report = ParityReport(
        format=name,
        file=file,
        pictures=len(app.paths),
        same_answers=0,
        largest_difference=math.nan,
        same_input_answers=_same_answers(
            app.same_input_probabilities, same_input, SAME_INPUT_TOLERANCE
        ),
        same_input_difference=_largest_difference(app.same_input_probabilities, same_input),
    )
    pixels, values = prepared
    try:
        end_to_end = _probabilities(run, pixels if is_baked else values, entry, temperature)
        _check_shape(end_to_end, app.probabilities)
    except Exception as error:  # e.g. a size model.json gets wrong, which the graph refuses
        return dataclasses.replace(report, end_to_end_error=_short(error))
    return dataclasses.replace(
        report,
        same_answers=_same_answers(app.probabilities, end_to_end, END_TO_END_TOLERANCE),
        largest_difference=_largest_difference(app.probabilities, end_to_end),
    )


def _app_answers(
    predictor: Predictor,
    pictures: Sequence[Path],
    mean: Sequence[float],
    std: Sequence[float],
    should_stop: Callable[[], bool] | None,
) -> _AppAnswers:
    scores = predictor.score_paths(pictures, should_stop=should_stop)
    images = [load_for_model(path, predictor.decode_side) for path in scores.paths]
    if not images:
        nothing = np.zeros(0)
        return _AppAnswers((), nothing, nothing, nothing, nothing)
    tensors = torch.stack([predictor.transform(image) for image in images])
    with torch.inference_mode():
        logits = predictor.model(tensors.to(predictor.device)).float().cpu().numpy()
    shape = (1, 3, 1, 1)
    # The app's values are (k / 255 − mean) / std: undoing that and rounding gives back k.
    restored = (tensors.numpy() * np.reshape(std, shape) + np.reshape(mean, shape)) * 255.0
    return _AppAnswers(
        paths=scores.paths,
        probabilities=predictor.probabilities(scores.logits),
        tensors=tensors.numpy(),
        pixels=np.clip(np.rint(restored), 0, 255).astype(np.uint8),
        same_input_probabilities=predictor.probabilities(logits),
    )


def _prepare_as_described(
    paths: Sequence[Path], preprocessing: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The pictures as model.json says to prepare them: uint8 pixels after the crop, and the
    scaled, normalised float32 values; both in model.json's channel order and layout."""
    crops = [
        crop_as_described(
            load_for_model(path, int(preprocessing["decode_max_side"])), preprocessing
        )
        for path in paths
    ]
    pixels = np.stack(crops)  # [N, H, W, 3]
    mean = np.asarray(preprocessing["mean"], dtype=np.float32)
    std = np.asarray(preprocessing["std"], dtype=np.float32)
    values = (pixels.astype(np.float32) / np.float32(preprocessing["divide_by"]) - mean) / std
    if preprocessing["layout"] == "NCHW":
        return pixels.transpose(0, 3, 1, 2).copy(), values.transpose(0, 3, 1, 2).copy()
    return pixels, values.astype(np.float32)


def crop_as_described(image: Image.Image, preprocessing: dict[str, Any]) -> np.ndarray:
    """One decoded RGB picture → uint8 [H, W, 3]: shorter side to the size, centre square."""
    size = int(preprocessing["resize"]["size"])
    width, height = image.size
    if width <= height:  # the longer side in proportion, rounded down, as torchvision does
        new_size = (size, int(size * height / width))
    else:
        new_size = (int(size * width / height), size)
    resized = image.resize(new_size, _FILTERS[preprocessing["resize"]["filter"]])
    crop = int(preprocessing["crop"]["size"])
    left = round((new_size[0] - crop) / 2)
    top = round((new_size[1] - crop) / 2)
    pixels = np.asarray(resized.crop((left, top, left + crop, top + crop)).convert("RGB"))
    return pixels[..., ::-1] if preprocessing["channel_order"] == "BGR" else pixels


def _runner(name: str, path: Path, description: dict[str, Any]) -> Runner:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing")
    if name == "torchscript":
        with quiet_torch_deprecations():
            module = torch.jit.load(str(path), map_location="cpu")
        return _torch_runner(module.eval())
    if name == "onnx":
        return _onnx_runner(path, str(description["files"][name]["input"]["name"]))
    if name == "safetensors":
        state = safetensors.torch.load_file(str(path), device="cpu")
        return _torch_runner(rebuild_network(description, state))
    raise ValueError(f"unknown format {name!r}")


def _torch_runner(module: nn.Module) -> Runner:
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(module(torch.from_numpy(np.ascontiguousarray(batch))).float())

    return run


def _onnx_runner(path: Path, input_name: str) -> Runner:
    onnxruntime: Any = importlib.import_module("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # its notices go to the terminal, not to the report
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {input_name: np.ascontiguousarray(batch)})[0])

    return run


def rebuild_network(description: dict[str, Any], state: dict[str, torch.Tensor]) -> nn.Module:
    """The network model.json describes, with ``state`` (model.safetensors) loaded, as the
    README tells a colleague to: plain torchvision for its backbones, PTM Studio otherwise."""
    network = description["network"]
    classes = int(description["num_classes"])
    torchvision_name = network.get("torchvision_name")
    if not torchvision_name:
        classifier = build_classifier(str(description["backbone"]), classes)
        classifier.load_state_dict(state)
        return classifier.eval()
    model = torchvision.models.get_model(str(torchvision_name), weights=None)
    path = str(network["classifier_path"])
    model.set_submodule(path, nn.Linear(int(network["feature_dim"]), classes))
    renamed = {
        key.removeprefix("backbone."): value
        for key, value in state.items()
        if key.startswith("backbone.")
    }
    renamed[f"{path}.weight"] = state["head.1.weight"]
    renamed[f"{path}.bias"] = state["head.1.bias"]
    model.load_state_dict(renamed)  # strict: a key too many or too few is an error
    return model.eval()


def _probabilities(
    run: Runner, batch: np.ndarray, entry: dict[str, Any], temperature: float
) -> np.ndarray:
    """The file's answers for ``batch`` as probabilities, reading its output as model.json says."""
    outputs = run(batch)
    if entry["output"]["name"] == "probabilities":
        return np.asarray(outputs, dtype=np.float64)
    return softmax(outputs, temperature)


def _check_shape(outputs: np.ndarray, expected: np.ndarray) -> None:
    if outputs.shape != expected.shape:
        raise ValueError(f"it gave outputs of shape {outputs.shape}, not {expected.shape}")


def _same_answers(reference: np.ndarray, other: np.ndarray, tolerance: float) -> int:
    """Pictures whose top class is the app's, or one the app holds within ``tolerance`` of it."""
    if not len(reference):
        return 0
    rows = np.arange(len(reference))
    chosen = other.argmax(axis=1)
    gap = reference.max(axis=1) - reference[rows, chosen]
    return int(np.sum(gap <= tolerance))


def _largest_difference(reference: np.ndarray, other: np.ndarray) -> float:
    if not len(reference):
        return 0.0
    difference = float(np.max(np.abs(reference - other)))
    return difference if math.isfinite(difference) else math.inf


def _failed(name: str, reason: str, file: str | None = None) -> ParityReport:
    shown = file or FILE_NAMES.get(name, name)
    return ParityReport(name, shown, 0, 0, math.nan, 0, math.nan, error=reason)


def _short(error: BaseException) -> str:
    """An exception as one line of at most 300 characters (runtimes' messages run long)."""
    if isinstance(error, KeyError):
        return f"it has no {error.args[0]!r}"
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"
