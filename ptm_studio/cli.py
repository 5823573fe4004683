"""Headless PTM Studio: ``ptm-studio train | evaluate | predict | embed | heatmap | export |
report | scan | models | runs``.

Every RunConfig field has a flag, generated from the config dataclasses, so the CLI and the GUI
always offer the same settings. Exit codes: 0 success, 1 training failed, 2 bad arguments or
settings, 3 the data cannot be used, 130 stopped by Ctrl-C (a checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ptm_studio.cli_arguments import (
    COMMANDS,
    build_parser,
    config_from_arguments,
    resume_changes_from_arguments,
)
from ptm_studio.cli_output import (
    ProgressPrinter,
    clear_progress_line,
    heatmap_file_names,
    print_comparison,
    print_embeddings,
    print_evaluation,
    print_export,
    print_heatmaps,
    print_models,
    print_predictions,
    print_runs,
    print_scan,
    print_summary,
)
from ptm_studio.core.config import ConfigError
from ptm_studio.core.engine.events import (
    STATUS_FAILED,
    STATUS_STOPPED,
    Ending,
    TrainingFinished,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
Result = TypeVar("Result")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    handler = HANDLERS.get(getattr(arguments, "command", ""))
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(arguments))
    except ConfigError as error:
        print(f"error: setting {error.field_path}: {error.message}", file=sys.stderr)
        return EXIT_USAGE


def train_entry_point() -> None:
    """``ptm-studio-train …`` is ``ptm-studio train …``."""
    from ptm_studio.core.app_logging import configure_logging

    configure_logging()
    sys.exit(main(["train", *sys.argv[1:]]))


# ---------------------------------------------------------------------------- commands
def _run_train(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.engine.control import StopRequest
    from ptm_studio.core.engine.trainer import Trainer

    if arguments.resume and arguments.output:
        print(
            "error: --output makes a new run; --resume goes on in the run's own folder",
            file=sys.stderr,
        )
        return EXIT_USAGE
    runs_root = arguments.runs_root
    if arguments.output:
        if arguments.output.exists() and any(arguments.output.iterdir()):
            print(
                f"error: {arguments.output} already exists and is not empty; choose a new folder "
                "or continue it with --resume",
                file=sys.stderr,
            )
            return EXIT_USAGE
        arguments.output.rmdir() if arguments.output.exists() else None
        runs_root = arguments.output.parent
    if arguments.use_previous_checkpoint:
        if not arguments.resume:
            print("error: --use-previous-checkpoint goes with --resume RUN_DIR", file=sys.stderr)
            return EXIT_USAGE
        exit_code = _put_previous_checkpoint_in_place(arguments.resume)
        if exit_code != EXIT_OK:
            return exit_code
    stop_request = StopRequest()
    progress = ProgressPrinter(quiet=arguments.quiet)
    if arguments.resume:
        try:
            trainer = Trainer.resume(
                arguments.resume,
                changes=resume_changes_from_arguments(arguments),
                callbacks=[progress],
                stop_request=stop_request,
            )
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
    else:
        trainer = Trainer.new_run(
            config_from_arguments(arguments),
            runs_root=runs_root,
            callbacks=[progress],
            stop_request=stop_request,
        )
    previous_handler = signal.signal(signal.SIGINT, _stop_on_first_interrupt(stop_request))
    try:
        finished = on_training_thread(trainer.run)
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    print_summary(finished, progress.epochs)
    return _exit_code(finished)


def _exit_code(finished: TrainingFinished) -> int:
    if finished.status == STATUS_FAILED:
        message = finished.error_message
        if finished.kind == Ending.CHECKPOINT_DAMAGED and finished.previous_checkpoint:
            message += " To do so, add --use-previous-checkpoint."
        print(f"error: {message}", file=sys.stderr)
        data_endings = (Ending.DATA_UNUSABLE, Ending.DATA_CHANGED)
        return EXIT_DATA if finished.kind in data_endings else EXIT_FAILED
    return EXIT_INTERRUPTED if finished.status == STATUS_STOPPED else EXIT_OK


def _put_previous_checkpoint_in_place(run: Path) -> int:
    from ptm_studio.core.checkpoints import CheckpointError, use_previous_checkpoint
    from ptm_studio.core.runs import RunDirectory

    try:
        folder = use_previous_checkpoint(RunDirectory(run).last_checkpoint_dir)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Going on from the previous checkpoint, now in {folder}.", file=sys.stderr)
    return EXIT_OK


def _run_compare(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.compare import compare_initialisations
    from ptm_studio.core.engine.control import StopRequest

    if not arguments.init_from:
        print("error: compare needs --init-from PRETRAINED_RUN", file=sys.stderr)
        return EXIT_USAGE
    config = config_from_arguments(arguments)
    stop_request = StopRequest()

    def callbacks_for(start: str, seed: int) -> list[ProgressPrinter]:
        print(f"\n— Finetuning from {start} (seed {seed}) —", file=sys.stderr)
        return [ProgressPrinter(quiet=arguments.quiet)]

    previous_handler = signal.signal(signal.SIGINT, _stop_on_first_interrupt(stop_request))
    try:
        result = on_training_thread(
            lambda: compare_initialisations(
                config,
                arguments.init_from,
                alternative=arguments.against,
                seeds=arguments.seeds,
                runs_root=arguments.runs_root,
                callbacks_for=callbacks_for,
                stop_request=stop_request,
            )
        )
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    print_comparison(result, arguments.against)
    failed = [arm for arm in result.arms if arm.finished.status == STATUS_FAILED]
    for arm in failed:
        print(
            f"error ({arm.label}, seed {arm.seed}): {arm.finished.error_message}", file=sys.stderr
        )
    if failed:
        return EXIT_FAILED
    return EXIT_INTERRUPTED if stop_request.is_requested else EXIT_OK


def on_training_thread(work: Callable[[], Result]) -> Result:
    """Run ``work`` on a training thread, as the app does, while the main thread waits.

    Off the main thread PyTorch reports a dead picture-loading process from inside the loader,
    where the watchdog catches it; on the main thread its signal handler raises at whatever line
    is running. Ctrl-C still reaches the main thread's handler (which asks the run to stop).
    """
    results: list[Result] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as error:  # handed to the main thread, which raises it
            errors.append(error)

    thread = threading.Thread(target=target, name="ptm-training", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if errors:
        raise errors[0]
    return results[0]


def _stop_on_first_interrupt(stop_request: Any) -> Any:
    def handle(_signal_number: int, _frame: object) -> None:
        if stop_request.is_requested:
            raise KeyboardInterrupt
        print(
            "\nStopping after this batch and saving a checkpoint (Ctrl-C again to abort)…",
            file=sys.stderr,
        )
        stop_request.request()

    return handle


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


def _run_evaluate(arguments: argparse.Namespace) -> int:
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


def _run_predict(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.inference import Predictor, collect_image_paths, write_predictions_csv
    from ptm_studio.core.models import ModelError

    try:
        predictor = Predictor.from_run(arguments.run, device=arguments.device)
    except (CheckpointError, ModelError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    paths = collect_image_paths(arguments.paths)
    missing = [path for path in paths if not path.exists()]
    if missing:
        print(f"error: {missing[0]} does not exist", file=sys.stderr)
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


def _run_embed(arguments: argparse.Namespace) -> int:
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


def _run_heatmap(arguments: argparse.Namespace) -> int:
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


def _run_export(arguments: argparse.Namespace) -> int:
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


def _run_scan(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.data import DatasetError, demo_data_dir, preflight, scan_folder

    folder = arguments.folder or demo_data_dir()
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    scan = scan_folder(folder, on_progress=ProgressPrinter.scan_progress)
    print_scan(scan)
    try:
        preflight(scan, task=arguments.task, validation_fraction=arguments.validation_fraction)
    except DatasetError as error:
        print(f"\nThis folder cannot be used for {arguments.task} yet: {error}", file=sys.stderr)
        return EXIT_DATA
    print(f"\nReady for {arguments.task}.")
    return EXIT_OK


def _run_models(_arguments: argparse.Namespace) -> int:
    print_models()
    return EXIT_OK


def _run_runs(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.runs import list_runs

    print_runs(list_runs(arguments.runs_root))
    return EXIT_OK


def _run_report(arguments: argparse.Namespace) -> int:
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
        print(f"error: the report could not be written: {error}", file=sys.stderr)
        return EXIT_FAILED
    clear_progress_line()
    print(f"Wrote the report to {report}; open it in any browser (it needs no internet).")
    return EXIT_OK


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _run_train,
    "finetune": _run_train,
    "pretrain": _run_train,
    "compare": _run_compare,
    "evaluate": _run_evaluate,
    "predict": _run_predict,
    "embed": _run_embed,
    "heatmap": _run_heatmap,
    "export": _run_export,
    "report": _run_report,
    "scan": _run_scan,
    "models": _run_models,
    "runs": _run_runs,
}
assert set(HANDLERS) == COMMANDS


if __name__ == "__main__":
    sys.exit(main())
