"""What each kind of command-line value must be, checked while the arguments are read.

Every path flag says what it expects (a file to read, a folder of pictures, a run folder, a place
to write), so a wrong one stops at once with exit code 2 and a message that names the flag,
what was found and what to do, before anything is loaded or written. A pipe or device given as
a file is refused here too: opening it would wait forever.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ptm_studio.core.file_reading import MAX_SETTINGS_FILE_BYTES, describe_size

MAX_NAME_BYTES = 255  # the longest file or folder name the usual file systems allow


def _kind(path: Path) -> str | None:
    """'file', 'folder', 'special' (pipe, socket, device) or None when nothing is there."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"{path} cannot be reached ({error.strerror or error})"
        ) from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "special"


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("the path holds a NUL character")
    path = Path(text).expanduser()
    too_long = [part for part in path.parts if len(os.fsencode(part)) > MAX_NAME_BYTES]
    if too_long:
        raise argparse.ArgumentTypeError(
            f"a name in the path is {len(os.fsencode(too_long[0]))} bytes long; "
            f"files and folders can have at most {MAX_NAME_BYTES}"
        )
    return path


def path_setting(text: str) -> str:
    """A setting that names a folder or file (``--data``, ``--weights-path``): checked when the
    run starts, so that the message can say what the folder holds; never empty here (an empty
    ``--data`` would otherwise mean the demo pictures)."""
    return str(_path(text))


def config_file(text: str) -> Path:
    """A settings file to read (its content is checked when it is read)."""
    path = _path(text)
    kind = _kind(path)
    if kind is None:
        raise argparse.ArgumentTypeError(f"there is no file {path}; check the path")
    if kind == "folder":
        raise argparse.ArgumentTypeError(
            f"{path} is a folder; give the config.json file (e.g. {path / 'config.json'})"
        )
    if kind == "special":
        raise argparse.ArgumentTypeError(f"{path} is a pipe or device, not a file")
    size = path.stat().st_size
    if size > MAX_SETTINGS_FILE_BYTES:
        raise argparse.ArgumentTypeError(
            f"{path} is {describe_size(size)}: far too large for a settings file"
        )
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{path} may not be read (permission denied)")
    return path


def existing_folder(text: str) -> Path:
    path = _path(text)
    kind = _kind(path)
    if kind is None:
        raise argparse.ArgumentTypeError(f"there is no folder {path}; check the path")
    if kind != "folder":
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    return path


def checkpoint_folder(text: str) -> Path:
    """One of a run's checkpoint folders (``RUN/checkpoints/best``)."""
    path = existing_folder(text)
    if (path / "checkpoints").is_dir():
        raise argparse.ArgumentTypeError(
            f"{path} is a run folder; give one of its checkpoints ({path / 'checkpoints' / 'best'} "
            f"or {path / 'checkpoints' / 'last'}), or leave --checkpoint out for the best one"
        )
    return path


def run_folder(text: str) -> Path:
    """A run folder (or one of its checkpoint folders): what a trained run is given as."""
    path = existing_folder(text)
    if not any((path / name).exists() for name in ("config.json", "run.json", "meta.json")):
        raise argparse.ArgumentTypeError(
            f"{path} is not a PTM Studio run folder (it has no config.json); "
            "`ptm-studio runs` lists your runs"
        )
    return path


def run_name_or_folder(text: str) -> Path:
    """A run folder, or the name of a run in the runs folder (looked up when the run starts)."""
    path = _path(text)
    if _kind(path) in ("file", "special"):
        raise argparse.ArgumentTypeError(f"{path} is a file; give a run folder or a run's name")
    return path


def pictures(text: str) -> Path:
    """A picture file or a folder of pictures."""
    path = _path(text)
    kind = _kind(path)
    if kind is None:
        raise argparse.ArgumentTypeError(f"there is no file or folder {path}; check the path")
    if kind == "special":
        raise argparse.ArgumentTypeError(f"{path} is a pipe or device, not a picture file")
    return path


def new_file(text: str) -> Path:
    """A file to write: not a folder, not a pipe, in a folder that exists or can be made."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} ends with '/': give a file name, not a folder")
    path = _path(text)
    kind = _kind(path)
    if kind == "folder":
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name inside it")
    if kind == "special":
        raise argparse.ArgumentTypeError(f"{path} is a pipe or device, not a file to write")
    _check_parent(path)
    return path


def folder_to_write(text: str) -> Path:
    """A folder to write into: an existing folder, or one that can be made."""
    path = _path(text)
    kind = _kind(path)
    if kind in ("file", "special"):
        raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
    _check_parent(path)
    return path


def _check_parent(path: Path) -> None:
    for parent in path.absolute().parents:
        kind = _kind(parent)
        if kind is None:
            continue
        if kind != "folder":
            raise argparse.ArgumentTypeError(f"{parent} is a file, so {path} cannot be made")
        return


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A whole number in a range, e.g. ``--top-k``: 'must be 1 or more'."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"must be {minimum} or more{upper}, not {value}")
        return value

    parse.__name__ = "whole number"
    return parse


def finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def label_share(text: str) -> float:
    """A share of the labels: above 0, at most 1 (0.1 is 10 %)."""
    value = finite_number(text)
    if not 0.001 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a share of the labels between 0.001 and 1 (0.1 is 10 %)"
        )
    return value
