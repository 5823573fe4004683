"""The files of a model export: the weights, TorchScript and ONNX graphs, and model.json.

model.json is the contract with whoever uses the export: everything needed to prepare a picture
and read the answer is in it, in words and as fields. The parity check (export_parity) follows
it alone, so a wrong description is caught before anyone relies on it.
"""

from __future__ import annotations

import contextlib
import importlib
import platform
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torchvision
from torch import nn

from ptm_studio import __version__
from ptm_studio.core.data import BACKGROUND_COLOUR, decode_side_for
from ptm_studio.core.export_formats import DESCRIPTION_FILE as DESCRIPTION_FILE
from ptm_studio.core.export_formats import FILE_NAMES as FILE_NAMES
from ptm_studio.core.export_formats import FORMATS as FORMATS
from ptm_studio.core.models import ImageClassifier, get_backbone_spec
from ptm_studio.core.models.registry import classifier_path

EXPORT_FORMAT_VERSION = 1
# Opset 17 runs on every onnxruntime of the last years (1.13+) and has every operator the
# registered backbones need; a newer opset would only narrow who can run the file.
ONNX_OPSET = 17
INPUT_NAME = "pictures"
EXPORT_EXTRA_HINT = 'pip install "ptm-studio[export]"'


class FormatNotWritten(Exception):
    """A format cannot be written (a package is missing, the exporter fails on the network);
    the message says why and how to fix it. The other formats are still written."""


def write_safetensors(model: ImageClassifier, path: Path) -> None:
    """The state dict as PTM Studio's checkpoints hold it (``backbone.*``, ``head.1.*``)."""
    tensors = {
        name: tensor.detach().to("cpu").contiguous().clone()
        for name, tensor in model.state_dict().items()
    }
    metadata = {"format": "pt", "backbone": model.backbone_name, "source": "PTM Studio"}
    # save + write_bytes rather than save_file: the file then gets the user's usual permissions.
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))


class BakedPreprocessing(nn.Module):
    """uint8 RGB pictures [batch, 3, size, size] (already resized and cropped) → calibrated
    probabilities: the scaling, normalisation and softmax(logits / temperature) inside."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        temperature: float,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))
        self.temperature = float(temperature)

    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        values = pictures.to(torch.float32) / 255.0
        logits = self.model((values - self.mean) / self.std)
        return torch.softmax(logits / self.temperature, dim=1)


def graph_module(
    model: ImageClassifier, meta: dict[str, Any], temperature: float, *, baked: bool
) -> tuple[nn.Module, torch.Tensor]:
    """The module to trace, in eval mode on the CPU, and an example input of batch 2 (the
    graphs keep the batch size free; the parity check runs them on another one)."""
    model = model.to("cpu").eval()
    size = int(meta["image_size"])
    if not baked:
        return model, torch.zeros(2, 3, size, size, dtype=torch.float32)
    module = BakedPreprocessing(model, meta["mean"], meta["std"], temperature).eval()
    return module, torch.zeros(2, 3, size, size, dtype=torch.uint8)


def write_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Traced, not scripted: every registered backbone traces, while scripting fails on some
    torchvision code; the parity check confirms the trace with a different batch size."""
    with torch.no_grad(), quiet_torch_deprecations():
        traced = torch.jit.trace(module, example)
        torch.jit.save(traced, str(path))


def onnx_unavailable_reason() -> str | None:
    """Why ONNX cannot be written and checked here, or None when it can."""
    missing = []
    for package in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if not missing:
        return None
    several = len(missing) > 1
    return (
        f"{FILE_NAMES['onnx']} was not written: ONNX needs the optional "
        f"{'packages' if several else 'package'} {' and '.join(missing)}, which "
        f"{'are' if several else 'is'} not installed. Install {'them' if several else 'it'} "
        f"with {EXPORT_EXTRA_HINT}, then export again."
    )


def write_onnx(module: nn.Module, example: torch.Tensor, path: Path, output_name: str) -> None:
    """The TorchScript-based exporter (``dynamo=False``): it needs no onnxscript and no network,
    and traces the same graph as the TorchScript file. The batch dimension stays free."""
    reason = onnx_unavailable_reason()
    if reason is not None:
        raise FormatNotWritten(reason)
    onnx = importlib.import_module("onnx")
    # Not under no_grad: without gradients, attention layers take PyTorch's fused fast path
    # (aten::_native_multi_head_attention), which has no ONNX form; the exporter needs none.
    with quiet_torch_deprecations():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
        )
    onnx.checker.check_model(str(path))  # a malformed file fails here, named, not at the user's


@contextlib.contextmanager
def quiet_torch_deprecations() -> Iterator[None]:
    """Silence PyTorch's notices that TorchScript and its ONNX exporter are deprecated: the
    export uses them knowingly (they need nothing beyond torch and onnx), and the test suite
    turns warnings into errors. Only these messages are silenced; nothing else in PTM Studio
    uses catch_warnings, so the brief global change cannot race another thread's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based")
        warnings.filterwarnings("ignore", message=r"The feature will be removed")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def describe_export(
    meta: dict[str, Any],
    *,
    checkpoint: Path,
    feature_dim: int,
    temperature: float,
    formats: Sequence[str],
    baked: bool,
) -> dict[str, Any]:
    """Everything model.json says: classes, network, preprocessing, outputs, provenance."""
    backbone = str(meta["backbone"])
    spec = get_backbone_spec(backbone)
    return {
        "format": "ptm-studio-model-export",
        "format_version": EXPORT_FORMAT_VERSION,
        "class_names": list(meta["class_names"]),
        "num_classes": int(meta["num_classes"]),
        "backbone": backbone,
        "network": {
            "backbone": backbone,
            "torchvision_name": spec.torchvision_name,
            # The torchvision module the classifier head replaces; see the README's recipe.
            "classifier_path": classifier_path(backbone),
            "feature_dim": feature_dim,
            "state_dict_keys": "backbone.* (the network without its classifier), head.1.weight "
            "and head.1.bias (the linear classifier; head.0 is dropout and has no weights)",
        },
        "preprocessing": describe_preprocessing(meta),
        "preprocessing_baked_in": baked,
        "calibration": {
            "temperature": temperature,
            "is_calibrated": temperature != 1.0,
            "rule": "probabilities = softmax(logits / temperature)",
            "note": "fitted on the run's validation pictures when it was evaluated"
            if temperature != 1.0
            else "1.0: the run was not evaluated, so its confidences are not calibrated",
        },
        "files": {name: describe_file(name, meta, baked) for name in formats},
        "versions": _versions(),
        "source": {
            "checkpoint": str(checkpoint),
            "epoch": meta.get("epoch"),
            "val_accuracy": meta.get("val_accuracy"),
            "checkpoint_saved_at": meta.get("saved_at"),
        },
        "exported_at": datetime.now().isoformat(timespec="seconds"),
    }


def describe_preprocessing(meta: dict[str, Any]) -> dict[str, Any]:
    """How the app turns a picture into the network's input (build_transform, train=False)."""
    size = int(meta["image_size"])
    decode_side = decode_side_for(size)
    mean = [float(value) for value in meta["mean"]]
    std = [float(value) for value in meta["std"]]
    return {
        "summary": f"shorter side to {size} pixels, then the centre {size} × {size} square",
        "steps": [
            "Decode as 8-bit RGB: EXIF orientation applied, transparent pixels laid on white; "
            f"a JPEG larger than {decode_side} × {decode_side} is decoded at the smallest reduced "
            f"scale (1/2 to 1/8, Pillow's draft mode) that still covers {decode_side} × "
            f"{decode_side}; a picture with a side over 4096 pixels is first reduced by whole "
            "factors (box averages) to 4096 at most, as PTM Studio reads pictures.",
            f"Resize so the shorter side is {size} pixels, the longer one in proportion (rounded "
            "down), with Pillow's bilinear filter (Image.resize, which antialiases).",
            f"Cut out the centre {size} × {size} square (offsets round((side − {size}) / 2)).",
            "Scale the values to [0, 1]: divide by 255.",
            f"Per channel (R, G, B): subtract the mean {mean}, divide by the std {std}.",
            f"Lay out as float32 [batch, 3, {size}, {size}] (NCHW).",
        ],
        "image_size": size,
        "decode_max_side": decode_side,
        "transparent_background": list(BACKGROUND_COLOUR),
        "resize": {"rule": "shorter_side", "size": size, "filter": "bilinear", "antialias": True},
        "crop": {"rule": "centre", "size": size},
        "value_scale": [0.0, 1.0],
        "divide_by": 255.0,
        "mean": mean,
        "std": std,
        "channel_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
    }


def describe_file(name: str, meta: dict[str, Any], baked: bool) -> dict[str, Any]:
    """One exported file: what it holds, what it takes and what it gives."""
    size = int(meta["image_size"])
    classes = int(meta["num_classes"])
    logits = {"name": "logits", "shape": ["batch", classes], "values": "logits"}
    normalised = {
        "name": INPUT_NAME,
        "dtype": "float32",
        "shape": ["batch", 3, size, size],
        "values": "prepared as every step of `preprocessing` says",
    }
    if name == "safetensors":
        return {
            "file": FILE_NAMES[name],
            "holds": "the network's weights (a state dict); build the network to use them",
            "input": normalised,
            "output": logits,
        }
    graph: dict[str, Any] = {"file": FILE_NAMES[name], "holds": "the whole network (CPU, eval)"}
    if name == "onnx":
        graph["opset"] = ONNX_OPSET
    if not baked:
        return {**graph, "input": normalised, "output": logits}
    return {
        **graph,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "shape": ["batch", 3, size, size],
            "values": "RGB 0–255 after the decode, resize and crop steps of `preprocessing`; "
            "the scaling and normalisation are inside",
        },
        "output": {
            "name": "probabilities",
            "shape": ["batch", classes],
            "values": "calibrated probabilities: softmax(logits / temperature) is inside",
        },
    }


def output_name(baked: bool) -> str:
    return "probabilities" if baked else "logits"


def _versions() -> dict[str, Any]:
    versions: dict[str, Any] = {
        "ptm_studio": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "onnx_opset": ONNX_OPSET,
    }
    for package in ("onnx", "onnxruntime"):
        try:
            versions[package] = importlib.import_module(package).__version__
        except ImportError:
            versions[package] = None
    return versions
