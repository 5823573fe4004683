"""The flags of the commands that use a trained run (evaluate, predict, embed, heatmap,
export, report); cli_arguments.py builds the parser and calls :func:`add_model_use_commands`."""

from __future__ import annotations

import argparse
from typing import Any

from ptm_studio.cli_values import (
    checkpoint_folder,
    folder_to_write,
    new_file,
    pictures,
    run_folder,
    whole_number,
)
from ptm_studio.core.config import NOT_SURE_BELOW

# The formats ptm_studio.core.export writes, named here so `--help` loads no torch (a test
# checks they match).
EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")


def add_model_use_commands(commands: Any) -> None:
    for add in (
        _add_evaluate_command,
        _add_predict_command,
        _add_embed_command,
        _add_heatmap_command,
        _add_export_command,
        _add_report_command,
    ):
        add(commands)


def _add_evaluate_command(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="Measure a trained run on its validation pictures (and calibrate its confidences).",
        description=(
            "Per-class precision, recall and F1, accuracy with a 95 % interval, the confusion "
            "matrix, the pairs most often confused and plain warnings. Fits one temperature so "
            "the confidences are honest and saves it beside the checkpoint (predict uses it)."
        ),
    )
    evaluate.add_argument("--run", type=run_folder, required=True, help="A finetuning run folder.")
    evaluate.add_argument(
        "--checkpoint",
        type=checkpoint_folder,
        help="One of the run's checkpoint folders (default: its best, else its last).",
    )
    evaluate.add_argument("--json", type=new_file, help="Also write the results to this JSON file.")
    evaluate.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    evaluate.set_defaults(command="evaluate")


def _probability(text: str) -> float:
    """0 to 1, or a percentage such as 70 or 70%."""
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if text.endswith("%") or value > 1:
        value /= 100
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (or 0 and 100 %)")
    return value


def _add_predict_command(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="Predict the class of image files or folders with a trained run.",
        description="Prints a table (or writes a CSV) with the top classes of each image.",
    )
    predict.add_argument(
        "--run", type=run_folder, required=True, help="A run folder (or a checkpoint folder)."
    )
    predict.add_argument("paths", nargs="+", type=pictures, help="Image files and/or folders.")
    predict.add_argument(
        "--top-k", type=whole_number(1, 1000), default=3, help="How many classes to show per image."
    )
    predict.add_argument(
        "--threshold",
        type=_probability,
        default=NOT_SURE_BELOW,
        help=(
            "Below this confidence the answer is 'not sure' (0 to 1, or a percentage such as "
            f"70%%; default {100 * NOT_SURE_BELOW:.0f}%%, 0 to always answer). Confidences are "
            "calibrated once the run has been evaluated."
        ),
    )
    predict.add_argument("--csv", type=new_file, help="Write the predictions to this CSV file too.")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    predict.set_defaults(command="predict")


def _add_embed_command(commands: Any) -> None:
    embed = commands.add_parser(
        "embed",
        help="Save what a trained run's network makes of pictures (features and a 2-D map).",
        description=(
            "Computes the backbone's feature vector of each picture (before the classifier) and "
            "writes embeddings.npy with files.txt (for Python), embeddings.csv and "
            "embedding_map.csv (a 2-D PCA map, for a spreadsheet) and unreadable.csv. With no "
            "pictures given, the run's own validation pictures are used, with their classes."
        ),
    )
    embed.add_argument(
        "--run", type=run_folder, required=True, help="A run folder (or a checkpoint folder)."
    )
    embed.add_argument(
        "paths",
        nargs="*",
        type=pictures,
        help="Image files and/or folders (default: the run's validation pictures).",
    )
    embed.add_argument(
        "--to",
        type=folder_to_write,
        required=True,
        metavar="FOLDER",
        help="Folder to write the files into.",
    )
    embed.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    embed.set_defaults(command="embed")


def _opacity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def _add_heatmap_command(commands: Any) -> None:
    heatmap = commands.add_parser(
        "heatmap",
        help="Show where a trained run looks in pictures (Grad-CAM heatmaps as PNGs).",
        description=(
            "Writes one PNG per picture: the picture as the model sees it (centre square) with "
            "the regions that count most for the class in warm colours. Needs Captum: "
            'pip install "ptm-studio[explain]".'
        ),
    )
    heatmap.add_argument(
        "--run", type=run_folder, required=True, help="A run folder (or a checkpoint folder)."
    )
    heatmap.add_argument("paths", nargs="+", type=pictures, help="Image files and/or folders.")
    heatmap.add_argument(
        "--to",
        type=folder_to_write,
        required=True,
        metavar="FOLDER",
        help="Folder to write the PNGs into.",
    )
    heatmap.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="Show the evidence for this class (default: the class each picture is predicted as).",
    )
    heatmap.add_argument(
        "--opacity",
        type=_opacity,
        default=0.5,
        help="How strongly the colours cover the picture, 0 to 1 (default: 0.5).",
    )
    heatmap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    heatmap.set_defaults(command="heatmap")


def _add_export_command(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="Export a trained model (safetensors, TorchScript, ONNX) for use outside the app.",
        description=(
            "Writes a folder with the model files, model.json (classes, preprocessing, "
            "temperature, versions) and a README.md showing how to use each file, then checks "
            "that every file answers as the app does on a few pictures (parity.json). Exit "
            "code 1 when a file disagrees with the app or could not be written. ONNX needs "
            'pip install "ptm-studio[export]".'
        ),
    )
    export.add_argument(
        "--run", type=run_folder, required=True, help="A run folder (or a checkpoint folder)."
    )
    export.add_argument(
        "--checkpoint",
        type=checkpoint_folder,
        help="One of the run's checkpoint folders (default: its best, else its last).",
    )
    export.add_argument(
        "--to",
        type=folder_to_write,
        required=True,
        dest="destination",
        metavar="FOLDER",
        help="A new (or empty) folder for the export; an existing export is never overwritten.",
    )
    export.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        choices=EXPORT_FORMATS,
        default=list(EXPORT_FORMATS),
        metavar="FORMAT",
        help=f"Which files to write: {', '.join(EXPORT_FORMATS)} (default: all).",
    )
    export.add_argument(
        "--bake-preprocessing",
        action="store_true",
        help="The TorchScript and ONNX graphs take uint8 pictures already resized and cropped "
        "and give calibrated probabilities (scaling, normalisation and softmax inside).",
    )
    export.set_defaults(command="export")


def _add_report_command(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="Write a one-file HTML report of a run, to open in any browser or hand on.",
        description=(
            "Data, settings, curves, scores per class, the confusion matrix, the worst "
            "mistakes as pictures and the calibration, in one file that needs no internet."
        ),
    )
    report.add_argument("--run", type=run_folder, required=True, help="A run folder.")
    report.add_argument(
        "--to",
        type=new_file,
        help="The HTML file to write (default: report.html in the run folder).",
    )
    report.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    report.set_defaults(command="report")
