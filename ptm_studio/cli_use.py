"""The commands that put a trained run to use: ``evaluate``, ``predict``, ``embed``,
``heatmap``, ``export`` and ``report`` (cli.py dispatches to them). Each is a thin shell over
one core function; exit codes as in cli.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ptm_studio.cli_arguments import EXIT_DATA, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from ptm_studio.cli_output import ProgressPrinter, clear_progress_line
from ptm_studio.cli_use_output import (
    heatmap_file_names,
    print_embeddings,
    print_evaluation,
    print_export,
    print_heatmaps,
    print_predictions,
)


def _unusable_run_errors() -> tuple[type[Exception], ...]:
    """What a run that cannot be measured raises: a bad argument (exit 2) or pictures that are
    gone (3). Imported when needed: these modules load torch."""
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.data import DatasetError
    from ptm_studio.core.models import ModelError

    return (CheckpointError, ModelError, FileNotFoundError, DatasetError)


def _say_unusable(error: Exception) -> int:
    from ptm_studio.core.data import DatasetError

    print(f"error: {error}", file=sys.stderr)
    return EXIT_DATA if isinstance(error, DatasetError) else EXIT_USAGE


def run_evaluate(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.atomic_io import write_json_atomic
    from ptm_studio.core.evaluation import evaluate_run

    try:
        evaluation = evaluate_run(
            arguments.run,
            checkpoint=arguments.checkpoint,
            device=arguments.device,
            on_progress=ProgressPrinter.picture_progress("Measuring the validation pictures"),
        )
    except _unusable_run_errors() as error:
        return _say_unusable(error)
    print_evaluation(evaluation)
    if arguments.json:
        write_json_atomic(arguments.json, evaluation.as_json())
        print(f"Saved the results to {arguments.json}")
    return EXIT_OK


def run_predict(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.inference import Predictor, write_predictions_csv
    from ptm_studio.core.models import ModelError

    try:
        predictor = Predictor.from_run(arguments.run, device=arguments.device)
    except (CheckpointError, ModelError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    paths = _pictures_to_read(arguments.paths)
    if paths is None:
        return EXIT_USAGE
    predictions = predictor.predict_paths(
        paths, top_k=arguments.top_k, on_progress=ProgressPrinter.picture_progress("Predicting")
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 60 + "\r")
    print_predictions(predictions, arguments.threshold)
    if arguments.csv:
        write_predictions_csv(arguments.csv, predictions, arguments.threshold)
        print(f"Saved {len(predictions)} predictions to {arguments.csv}")
    return EXIT_DATA if predictions and all(p.error for p in predictions) else EXIT_OK


def run_embed(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.data import DatasetError
    from ptm_studio.core.embeddings import (
        embed_paths,
        embed_validation_pictures,
        project_2d,
        save_embeddings,
    )
    from ptm_studio.core.inference import Predictor
    from ptm_studio.core.models import ModelError

    progress = ProgressPrinter.picture_progress("Computing features")
    try:
        predictor = Predictor.from_run(arguments.run, device=arguments.device)
        if arguments.paths:
            paths = _pictures_to_read(arguments.paths)
            if paths is None:
                return EXIT_USAGE
            embeddings = embed_paths(predictor, paths, on_progress=progress)
        else:
            embeddings = embed_validation_pictures(
                arguments.run, predictor=predictor, on_progress=progress
            )
    except (CheckpointError, ModelError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, FileNotFoundError) and not arguments.paths:
            print("  Give picture files or folders to embed with it.", file=sys.stderr)
        return EXIT_USAGE
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DATA
    projection = project_2d(embeddings.features)
    saved = save_embeddings(embeddings, arguments.to, projection)
    print_embeddings(embeddings, projection, saved)
    return EXIT_OK if embeddings.paths else EXIT_DATA


def run_heatmap(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.explain import (
        CaptumMissing,
        HeatmapNotAvailable,
        heatmaps_for_paths,
        write_overlay,
    )
    from ptm_studio.core.inference import Predictor
    from ptm_studio.core.models import ModelError

    try:
        predictor = Predictor.from_run(arguments.run, device=arguments.device)
    except (CheckpointError, ModelError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    class_index = None
    if arguments.class_name is not None:
        if arguments.class_name not in predictor.class_names:
            known = ", ".join(predictor.class_names)
            print(
                f"error: the run has no class '{arguments.class_name}'; its classes are: {known}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        class_index = predictor.class_names.index(arguments.class_name)
    paths = _pictures_to_read(arguments.paths)
    if paths is None:
        return EXIT_USAGE
    try:
        result = heatmaps_for_paths(
            predictor,
            paths,
            class_index,
            on_progress=ProgressPrinter.picture_progress("Drawing heatmaps"),
        )
    except (HeatmapNotAvailable, CaptumMissing) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    names = heatmap_file_names([heatmap.path or Path("picture") for heatmap in result.heatmaps])
    written = [
        write_overlay(arguments.to / name, heatmap, arguments.opacity)
        for name, heatmap in zip(names, result.heatmaps, strict=True)
    ]
    print_heatmaps(result, written)
    return EXIT_OK if result.heatmaps else EXIT_DATA


def _pictures_to_read(inputs: Sequence[Path]) -> list[Path] | None:
    """The image files given and found in the folders given; None (after saying why) when one
    does not exist or none is found."""
    from ptm_studio.core.inference import collect_image_paths

    paths = collect_image_paths(inputs)
    missing = [path for path in paths if not path.exists()]
    if missing:
        print(f"error: {missing[0]} does not exist", file=sys.stderr)
        return None
    if not paths:
        shown = ", ".join(str(item) for item in inputs)
        print(f"error: no image files found in {shown}", file=sys.stderr)
        return None
    return paths


def run_export(arguments: argparse.Namespace) -> int:
    """Exit 0 when every file was written and matches the app, 1 when one disagrees or could
    not be written (the others are kept, the README says which), 2 when nothing could start."""
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.export import ExportError, export_model
    from ptm_studio.core.models import ModelError

    try:
        result = export_model(
            arguments.checkpoint or arguments.run,
            arguments.destination,
            formats=arguments.formats,
            bake_preprocessing=arguments.bake_preprocessing,
            on_progress=ProgressPrinter.picture_progress("Exporting and checking"),
        )
    except (CheckpointError, ModelError, ExportError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nStopped; nothing was kept.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print_export(result)
    for problem in result.problems:
        print(f"\nerror: {problem}", file=sys.stderr)
    return EXIT_OK if result.is_ok else EXIT_FAILED


def run_report(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.report import write_report

    try:
        report = write_report(
            arguments.run,
            arguments.to,
            device=arguments.device,
            on_progress=ProgressPrinter.picture_progress("Measuring the validation pictures"),
        )
    except _unusable_run_errors() as error:
        return _say_unusable(error)
    except OSError as error:
        from ptm_studio.core.locations import why_unwritable

        target = Path(os.fsdecode(error.filename)) if error.filename else Path(".")
        print(
            f"error: the report could not be written to {error.filename or 'its file'}: "
            f"{why_unwritable(target.parent, error)}. Choose another file with --to.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    clear_progress_line()
    print(f"Wrote the report to {report}; open it in any browser (it needs no internet).")
    return EXIT_OK
