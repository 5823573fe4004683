"""Headless PTM Studio: ``ptm-studio train | predict | scan | models | runs``.

Every RunConfig field has a flag, generated from the config dataclasses, so the CLI and the GUI
always offer the same settings. Exit codes: 0 success, 1 training failed, 2 bad arguments or
settings, 3 the data cannot be used, 130 stopped by Ctrl-C (a checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ptm_studio import __version__
from ptm_studio.cli_output import (
    ProgressPrinter,
    print_comparison,
    print_models,
    print_predictions,
    print_runs,
    print_scan,
    print_summary,
    write_predictions_csv,
)
from ptm_studio.core.config import (
    SECTIONS,
    ConfigError,
    RunConfig,
    config_fields,
    replace_field,
)
from ptm_studio.core.engine.events import (
    STATUS_FAILED,
    STATUS_STOPPED,
    Ending,
    TrainingFinished,
)

# Every headless command; `python -m ptm_studio COMMAND` dispatches here, anything else opens the app.
COMMANDS = frozenset(
    {"train", "finetune", "pretrain", "compare", "predict", "scan", "models", "runs"}
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
Result = TypeVar("Result")
SHORT_ALIASES = {"data_dir": ["--data"], "num_epochs": ["--epochs"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if not hasattr(arguments, "handler"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(arguments.handler(arguments))
    except ConfigError as error:
        print(f"error: setting {error.field_path}: {error.message}", file=sys.stderr)
        return EXIT_USAGE


def train_entry_point() -> None:
    """``ptm-studio-train …`` is ``ptm-studio train …``."""
    from ptm_studio.core.app_logging import configure_logging

    configure_logging()
    sys.exit(main(["train", *sys.argv[1:]]))


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptm-studio",
        description="Train and use image classifiers without the window. "
        "Run `ptm-studio` with no arguments to open the app.",
    )
    parser.add_argument("--version", action="version", version=f"PTM Studio {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_train_command(
        commands,
        "train",
        help_text="Train a classifier on a folder of images (one subfolder per class).",
        description="Train a classifier. With no --data the built-in demo flowers are used.",
    )
    _add_train_command(
        commands,
        "finetune",
        help_text="Like train; --init-from RUN starts from an earlier (e.g. pretraining) run.",
        description="Finetune a classifier, typically from a pretrained backbone (--init-from).",
    )
    _add_train_command(
        commands,
        "pretrain",
        help_text="Pretrain a backbone on unlabelled pictures (self-supervised).",
        description="Learn features from pictures without labels; later runs start from them "
        "with `finetune --init-from RUN`. Default loss: nt_xent (SimCLR).",
    )
    _add_train_command(
        commands,
        "compare",
        help_text="Did pretraining help? Finetune from a pretrained run and from random weights.",
        description="Finetunes the same data twice per seed — from the pretrained backbone "
        "(--init-from) and from --against — with the same split, seed and budget, then prints "
        "both accuracies side by side.",
    )
    _add_predict_command(commands)
    _add_scan_command(commands)
    listing = commands.add_parser("models", help="List the available backbones.")
    listing.set_defaults(handler=_run_models)
    runs = commands.add_parser("runs", help="List earlier runs.")
    runs.add_argument(
        "--runs-root", type=Path, help="Folder holding the runs (default: your data folder)."
    )
    runs.set_defaults(handler=_run_runs)
    return parser


def _add_train_command(commands: Any, name: str, *, help_text: str, description: str) -> None:
    train = commands.add_parser(
        name,
        help=help_text,
        description=f"{description} Settings come from --config, then from the flags given.",
    )
    train.set_defaults(command=name)
    if name == "compare":
        train.add_argument(
            "--against",
            choices=("random", "imagenet"),
            default="random",
            help="The other starting point (default: random).",
        )
        train.add_argument(
            "--seeds",
            type=int,
            nargs="+",
            default=[0],
            help="Repeat with these seeds (default: 0).",
        )
    if name in ("finetune", "compare"):
        train.add_argument(
            "--init-from",
            type=Path,
            metavar="RUN_DIR",
            help="Start from the backbone an earlier run learnt (same as --weights run "
            "--weights-path RUN_DIR).",
        )
    train.add_argument(
        "--config", type=Path, help="A config.json (e.g. from an earlier run) to start from."
    )
    train.add_argument(
        "--output",
        type=Path,
        help="Folder for this run (default: a new folder under your data folder).",
    )
    train.add_argument("--runs-root", type=Path, help="Where new run folders are created.")
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="Continue a stopped run from its last checkpoint.",
    )
    train.add_argument(
        "--use-previous-checkpoint",
        action="store_true",
        help="With --resume, when the last checkpoint is damaged: go on from the one saved "
        "before it (the damaged one is kept aside).",
    )
    train.add_argument("--demo", action="store_true", help="Train on the built-in demo flowers.")
    train.add_argument("--quiet", action="store_true", help="No progress bar, only the summary.")
    defaults = RunConfig()
    for section_name, section_type in SECTIONS.items():
        group = train.add_argument_group(f"{section_name} settings")
        for config_field in dataclasses.fields(section_type):
            default = getattr(getattr(defaults, section_name), config_field.name)
            _add_config_flag(
                group, f"{section_name}.{config_field.name}", config_field, section_type, default
            )
    general = train.add_argument_group("general settings")
    for config_field in dataclasses.fields(RunConfig):
        if config_field.name not in SECTIONS:
            _add_config_flag(
                general,
                config_field.name,
                config_field,
                RunConfig,
                getattr(defaults, config_field.name),
            )
    train.set_defaults(handler=_run_compare if name == "compare" else _run_train)


def _add_config_flag(
    group: argparse._ArgumentGroup,
    field_path: str,
    config_field: dataclasses.Field,
    owner: type,
    default: Any,
) -> None:
    hint = typing.get_type_hints(owner)[config_field.name]
    flag = "--" + config_field.name.replace("_", "-")
    options: dict[str, Any] = {
        "dest": field_path,
        "default": argparse.SUPPRESS,  # only flags the user gives override the config file
        "help": f"{config_field.metadata.get('help', '')} (default: {_show_default(default)})",
    }
    choices = config_field.metadata.get("choices")
    base = _without_none(hint)
    if base is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(base) is tuple:
        options.update(nargs="*", choices=choices, metavar="NAME")
    else:
        options.update(type=base, choices=choices)
        options["metavar"] = config_field.name.split("_")[-1].upper() if choices is None else None
    group.add_argument(flag, *SHORT_ALIASES.get(config_field.name, []), **options)


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _show_default(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    return "demo data" if value is None else str(value)


def config_from_arguments(arguments: argparse.Namespace) -> RunConfig:
    """The config file (if any) with every given flag applied on top, validated."""
    config = RunConfig.load(arguments.config) if arguments.config else RunConfig()
    for name, value in _flags_given(arguments).items():
        config = replace_field(config, name, value)
    if arguments.command == "pretrain":
        if "objective.task" not in vars(arguments):
            config = replace_field(config, "objective.task", "pretrain")
        if config.objective.loss == "cross_entropy" and "objective.loss" not in vars(arguments):
            config = replace_field(config, "objective.loss", "nt_xent")
    if arguments.output:
        config = replace_field(config, "run_name", arguments.output.name)
    return config.validate()


def _flags_given(arguments: argparse.Namespace) -> dict[str, Any]:
    """The settings typed on the command line, by dotted name (flags not given are absent)."""
    given: dict[str, Any] = {}
    for name, value in vars(arguments).items():
        if "." in name or name in ("seed", "run_name"):
            given[name] = tuple(value) if isinstance(value, list) else value
    if getattr(arguments, "init_from", None):
        given["model.weights"] = "run"
        given["model.weights_path"] = str(arguments.init_from)
    if arguments.demo:
        given["data.data_dir"] = None
    return given


def resume_changes_from_arguments(arguments: argparse.Namespace) -> dict[str, Any]:
    """What a resume was asked to change: every setting of --config, then the flags given. The
    run applies those it can and refuses the others by name (see Trainer.resume)."""
    changes = config_fields(RunConfig.load(arguments.config)) if arguments.config else {}
    changes.update(_flags_given(arguments))
    return changes


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


def _add_predict_command(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="Predict the class of image files or folders with a trained run.",
        description="Prints a table (or writes a CSV) with the top classes of each image.",
    )
    predict.add_argument(
        "--run", type=Path, required=True, help="A run folder (or a checkpoint folder)."
    )
    predict.add_argument("paths", nargs="+", type=Path, help="Image files and/or folders.")
    predict.add_argument("--top-k", type=int, default=3, help="How many classes to show per image.")
    predict.add_argument("--csv", type=Path, help="Write the predictions to this CSV file too.")
    predict.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    predict.set_defaults(handler=_run_predict)


def _run_predict(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.checkpoints import CheckpointError
    from ptm_studio.core.inference import Predictor, collect_image_paths
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
    predictions = predictor.predict_paths(paths, top_k=arguments.top_k)
    print_predictions(predictions)
    if arguments.csv:
        write_predictions_csv(arguments.csv, predictions)
        print(f"Saved {len(predictions)} predictions to {arguments.csv}")
    return EXIT_DATA if predictions and all(p.error for p in predictions) else EXIT_OK


def _add_scan_command(commands: Any) -> None:
    scan = commands.add_parser("scan", help="Check a dataset folder and report problems.")
    scan.add_argument("folder", type=Path, nargs="?", help="The folder (default: the demo data).")
    scan.add_argument("--task", default="finetune", choices=("finetune", "pretrain"))
    scan.add_argument("--validation-fraction", type=float, default=0.2)
    scan.set_defaults(handler=_run_scan)


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


if __name__ == "__main__":
    sys.exit(main())
