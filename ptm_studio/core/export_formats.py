"""The kinds of file an export can write and their names: plain values, no torch, so the window
can offer them before torch has loaded (issue 14, B5)."""

from __future__ import annotations

FORMATS = ("safetensors", "torchscript", "onnx")
FILE_NAMES = {
    "safetensors": "model.safetensors",
    "torchscript": "model.torchscript.pt",
    "onnx": "model.onnx",
}
DESCRIPTION_FILE = "model.json"
