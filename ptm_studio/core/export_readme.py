"""README.md of a model export: for a colleague who has the folder and not PTM Studio.

Every code block is complete Python that runs from inside the export folder once a picture
``picture.jpg`` is put there; the tests run them, so the page cannot drift from the files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ptm_studio.core.export_parity import (
    END_TO_END_TOLERANCE,
    FORMAT_TITLES,
    SAME_INPUT_TOLERANCE,
    ParityReport,
)

_FENCE = "```"


def readme_text(
    description: dict[str, Any],
    reports: Sequence[ParityReport],
    pictures_note: str,
    not_written: Mapping[str, str],
) -> str:
    """The whole page: verdict, files, preprocessing, loading each format, temperature, parity;
    ``not_written`` says why a format asked for is missing."""
    sections = [
        _heading(description, reports, not_written),
        _files(description),
        _classes(description),
        _preparing(description),
        *(_loading(name, description) for name in description["files"]),
        _temperature(description),
        _parity(reports, pictures_note),
        _versions(description),
    ]
    return "\n\n".join(sections) + "\n"


def _heading(
    description: dict[str, Any], reports: Sequence[ParityReport], not_written: Mapping[str, str]
) -> str:
    source = description["source"]
    accuracy = source.get("val_accuracy")
    measured = (
        f", validation accuracy {100 * accuracy:.1f} %"
        if isinstance(accuracy, int | float) and math.isfinite(accuracy)
        else ""
    )
    lines = [
        f"# Image classifier: {description['backbone']}, {description['num_classes']} classes",
        "",
        f"Exported by PTM Studio {description['versions']['ptm_studio']} on "
        f"{description['exported_at']} from the checkpoint `{source['checkpoint']}` (epoch "
        f"{source.get('epoch', '?')}{measured}).",
        "",
    ]
    failed = [report for report in reports if not report.is_ok]
    if failed:
        lines.append("> **The parity check FAILED. Do not use these files:**")
        lines += [f"> - {report.problem()}" for report in failed]
    else:
        lines.append(
            "> **Parity check passed:** every file below gave the same answers as PTM Studio on "
            f"the check's pictures, within {END_TO_END_TOLERANCE:g} in probability (see the end)."
        )
    lines += [f">\n> {reason}" for reason in not_written.values()]
    return "\n".join(lines)


def _files(description: dict[str, Any]) -> str:
    rows = [
        "## Files",
        "",
        "| file | what it holds | takes | gives |",
        "|---|---|---|---|",
    ]
    for entry in description["files"].values():
        takes = f"{entry['input']['dtype']} {_shape(entry['input']['shape'])}"
        rows.append(
            f"| `{entry['file']}` | {entry['holds']} | {takes} | {entry['output']['name']} "
            f"{_shape(entry['output']['shape'])} |"
        )
    rows += [
        "| `model.json` | all of this page as data: classes, preprocessing, temperature, "
        "versions, where it came from | | |",
        "| `parity.json` | the parity check's numbers | | |",
    ]
    if description["preprocessing_baked_in"]:
        rows += [
            "",
            "The TorchScript and ONNX graphs have the preprocessing **baked in**: they take "
            "uint8 RGB pictures already resized and cropped (the first three steps below) and "
            "give calibrated probabilities (the temperature is applied inside). The safetensors "
            "weights, being only weights, still take the fully prepared float input.",
        ]
    return "\n".join(rows)


def _classes(description: dict[str, Any]) -> str:
    names = description["class_names"]
    lines = ["## Classes", "", "Output column → class:", ""]
    lines += [f"- {index}: {name}" for index, name in enumerate(names)]
    return "\n".join(lines)


def _preparing(description: dict[str, Any]) -> str:
    steps = description["preprocessing"]
    size = steps["image_size"]
    numbered = "\n".join(f"{index}. {step}" for index, step in enumerate(steps["steps"], 1))
    code = f'''import numpy as np
from PIL import Image, ImageOps

IMAGE_SIZE = {size}
DECODE_SIDE = {steps["decode_max_side"]}
MEAN = np.array({steps["mean"]}, dtype=np.float32)
STD = np.array({steps["std"]}, dtype=np.float32)
CLASS_NAMES = {list(description["class_names"])!r}
TEMPERATURE = {description["calibration"]["temperature"]!r}


def pixels(path):
    """The picture as uint8 RGB [3, IMAGE_SIZE, IMAGE_SIZE]: decoded, resized, centre-cropped."""
    with Image.open(path) as opened:
        # A large JPEG is decoded at a reduced scale (1/2 to 1/8) first, as PTM Studio does.
        scale = min(1.0, DECODE_SIDE / max(opened.size))
        opened.draft("RGB", (max(1, round(opened.width * scale)), max(1, round(opened.height * scale))))
        image = ImageOps.exif_transpose(opened)
    if image.has_transparency_data:  # Pillow 10.1 or newer
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    image = image.convert("RGB")
    width, height = image.size
    if width <= height:
        size = (IMAGE_SIZE, int(IMAGE_SIZE * height / width))
    else:
        size = (int(IMAGE_SIZE * width / height), IMAGE_SIZE)
    image = image.resize(size, Image.Resampling.BILINEAR)
    left, top = round((size[0] - IMAGE_SIZE) / 2), round((size[1] - IMAGE_SIZE) / 2)
    image = image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def preprocess(path):
    """The network's input for one picture: float32 [3, IMAGE_SIZE, IMAGE_SIZE]."""
    values = pixels(path).astype(np.float32) / 255.0
    return (values - MEAN[:, None, None]) / STD[:, None, None]


def probabilities(logits):
    """Calibrated class probabilities: softmax(logits / TEMPERATURE), row by row."""
    scaled = logits / TEMPERATURE
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=1, keepdims=True)'''
    return "\n".join(
        [
            "## Preparing a picture",
            "",
            f"The network sees {size} × {size} pictures: {steps['summary']}. Step by step:",
            "",
            numbered,
            "",
            "In Python (Pillow and numpy; the blocks below use these functions):",
            "",
            f"{_FENCE}python\n{code}\n{_FENCE}",
            "",
            "PTM Studio decodes a few rare kinds of file more carefully than this (16-bit "
            "pictures are scaled, not clipped); for ordinary photos the result is the same.",
        ]
    )


def _loading(name: str, description: dict[str, Any]) -> str:
    entry = description["files"][name]
    baked = entry["output"]["name"] == "probabilities"
    prepare = "pixels" if baked else "preprocess"
    answer = (
        "chances = outputs  # already calibrated probabilities"
        if baked
        else ("chances = probabilities(outputs)")
    )
    if name == "torchscript":
        code = f'''import torch

model = torch.jit.load("{entry["file"]}").eval()
batch = torch.from_numpy(np.stack([{prepare}("picture.jpg")]))
with torch.no_grad():
    outputs = model(batch).numpy()'''
    elif name == "onnx":
        code = f'''import onnxruntime

session = onnxruntime.InferenceSession("{entry["file"]}", providers=["CPUExecutionProvider"])
batch = np.stack([{prepare}("picture.jpg")])
outputs = session.run(None, {{"{entry["input"]["name"]}": batch}})[0]'''
    else:
        code = _safetensors_code(description, entry)
    code += f"\n{answer}\nprint(CLASS_NAMES[int(chances.argmax(axis=1)[0])], chances.max())"
    intro = {
        "torchscript": "Needs only PyTorch (`torch.jit.load`; recent PyTorch versions print a "
        "notice that TorchScript is deprecated, and it still works).",
        "onnx": "Needs only onnxruntime (`pip install onnxruntime`), no PyTorch; also runs in "
        "other ONNX runtimes (C++, C#, Java, JavaScript). The batch size is free.",
        "safetensors": "Only the weights: the network is built first, then they are loaded.",
    }[name]
    title = FORMAT_TITLES[name]
    return f"## Using {entry['file']} ({title})\n\n{intro}\n\n{_FENCE}python\n{code}\n{_FENCE}"


def _safetensors_code(description: dict[str, Any], entry: dict[str, Any]) -> str:
    network = description["network"]
    classes = description["num_classes"]
    if not network["torchvision_name"]:
        return f'''# {description["backbone"]} is PTM Studio's own network: this needs PTM Studio installed
# (version {description["versions"]["ptm_studio"]} is safest).
import torch
from safetensors.torch import load_file
from ptm_studio.core.models import build_classifier

model = build_classifier("{description["backbone"]}", {classes})
model.load_state_dict(load_file("{entry["file"]}"))
model.eval()
with torch.no_grad():
    outputs = model(torch.from_numpy(np.stack([preprocess("picture.jpg")]))).numpy()'''
    path = network["classifier_path"]
    return f'''# torchvision's {network["torchvision_name"]} with its classifier ({path}) replaced by
# PTM Studio's: one linear layer to the {classes} classes. No download: weights=None.
import torch
import torchvision
from safetensors.torch import load_file

state = load_file("{entry["file"]}")
model = torchvision.models.get_model("{network["torchvision_name"]}", weights=None)
model.set_submodule("{path}", torch.nn.Linear({network["feature_dim"]}, {classes}))
weights = {{
    key.removeprefix("backbone."): value
    for key, value in state.items()
    if key.startswith("backbone.")
}}
weights["{path}.weight"] = state["head.1.weight"]
weights["{path}.bias"] = state["head.1.bias"]
model.load_state_dict(weights)
model.eval()
with torch.no_grad():
    outputs = model(torch.from_numpy(np.stack([preprocess("picture.jpg")]))).numpy()'''


def _temperature(description: dict[str, Any]) -> str:
    calibration = description["calibration"]
    baked = (
        " The TorchScript and ONNX graphs here apply it already (preprocessing baked in); "
        "apply it yourself only to the logits of the safetensors network."
        if description["preprocessing_baked_in"]
        else ""
    )
    return (
        "## Confidence: the temperature\n\n"
        f"The network gives logits; `{calibration['rule']}` with temperature "
        f"**{calibration['temperature']:.4g}** turns them into probabilities "
        f"({calibration['note']}). Dividing by the temperature never changes which class is "
        f"on top, only how sure the answer says it is.{baked}"
    )


def _parity(reports: Sequence[ParityReport], pictures_note: str) -> str:
    rows = [
        "## Parity check",
        "",
        f"Right after the export, each file was run on {pictures_note}, the pictures prepared "
        "with Pillow and numpy as model.json says (not with PTM Studio's own code), and "
        "compared with PTM Studio's own predictions. Allowed: a largest probability difference "
        f"of {END_TO_END_TOLERANCE:g} end to end and {SAME_INPUT_TOLERANCE:g} on PTM Studio's "
        "own prepared input, and no other answer.",
        "",
        "| file | same answer | largest probability difference | on the same input | verdict |",
        "|---|---|---|---|---|",
    ]
    for report in reports:
        verdict = "ok" if report.is_ok else "**FAILED: do not use**"
        answers = f"{report.same_answers} of {report.pictures}" if not report.error else "—"
        rows.append(
            f"| `{report.file}` | {answers} | {_number(report.largest_difference)} | "
            f"{_number(report.same_input_difference)} | {verdict} |"
        )
    return "\n".join(rows)


def _versions(description: dict[str, Any]) -> str:
    shown = ", ".join(
        f"{name} {version}" for name, version in description["versions"].items() if version
    )
    return f"## Made with\n\n{shown}."


def _shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(part) for part in shape) + "]"


def _number(value: float) -> str:
    return f"{value:.1e}" if math.isfinite(value) else "—"
