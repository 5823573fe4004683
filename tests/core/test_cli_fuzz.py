"""Fuzzing the command line (issue 11): generated bad values thrown at every flag and positional
argument of every command. Each must end in a plain refusal: exit code 2 (a bad argument) or 3
(pictures that cannot be used), never a traceback, never a hang, never a change to the pictures.

The flags are found by walking the real parser, so a flag added later is fuzzed too; the bad
values are chosen by what the flag expects (a number, one of some names, a path of some kind).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from training_helpers import train_with_the_cli

from ptm_studio import cli_values
from ptm_studio.cli import main
from ptm_studio.cli_arguments import COMMANDS, EXIT_DATA, EXIT_USAGE, build_parser

# Out of every range a setting or flag has (the largest is 2**32 for the seed).
BAD_NUMBERS = ("nan", "inf", "-inf", "1e999", "-1e15", "1e15", "12abc", "0x1f", "1,5", "", " ")
# The paths each kind of path flag must refuse (a picture folder is a fine --data, an empty
# folder a fine --to: those are left out where they are valid).
_UNUSABLE = ("empty", "nul", "pipe", "device")
HOSTILE_PATHS = {
    cli_values.run_folder: (*_UNUSABLE, "missing", "file", "folder", "not_a_run"),
    cli_values.config_file: (*_UNUSABLE, "missing", "file", "folder", "not_a_run"),
    cli_values.run_name_or_folder: (*_UNUSABLE, "missing", "file", "folder", "not_a_run"),
    cli_values.existing_folder: (*_UNUSABLE, "missing", "file", "folder"),
    cli_values.checkpoint_folder: (*_UNUSABLE, "missing", "file", "folder", "run"),
    cli_values.path_setting: (*_UNUSABLE, "missing", "file", "folder"),
    cli_values.pictures: (*_UNUSABLE, "missing", "folder"),
    cli_values.folder_to_write: (*_UNUSABLE, "file", "under_file"),
    cli_values.new_file: (*_UNUSABLE, "folder", "under_file"),
}


@dataclass(frozen=True)
class Places:
    """What the fuzzed commands are pointed at."""

    run: Path
    pictures: Path
    empty: Path
    pipe: Path
    file: Path
    runs_root: Path

    def hostile(self, kind: str) -> str:
        return {
            "empty": "",
            "nul": "a\x00b",
            "missing": str(self.empty / "nowhere" / "x.jpg"),
            "pipe": str(self.pipe),
            "device": os.devnull,
            "file": str(self.file),
            "folder": str(self.empty),
            "not_a_run": str(self.pictures),
            "under_file": str(self.file / "inside"),
            "run": str(self.run),
        }[kind]


@pytest.fixture(scope="module")
def places(
    tmp_path_factory: pytest.TempPathFactory, image_folder_maker: Callable[..., Path]
) -> Places:
    root = tmp_path_factory.mktemp("fuzz")
    pictures = image_folder_maker(root / "pictures", images_per_class=4)
    run = train_with_the_cli(pictures, root / "run")
    empty = root / "empty"
    empty.mkdir()
    os.mkfifo(root / "pipe.jpg")
    file = sorted((pictures / "circle").iterdir())[0]
    return Places(run, pictures, empty, root / "pipe.jpg", file, root / "fuzz runs")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


SUBPARSERS = _subparsers()


def _targets(command: str) -> list[argparse.Action]:
    """Every flag and positional of ``command`` but --help."""
    return [
        action
        for action in SUBPARSERS[command]._actions
        if not isinstance(action, argparse._HelpAction)
    ]


TARGETS = [(command, action) for command in sorted(COMMANDS) for action in _targets(command)]


def _base_arguments(command: str, places: Places) -> dict[str, list[str]]:
    """Arguments that make ``command`` valid but quick: training commands get an empty folder
    (refused with exit 3 once every setting is checked), the others the trained run."""
    if command == "find-lr":
        return {"--data": [str(places.empty)], "--quiet": []}
    if command in ("train", "finetune", "pretrain", "compare"):
        base = {"--data": [str(places.empty)], "--runs-root": [str(places.runs_root)]}
        if command == "compare":
            base["--init-from"] = [str(places.run)]
        return base | {"--quiet": []}
    use = {"--run": [str(places.run)]}
    if command in ("predict", "heatmap", "embed"):
        use["paths"] = [str(places.pictures)]
    if command in ("heatmap", "embed"):
        use["--to"] = [str(places.empty / "out")]
    if command == "export":
        use["--to"] = [str(places.empty / "export")]
    if command == "scan":
        return {"folder": [str(places.empty)]}
    if command in ("models", "runs"):
        return {}
    return use


def _bad_values(action: argparse.Action) -> st.SearchStrategy[list[str]]:
    """Values ``action`` must refuse."""
    if action.nargs == 0:  # a switch: any value given to it is a stray argument
        return st.lists(st.sampled_from(["yes", "1", "--"]), min_size=1, max_size=1)
    if action.choices:
        choices = {str(choice) for choice in action.choices}
        return st.lists(
            st.text(min_size=1, max_size=12).filter(
                lambda text: text not in choices and not text.startswith("-")
            ),
            min_size=1,
            max_size=2,
        )
    if action.type in (int, float) or getattr(action.type, "__name__", "") in (
        "whole number",
        "_probability",
        "_opacity",
        "finite_number",
        "label_share",
    ):
        return st.lists(
            st.sampled_from(BAD_NUMBERS)
            | st.integers(min_value=10**15, max_value=10**30).map(str)
            | st.integers(max_value=-(10**12)).map(str),
            min_size=1,
            max_size=1,
        )
    assert action.type in HOSTILE_PATHS, f"{action.option_strings or action.dest}: what kind?"
    return st.lists(
        st.sampled_from(HOSTILE_PATHS[action.type]).map(lambda kind: f"<{kind}>"),
        min_size=1,
        max_size=1,
    )


# Flags that take any text: the names no run, class or network has, and what a name cannot be.
FREE_TEXT = {
    "--class": st.sampled_from(["<file>", "no such class ✓", "\x1b[31m", ""]),
    "--backbone": st.text(min_size=1, max_size=16).filter(lambda text: not text.startswith("-")),
    "--run-name": st.sampled_from(["", " ", "\x00", "a\x00b"]),
}


@st.composite
def bad_command_lines(draw: st.DrawFn) -> tuple[str, argparse.Action, list[str]]:
    command, action = draw(st.sampled_from(TARGETS))
    flag = action.option_strings[0] if action.option_strings else ""
    values = [draw(FREE_TEXT[flag])] if flag in FREE_TEXT else draw(_bad_values(action))
    return command, action, values


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=bad_command_lines())
def test_every_flag_of_every_command_refuses_bad_values_plainly(
    places: Places, capsys: pytest.CaptureFixture[str], case: tuple[str, argparse.Action, list[str]]
) -> None:
    command, action, values = case
    filled = [
        places.hostile(value[1:-1]) if value.startswith("<") and value.endswith(">") else value
        for value in values
    ]
    arguments = _base_arguments(command, places)
    key = action.option_strings[0] if action.option_strings else action.dest
    for option in action.option_strings:
        arguments.pop(option, None)
    arguments[key] = filled
    command_line = [command]
    for name, values_given in arguments.items():
        command_line += values_given if not name.startswith("-") else [name, *values_given]
    code = main(command_line)
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert code in (EXIT_USAGE, EXIT_DATA), (command_line, code, shown)
    assert "Traceback" not in shown
    assert "\x1b" not in shown
    assert captured.err.strip(), (command_line, shown)  # said why, on stderr


def test_the_fuzzing_reached_every_command_and_kind_of_flag() -> None:
    """The walk over the parser found every command, and flags of every kind."""
    assert {command for command, _ in TARGETS} == set(COMMANDS) - {"models"} | {
        command for command in COMMANDS if _targets(command)
    }
    kinds = {type(action).__name__ for _, action in TARGETS}
    assert {"_StoreAction", "_StoreTrueAction", "BooleanOptionalAction"} <= kinds
    assert len(TARGETS) > 150
