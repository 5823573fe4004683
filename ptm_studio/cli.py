"""Headless PTM Studio: ``ptm-studio train | evaluate | predict | embed | heatmap | export |
report | scan | models | runs``.

Every RunConfig field has a flag, generated from the config dataclasses, so the CLI and the GUI
always offer the same settings. Exit codes: 0 success; 1 training failed or could not go on
(a full disk, the pictures gone: the run is kept resumable when something was saved); 2 a bad
argument, setting or file given; 3 the pictures cannot be used; 130 stopped by Ctrl-C or a
termination signal (a checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ptm_studio import cli_rates, cli_use
from ptm_studio.cli_arguments import (
    COMMANDS,
    EXIT_DATA,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    build_parser,
    chosen_settings,
    config_from_arguments,
    flag_for,
    resume_changes_from_arguments,
    scan_config,
)
from ptm_studio.cli_output import (
    ProgressPrinter,
    TerminalSafeStream,
    plain,
    print_comparison,
    print_label_fraction_curve,
    print_models,
    print_runs,
    print_scan,
    print_summary,
)
from ptm_studio.cli_stopping import (
    StopAtOnce,
    on_training_thread,
    stop_at_once,
    stopping_on_signals,
)
from ptm_studio.core.config import ConfigError, ConfigFileError, RunConfig
from ptm_studio.core.engine.events import (
    STATUS_FAILED,
    STATUS_STOPPED,
    Ending,
    TrainingFinished,
)
from ptm_studio.core.locations import UnusableFolderError, why_unwritable

Result = TypeVar("Result")
LOGGER = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Nothing raised reaches the user as a traceback: a bad
    setting or file is said in a line (exit 2), anything unexpected goes to the log in full and
    is said in a line that points there (exit 1). Names printed cannot drive the terminal."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalSafeStream(sys.stdout), TerminalSafeStream(sys.stderr)
    try:
        return _run_command(argv)
    finally:
        sys.stdout, sys.stderr = streams


def _run_command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)  # a bad flag or value is named here
    except SystemExit as done:  # --help, --version, or argparse's own error (exit code 2)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    handler = HANDLERS.get(getattr(arguments, "command", ""))
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(handler(arguments))
    except ConfigFileError as error:
        print(f"error: {plain(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as error:
        where = error.field_path
        if where in vars(arguments):  # typed on the command line: name the flag
            where = f"{flag_for(where)} ({where})"
        print(f"error: setting {where}: {plain(error.message)}", file=sys.stderr)
        return EXIT_USAGE
    except UnusableFolderError as error:
        print(f"error: {plain(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        if error.filename is None:
            return _report_unexpected(error)
        # Writing a file the user named (--csv, --json, --to) or reading one they gave.
        target = Path(os.fsdecode(error.filename))
        print(
            f"error: {plain(str(target))} could not be used: {plain(why_unwritable(target.parent, error))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except (BrokenPipeError, SystemExit):
        raise
    except Exception as error:
        return _report_unexpected(error)


def _report_unexpected(error: Exception) -> int:
    LOGGER.error("Unexpected error in the command line", exc_info=error)
    log_files = [
        str(handler.baseFilename)
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.FileHandler) and handler.baseFilename != os.devnull
    ]
    log_file = log_files[-1] if log_files else None
    where = f" The details are in the log: {log_file}." if log_file else ""
    summary = (str(error).strip().splitlines() or [""])[0][:300]
    print(
        f"error: something went wrong that PTM Studio did not expect "
        f"({type(error).__name__}: {plain(summary)}).{where} Please report it with that file.",
        file=sys.stderr,
    )
    return EXIT_FAILED


# ---------------------------------------------------------------------------- commands
def _run_train(arguments: argparse.Namespace) -> int:
    """Train a new run or resume one. Ctrl-C, SIGTERM (logout, shutdown, ``kill``) and SIGHUP
    (the terminal closed) stop it after the batch with a checkpoint saved (exit 130); a second
    one stops at once, keeping the last complete checkpoint (see stop_at_once)."""
    from ptm_studio.core.engine.control import StopRequest

    stop_request = StopRequest()
    try:
        with stopping_on_signals(stop_request):
            return _train(arguments, stop_request)
    except StopAtOnce:
        return stop_at_once()


def _train(arguments: argparse.Namespace, stop_request: Any) -> int:
    if arguments.resume and arguments.output:
        print(
            "error: --output makes a new run; --resume goes on in the run's own folder",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if arguments.use_previous_checkpoint and not arguments.resume:
        print("error: --use-previous-checkpoint goes with --resume RUN_DIR", file=sys.stderr)
        return EXIT_USAGE
    if arguments.resume:
        return _resume(arguments, stop_request)
    runs_root = arguments.runs_root
    # Under torchrun rank 0 checks and makes the folder; the other processes write nothing.
    if arguments.output and _is_main_process():
        if arguments.output.exists() and any(arguments.output.iterdir()):
            print(
                f"error: {arguments.output} already exists and is not empty; choose a new folder "
                "or continue it with --resume",
                file=sys.stderr,
            )
            return EXIT_USAGE
        arguments.output.rmdir() if arguments.output.exists() else None
    if arguments.output:
        runs_root = arguments.output.parent
    from ptm_studio.core.engine.trainer import Trainer

    progress = ProgressPrinter(quiet=arguments.quiet or not _is_main_process())
    config = with_recipe_said(config_from_arguments(arguments), chosen_settings(arguments))
    if getattr(arguments, "auto", False):
        from ptm_studio.cli_auto import auto_config
        from ptm_studio.core.data import DatasetError

        try:
            config = auto_config(arguments, config)
        except DatasetError as error:
            print(f"error: {plain(str(error))}", file=sys.stderr)
            return EXIT_DATA
    trainer = Trainer.new_run(
        config,
        runs_root=runs_root,
        callbacks=[progress],
        stop_request=stop_request,
    )
    return _train_and_report(trainer, progress)


def with_recipe_said(config: RunConfig, chosen: set[str]) -> RunConfig:
    """``config`` with the transfer recipe for a start from pretraining, said when it applies."""
    from ptm_studio.core.transfer_recipe import TRANSFER_REASON, with_transfer_recipe

    recipe = with_transfer_recipe(config, keep=chosen)
    if recipe != config:
        print(
            f"Transfer recipe: --training-mode {recipe.model.training_mode} "
            f"--backbone-learning-rate-factor {recipe.model.backbone_learning_rate_factor:g}, "
            f"because {TRANSFER_REASON}. Give --training-mode to choose otherwise.",
            file=sys.stderr,
        )
    return recipe


def _resume(arguments: argparse.Namespace, stop_request: Any) -> int:
    """Resume the run, holding its lock from before anything in its folder is touched (the
    previous checkpoint put in place included) until the run has ended."""
    # Only the lock is imported first (no torch): a run being trained is refused in a moment.
    from ptm_studio.core.run_lock import RunInUseError, RunLock

    run_dir = Path(arguments.resume)
    if (run_dir / "config.json").exists() and not (run_dir / "config.json").is_file():
        print(f"error: {run_dir}/config.json is not an ordinary file", file=sys.stderr)
        return EXIT_USAGE
    if not (run_dir / "config.json").is_file():
        print(
            f"error: {run_dir} is not a PTM Studio run folder (it has no config.json); "
            "give --resume the folder of an earlier run (`ptm-studio runs` lists them)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not _is_main_process():
        return _resume_beside_rank_0(arguments, run_dir, stop_request)
    try:
        lock = RunLock.acquire(run_dir)
    except RunInUseError as busy:
        print(f"error: {busy}", file=sys.stderr)
        return EXIT_USAGE
    from ptm_studio.core.engine.trainer import Trainer

    try:
        if arguments.use_previous_checkpoint:
            exit_code = _put_previous_checkpoint_in_place(run_dir)
            if exit_code != EXIT_OK:
                lock.release()
                return exit_code
        progress = ProgressPrinter(quiet=arguments.quiet)
        changes = resume_changes_from_arguments(arguments)
        trainer = Trainer.resume(
            run_dir,
            changes=changes,
            callbacks=[progress],
            stop_request=stop_request,
            run_lock=lock,
        )
        exit_code = _train_and_report(trainer, progress)
    except FileNotFoundError as nothing:  # no checkpoint to go on from, or not a run any more
        lock.release()
        print(f"error: {plain(str(nothing))}", file=sys.stderr)
        return EXIT_USAGE
    except StopAtOnce:
        raise  # the training thread may still write: the lock goes with the process
    except BaseException:
        lock.release()
        raise
    lock.release()
    return exit_code


def _is_main_process() -> bool:
    """Rank 0 of a torchrun run (or the only process): the one that prints and holds the lock."""
    from ptm_studio.core.engine.distributed import DistributedContext

    return DistributedContext.from_env().is_main


def _resume_beside_rank_0(arguments: argparse.Namespace, run_dir: Path, stop_request: Any) -> int:
    """Another process of a torchrun resume: rank 0 holds the lock and puts the previous
    checkpoint in place when asked; this one trains beside it and prints nothing."""
    from ptm_studio.core.engine.trainer import Trainer

    progress = ProgressPrinter(quiet=True)
    changes = resume_changes_from_arguments(arguments)
    trainer = Trainer.resume(
        run_dir, changes=changes, callbacks=[progress], stop_request=stop_request
    )
    return _train_and_report(trainer, progress)


def _train_and_report(trainer: Any, progress: ProgressPrinter) -> int:
    finished = on_training_thread(trainer.run)
    if not _is_main_process():
        return _exit_code(finished, quiet=True)
    if finished.kind not in (Ending.RUN_BUSY, Ending.DATA_CHANGED):  # else nothing ran
        print_summary(finished, progress.epochs, progress.frozen)
    return _exit_code(finished)


def _exit_code(finished: TrainingFinished, *, quiet: bool = False) -> int:
    if finished.status == STATUS_FAILED:
        message = finished.error_message
        if finished.kind == Ending.CHECKPOINT_DAMAGED and finished.previous_checkpoint:
            message += " To do so, add --use-previous-checkpoint."
        print(f"error: {message}", file=sys.stderr)  # every process says why it failed
        return _failure_exit_code(finished.kind)
    if finished.kind in (Ending.PAUSED_DISK, Ending.PAUSED_DATA_MISSING):
        # Not the user's Ctrl-C: the run could not go on (a full disk, the pictures gone); it
        # is kept resumable and the summary above says how.
        if not quiet:
            print(f"error: {finished.error_message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_INTERRUPTED if finished.status == STATUS_STOPPED else EXIT_OK


def _failure_exit_code(kind: str) -> int:
    if kind in (Ending.DATA_UNUSABLE, Ending.DATA_CHANGED):
        return EXIT_DATA
    # A setting or a file given (the weights, the network's name) that cannot be used, or
    # a run another process is training now.
    if kind in (Ending.INVALID_SETTINGS, Ending.WEIGHTS_UNUSABLE, Ending.RUN_BUSY):
        return EXIT_USAGE
    return EXIT_FAILED


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
    from ptm_studio.core.compare import compare_initialisations, compare_label_fractions
    from ptm_studio.core.engine.control import StopRequest

    if not arguments.init_from:
        print("error: compare needs --init-from PRETRAINED_RUN", file=sys.stderr)
        return EXIT_USAGE
    config = config_from_arguments(arguments)
    stop_request = StopRequest()

    def callbacks_for(start: str, seed: int) -> list[ProgressPrinter]:
        print(f"\n— Finetuning from {start} (seed {seed}) —", file=sys.stderr)
        return [ProgressPrinter(quiet=arguments.quiet)]

    comparison = {
        "alternative": arguments.against,
        "seeds": arguments.seeds,
        "runs_root": arguments.runs_root,
        "callbacks_for": callbacks_for,
        "stop_request": stop_request,
        "keep": chosen_settings(arguments),
    }
    fractions = arguments.label_fractions
    try:
        with stopping_on_signals(stop_request):
            if fractions:
                curve = on_training_thread(
                    lambda: compare_label_fractions(
                        config, arguments.init_from, fractions, **comparison
                    )
                )
                arms = [arm for point in curve.points for arm in point.result.arms]
            else:
                result = on_training_thread(
                    lambda: compare_initialisations(config, arguments.init_from, **comparison)
                )
                arms = list(result.arms)
    except StopAtOnce:
        return stop_at_once()
    if fractions:
        print_label_fraction_curve(curve)
    else:
        print_comparison(result, arguments.against)
    failed = [arm for arm in arms if arm.finished.status == STATUS_FAILED]
    for arm in failed:
        print(
            f"error ({arm.label}, seed {arm.seed}): {arm.finished.error_message}", file=sys.stderr
        )
    if failed:  # the worst of the failures: training failed, else a setting, else the data
        return min(_failure_exit_code(arm.finished.kind) for arm in failed)
    return EXIT_INTERRUPTED if stop_request.is_requested else EXIT_OK


def _run_scan(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.data import DatasetError, demo_data_dir, preflight, scan_folder

    settings = scan_config(arguments)
    task, validation_fraction = settings.objective.task, settings.data.validation_fraction
    folder = arguments.folder or demo_data_dir()
    scan = scan_folder(folder, on_progress=ProgressPrinter.scan_progress)
    print_scan(scan)
    try:
        preflight(scan, task=task, validation_fraction=validation_fraction)
    except DatasetError as error:
        print(f"\nThis folder cannot be used for {task} yet: {plain(str(error))}", file=sys.stderr)
        return EXIT_DATA
    print(f"\nReady for {task}.")
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
    "find-lr": cli_rates.run_find_lr,
}
assert set(HANDLERS) == COMMANDS


if __name__ == "__main__":
    sys.exit(main())
