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

from ptm_studio import cli_use
from ptm_studio.cli_arguments import (
    COMMANDS,
    EXIT_DATA,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    build_parser,
    config_from_arguments,
    resume_changes_from_arguments,
)
from ptm_studio.cli_output import (
    ProgressPrinter,
    print_comparison,
    print_models,
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


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _run_train,
    "finetune": _run_train,
    "pretrain": _run_train,
    "compare": _run_compare,
    "evaluate": cli_use.run_evaluate,
    "predict": cli_use.run_predict,
    "embed": cli_use.run_embed,
    "heatmap": cli_use.run_heatmap,
    "export": cli_use.run_export,
    "report": cli_use.run_report,
    "scan": _run_scan,
    "models": _run_models,
    "runs": _run_runs,
}
assert set(HANDLERS) == COMMANDS


if __name__ == "__main__":
    sys.exit(main())
