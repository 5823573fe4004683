"""What the commands that use a trained run print: scores, answers, features, heatmaps and
exports (the training commands' output is cli_output.py)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ptm_studio.cli_output import clear_progress_line, print_table

if TYPE_CHECKING:  # at run time these would load torch for every command
    from ptm_studio.core.embeddings import Embeddings, Projection, SavedEmbeddings
    from ptm_studio.core.evaluation import Evaluation
    from ptm_studio.core.explain import Heatmaps
    from ptm_studio.core.export import ExportResult
    from ptm_studio.core.inference import Prediction


def print_predictions(predictions: Sequence[Prediction], threshold: float = 0.0) -> None:
    rows = []
    for prediction in predictions:
        if prediction.error:
            rows.append([prediction.path, "(not read)", "", prediction.error])
            continue
        others = ", ".join(
            f"{name} {probability:.0%}"
            for name, probability in zip(
                prediction.top_classes[1:], prediction.top_probabilities[1:], strict=True
            )
        )
        answer = prediction.answer(threshold)
        if answer != prediction.predicted_class:  # "not sure"
            answer = f"{answer} (best: {prediction.predicted_class})"
        rows.append([prediction.path, answer, f"{prediction.confidence:.1%}", others])
    print_table(["file", "prediction", "confidence", "next guesses"], rows)


def print_evaluation(evaluation: Evaluation) -> None:
    if sys.stderr.isatty():  # clear the progress line
        sys.stderr.write("\r" + " " * 60 + "\r")
    if evaluation.checkpoint:
        print(f"Checkpoint: {evaluation.checkpoint}")
    print(evaluation.summary())
    if not evaluation.num_pictures:
        return
    print()
    print_table(
        ["class", "precision", "recall", "F1", "pictures"],
        [
            [s.name, f"{s.precision:.2f}", f"{s.recall:.2f}", f"{s.f1:.2f}", s.support]
            for s in evaluation.per_class
        ],
    )
    print("\nConfusion matrix (rows: true class; columns: the answer, numbered as the rows):")
    names = evaluation.class_names  # numbered columns: long names that start alike stay apart
    print_table(
        ["true class", *(str(number) for number in range(1, len(names) + 1))],
        [
            [f"{row + 1} {names[row]}", *(int(count) for count in evaluation.confusion[row])]
            for row in range(len(names))
        ],
    )
    if evaluation.confused_pairs:
        print("\nMost often confused:")
        for line in evaluation.describe_confusions():
            print(f"  {line}")
    print(f"\n{evaluation.calibration.describe()}")
    for warning in evaluation.warnings:
        print(f"\nwarning: {warning}", file=sys.stderr)
    if evaluation.left_out:
        print(f"\n{len(evaluation.left_out)} validation picture(s) left out:", file=sys.stderr)
        for path, why in evaluation.left_out[:10]:
            print(f"  {path}: {why}", file=sys.stderr)


def print_unreadable(unreadable: dict[Path, str], shown: int = 10) -> None:
    if not unreadable:
        return
    print(f"\n{len(unreadable)} picture(s) could not be read:", file=sys.stderr)
    for path, reason in list(unreadable.items())[:shown]:
        print(f"  {path}: {reason}", file=sys.stderr)
    if len(unreadable) > shown:
        print(f"  … and {len(unreadable) - shown} more", file=sys.stderr)


def print_embeddings(
    embeddings: Embeddings, projection: Projection, saved: SavedEmbeddings
) -> None:
    clear_progress_line()
    if embeddings.checkpoint:
        print(f"Checkpoint: {embeddings.checkpoint}")
    count, size = embeddings.features.shape
    print(
        f"Features of {count} picture(s), {size} numbers each (the network before its classifier)."
    )
    if count >= 2:
        print(projection.describe())
    print(f"\nSaved in {saved.features.parent}:")
    print_table(
        ["file", "holds"],
        [
            [
                saved.features.name,
                "the features, for Python (numpy.load); row i is line i of files.txt",
            ],
            [saved.file_list.name, "the pictures, one path per line"],
            [saved.features_csv.name, "path, classes and features, one row per picture"],
            [saved.map_csv.name, "path, x, y and classes: the 2-D map, for a scatter plot"],
            [saved.unreadable.name, f"{len(embeddings.unreadable)} file(s) that could not be read"],
        ],
    )
    print_unreadable(embeddings.unreadable)


def heatmap_file_names(paths: Sequence[Path]) -> list[str]:
    """``<name>_heatmap.png`` for each picture; a name met again gets ``_2``, ``_3``…"""
    names: list[str] = []
    used: set[str] = set()
    for path in paths:
        name, number = f"{path.stem}_heatmap.png", 1
        while name.lower() in used:  # case-insensitive file systems
            number += 1
            name = f"{path.stem}_{number}_heatmap.png"
        used.add(name.lower())
        names.append(name)
    return names


def print_heatmaps(heatmaps: Heatmaps, written: Sequence[Path]) -> None:
    clear_progress_line()
    rows = []
    for heatmap, path in zip(heatmaps.heatmaps, written, strict=True):
        note = "" if heatmap.has_evidence else "nothing in the picture speaks for this class"
        rows.append(
            [heatmap.path or "", heatmap.class_name, f"{heatmap.probability:.1%}", path.name, note]
        )
    if rows:
        print_table(["picture", "class shown", "probability", "heatmap", "note"], rows)
        print(f"\nSaved {len(rows)} heatmap(s) in {written[0].parent}")
    print_unreadable(heatmaps.unreadable)


def print_export(result: ExportResult) -> None:
    """The files an export wrote, then the parity table: each file against the app."""
    from ptm_studio.core.export_parity import FORMAT_TITLES

    clear_progress_line()
    print(f"Exported to {result.folder}:")
    files = sorted(path for path in result.folder.iterdir() if path.is_file())
    print_table(["file", "size"], [[path.name, _size(path.stat().st_size)] for path in files])
    if result.parity:
        print(f"\nParity check against the app, on {result.pictures_note}:")
        rows = [
            [
                FORMAT_TITLES.get(report.format, report.format),
                report.file,
                f"{report.same_answers}/{report.pictures}" if not report.error else "—",
                _difference(report.largest_difference),
                _difference(report.same_input_difference),
                "ok" if report.is_ok else "FAILED: do not use",
            ]
            for report in result.parity
        ]
        print_table(
            ["format", "file", "same answer", "largest difference", "on the same input", "verdict"],
            rows,
        )
    print(f"\nHow to use each file: {result.folder / 'README.md'}")


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


def _difference(value: float) -> str:
    return f"{value:.1e}" if math.isfinite(value) else "—"
