"""The command line's arguments: one flag per RunConfig field, generated from the config
dataclasses so the CLI and the GUI always offer the same settings, and the config they make."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any

from ptm_studio import __version__
from ptm_studio.cli_use_arguments import add_model_use_commands
from ptm_studio.cli_values import (
    config_file,
    existing_folder,
    folder_to_write,
    label_share,
    path_setting,
    run_folder,
    run_name_or_folder,
    whole_number,
)
from ptm_studio.core.config import SECTIONS, RunConfig, config_fields, get_field, replace_field

# Every headless command; `python -m ptm_studio COMMAND` dispatches here, anything else opens the app.
COMMANDS = frozenset(
    {
        "train",
        "finetune",
        "pretrain",
        "compare",
        "evaluate",
        "predict",
        "embed",
        "heatmap",
        "export",
        "report",
        "scan",
        "models",
        "runs",
        "find-lr",
    }
)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
"""Exit codes: done; training or an export check failed; bad arguments or settings; the data
cannot be used; stopped with Ctrl-C."""
SHORT_ALIASES = {
    "data_dir": ["--data"],
    "num_epochs": ["--epochs"],
    "time_budget_minutes": ["--minutes"],
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptm-studio",
        description="Train and use image classifiers without the window. "
        "Run `ptm-studio` with no arguments to open the app.",
    )
    parser.add_argument("--version", action="version", version=f"PTM Studio {__version__}")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation: train a tiny model, predict, export and open the window "
        "offscreen, all in a temporary folder (exit code 0 when everything works)",
    )
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
    _add_train_command(
        commands,
        "find-lr",
        help_text="Find a learning rate: a short test with rising rates, and the one to use.",
        description="Trains for at most a few hundred steps with an exponentially rising "
        "learning rate on the folder, with the settings a run would use, then suggests the "
        "rate where the loss fell fastest (at most a tenth of the one with the lowest loss). "
        "Nothing is saved.",
    )
    add_model_use_commands(commands)
    _add_scan_command(commands)
    listing = commands.add_parser("models", help="List the available backbones.")
    listing.set_defaults(command="models")
    runs = commands.add_parser("runs", help="List earlier runs.")
    runs.add_argument(
        "--runs-root",
        type=folder_to_write,
        help="Folder holding the runs (default: your data folder).",
    )
    runs.set_defaults(command="runs")
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
            type=whole_number(0, 2**32 - 1),
            nargs="+",
            default=[0],
            help="Repeat with these seeds (default: 0).",
        )
        train.add_argument(
            "--label-fractions",
            type=label_share,
            nargs="+",
            metavar="FRACTION",
            help="Compare at each of these shares of the labels (e.g. 0.01 0.1 1) and print "
            "the label-fraction curve: accuracy against the labelled pictures used.",
        )
    if name in ("finetune", "compare"):
        train.add_argument(
            "--init-from",
            type=run_name_or_folder,
            metavar="RUN_DIR",
            help="Start from the backbone an earlier run learnt (same as --weights run "
            "--weights-path RUN_DIR).",
        )
    if name == "find-lr":
        train.add_argument(
            "--steps",
            type=whole_number(10, 1000),
            default=100,
            help="At most this many training steps, each at a higher rate (default: 100).",
        )
    train.add_argument(
        "--config",
        type=config_file,
        help="A config.json (e.g. from an earlier run) to start from; relative folders and files "
        "in it are taken from the config file's folder.",
    )
    if name != "find-lr":
        _add_run_folder_flags(train)
    if name in ("train", "finetune"):
        train.add_argument(
            "--auto",
            action="store_true",
            help="Let Auto choose the network, starting weights, image size, batch, learning "
            "rate (from a short test), schedule, epochs and the rest for these pictures on this "
            "computer; each choice is shown with its reason, and the flags you give win.",
        )
    train.add_argument("--demo", action="store_true", help="Train on the built-in demo flowers.")
    train.add_argument("--quiet", action="store_true", help="No progress bar, only the summary.")
    _add_settings_flags(train)


def _add_run_folder_flags(train: argparse.ArgumentParser) -> None:
    """Where a run is written, and going on with one (not for a test that writes nothing)."""
    train.add_argument(
        "--output",
        type=folder_to_write,
        help="Folder for this run (default: a new folder under your data folder).",
    )
    train.add_argument(
        "--runs-root", type=folder_to_write, help="Where new run folders are created."
    )
    train.add_argument(
        "--resume",
        type=run_folder,
        metavar="RUN_DIR",
        help="Continue a stopped run from its last checkpoint. Refused (exit 2) while another "
        "process trains the run, and (exit 3) when its pictures changed since it started.",
    )
    train.add_argument(
        "--use-previous-checkpoint",
        action="store_true",
        help="With --resume, when the last checkpoint is damaged: go on from the one saved "
        "before it (the damaged one is kept aside).",
    )


def _add_settings_flags(train: argparse.ArgumentParser) -> None:
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


def _add_config_flag(
    group: argparse._ActionsContainer,
    field_path: str,
    config_field: dataclasses.Field,
    owner: type,
    default: Any,
) -> None:
    hint = _type_hints(owner)[config_field.name]
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
    elif base is str and config_field.name.endswith(("_dir", "_path")):
        options.update(
            type=path_setting, metavar="DIR" if config_field.name.endswith("_dir") else "PATH"
        )
    else:
        options.update(type=base, choices=choices)
        options["metavar"] = config_field.name.split("_")[-1].upper() if choices is None else None
    group.add_argument(flag, *SHORT_ALIASES.get(config_field.name, []), **options)


@functools.cache
def _type_hints(owner: type) -> dict[str, Any]:
    """Once per settings class: resolving the string annotations anew for each of the ~240
    flags took half of `ptm-studio --help`'s time."""
    return typing.get_type_hints(owner)


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return hint


def _show_default(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    return "demo data" if value is None else str(value)


def _add_scan_command(commands: Any) -> None:
    scan = commands.add_parser("scan", help="Check a dataset folder and report problems.")
    scan.add_argument(
        "folder", type=existing_folder, nargs="?", help="The folder (default: the demo data)."
    )
    # The same flags, checks and defaults as train's: what scan calls ready, train accepts.
    defaults = RunConfig()
    for field_path in ("objective.task", "data.validation_fraction"):
        section_name, name = field_path.split(".")
        section_type = SECTIONS[section_name]
        config_field = next(item for item in dataclasses.fields(section_type) if item.name == name)
        default = getattr(getattr(defaults, section_name), name)
        _add_config_flag(scan, field_path, config_field, section_type, default)
    scan.set_defaults(command="scan")


def config_from_arguments(arguments: argparse.Namespace) -> RunConfig:
    """The config file (if any) with every given flag applied on top, validated."""
    config = RunConfig.load(arguments.config) if arguments.config else RunConfig()
    for name, value in flags_given(arguments).items():
        config = replace_field(config, name, value)
    if arguments.command == "pretrain":
        if "objective.task" not in vars(arguments):
            config = replace_field(config, "objective.task", "pretrain")
        if config.objective.loss == "cross_entropy" and "objective.loss" not in vars(arguments):
            config = replace_field(config, "objective.loss", "nt_xent")
    if getattr(arguments, "output", None):
        config = replace_field(config, "run_name", arguments.output.name)
    return _with_config_file_paths(config, arguments).validate()


def chosen_settings(arguments: argparse.Namespace) -> set[str]:
    """The settings the user chose: the flags given, and what the --config file sets to other
    than the defaults (a default written into an earlier run's config.json chose nothing)."""
    from ptm_studio.core.transfer_recipe import RECIPE_SETTINGS  # only when training: torch

    chosen = set(flags_given(arguments))
    if arguments.config:
        defaults, loaded = RunConfig(), RunConfig.load(arguments.config)
        chosen |= {
            name for name in RECIPE_SETTINGS if get_field(loaded, name) != get_field(defaults, name)
        }
    return chosen


def scan_config(arguments: argparse.Namespace) -> RunConfig:
    """The settings `scan` checks the folder for, validated as train validates them."""
    config = RunConfig()
    for name, value in vars(arguments).items():
        if "." in name:
            config = replace_field(config, name, value)
    return config.validate()


def flag_for(field_path: str) -> str:
    """The flag that sets a setting: ``optim.num_epochs`` → ``--num-epochs``."""
    return "--" + field_path.rsplit(".", 1)[-1].replace("_", "-")


def flags_given(arguments: argparse.Namespace) -> dict[str, Any]:
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
    changes.update(flags_given(arguments))
    return _changes_with_config_file_paths(changes, arguments)


# Settings that name a folder or a file. Given in a --config file as relative paths, they are
# taken from the config file's folder (so the file means the same from any working folder);
# given as flags, from the working folder. Either way config.json stores them absolute.
PATH_SETTINGS = ("data.data_dir", "data.monitor_dir", "model.weights_path")


def _with_config_file_paths(config: Any, arguments: argparse.Namespace) -> Any:
    for field_path in PATH_SETTINGS:
        value = get_field(config, field_path)
        resolved = _from_config_file_folder(field_path, value, arguments)
        if resolved != value:
            config = replace_field(config, field_path, resolved)
    return config


def _changes_with_config_file_paths(
    changes: dict[str, Any], arguments: argparse.Namespace
) -> dict[str, Any]:
    return {
        name: _from_config_file_folder(name, value, arguments) if name in PATH_SETTINGS else value
        for name, value in changes.items()
    }


def _from_config_file_folder(field_path: str, value: Any, arguments: argparse.Namespace) -> Any:
    """A relative path that came from the --config file, taken from that file's folder."""
    config_file = getattr(arguments, "config", None)
    given_as_flag = field_path in vars(arguments) or (
        (field_path == "model.weights_path" and getattr(arguments, "init_from", None))
        or (field_path == "data.data_dir" and getattr(arguments, "demo", False))
    )
    if not config_file or given_as_flag or not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    candidate = (Path(config_file).expanduser().absolute().parent / path).absolute()
    if field_path == "model.weights_path" and not candidate.exists():
        return value  # an earlier run's name (weights=run), looked up in the runs folder
    return str(candidate)
