"""``python -m ptm_studio`` opens the app; ``python -m ptm_studio train …`` (and evaluate, predict,
scan, pretrain, models, runs) runs headless through :mod:`ptm_studio.cli`."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ptm_studio import early_signals

# Asking for help or the version goes to the command-line interface too.
CLI_FLAGS = frozenset({"-h", "--help", "--version"})
# The commands that make a new run folder (unless they --resume one).
RUN_MAKING_COMMANDS = frozenset({"train", "finetune", "pretrain", "compare"})
EXIT_USAGE = 2  # as ptm_studio.cli_arguments.EXIT_USAGE: the settings cannot be used
# Trains, predicts, exports and opens the window offscreen in a temporary folder (self_test.py).
SELF_TEST_FLAG = "--self-test"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments == [SELF_TEST_FLAG]:
        from ptm_studio import self_test

        return self_test.main()
    if arguments and not asks_for_help_or_version(arguments):
        early_signals.remember_stop_signals()  # no Ctrl-C in the middle of importing torch
    from ptm_studio.cli_arguments import COMMANDS

    if not asks_for_help_or_version(arguments):
        # Help and the version never depend on the data folder: no log for them.
        from ptm_studio.core.app_logging import configure_logging

        configure_logging()  # a log file in the user's data folder, and faulthandler
    if arguments and (arguments[0] in COMMANDS or arguments[0] in CLI_FLAGS):
        return run_command_line(arguments)
    unknown = not_for_the_window(arguments, COMMANDS)
    if unknown is not None:
        print(f"error: {unknown}", file=sys.stderr)
        return EXIT_USAGE
    from ptm_studio.gui.app import main as gui_main

    return gui_main(arguments)


def not_for_the_window(arguments: Sequence[str], commands: frozenset[str]) -> str | None:
    """Why these arguments are neither a command nor the window's (``--demo``, and Qt's own
    single-dash options such as ``-platform xcb``); None when the window may open with them.
    A mistyped command must not open the window instead."""
    for argument in arguments:
        if argument.startswith("-") and not argument.startswith("--"):
            continue  # Qt's options, and their values after them, are Qt's to judge
        if argument == "--demo":
            continue
        if argument.startswith("--") or argument in ("--", ""):
            return f"unknown option {argument!r}; `ptm-studio --help` lists the commands"
        if arguments.index(argument) == 0:
            close = difflib.get_close_matches(argument, sorted(commands), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"unknown command {argument!r}{hint}; `ptm-studio --help` lists them"
    return None


def asks_for_help_or_version(arguments: Sequence[str]) -> bool:
    """``-h``, ``--help`` or ``--version`` anywhere before a ``--``: argparse answers and exits."""
    before_separator = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return any(argument in CLI_FLAGS for argument in before_separator)


def run_command_line(arguments: list[str]) -> int:
    """One headless command, after checking that the folder it will make a run in can be
    written (a plain line and exit 2, not a traceback from deep inside, when it cannot)."""
    from ptm_studio import cli
    from ptm_studio.core.locations import UnusableFolderError

    try:
        unusable = unusable_runs_folder(arguments)
        if unusable is not None:
            print(f"error: {unusable}", file=sys.stderr)
            return EXIT_USAGE
        return int(cli.main(arguments) or 0)
    except UnusableFolderError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # Output piped into `head` (or similar) that stopped reading: not an error of ours.
        # Point stdout at nothing so Python's flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def unusable_runs_folder(arguments: list[str]) -> str | None:
    """Why the folder a new run would be made in cannot be written, with the fix; None when
    it can, or the command makes no new run. Bad arguments are left to the command itself,
    which names them (argparse prints and exits 2 the same way here)."""
    if not arguments or arguments[0] not in RUN_MAKING_COMMANDS:
        return None
    from ptm_studio.cli_arguments import build_parser
    from ptm_studio.core.locations import (
        UnusableFolderError,
        default_runs_root,
        runs_root_fix,
        writable_folder,
    )

    try:  # quietly: bad arguments (and --help) are the command's to answer, once
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parsed = build_parser().parse_args(arguments)
    except SystemExit:
        return None
    if getattr(parsed, "resume", None):
        return None  # goes on in the run's own folder
    root, fix = _runs_folder_of(parsed, default_runs_root(), runs_root_fix())
    try:
        writable_folder(root, fix)
    except UnusableFolderError as error:
        return str(error)
    return None


def _runs_folder_of(
    parsed: argparse.Namespace, default: Path, default_fix: str
) -> tuple[Path, str]:
    output, runs_root = getattr(parsed, "output", None), getattr(parsed, "runs_root", None)
    if output:
        return Path(output).absolute().parent, "Choose a folder you can write to with --output."
    if runs_root:
        return Path(runs_root).absolute(), "Choose a folder you can write to with --runs-root."
    return default, default_fix


def train_main() -> None:
    """``ptm-studio-train …`` is ``ptm-studio train …``: the same checks of the folders it
    writes into, the same log."""
    sys.exit(main(["train", *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
