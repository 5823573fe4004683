"""Where PTM Studio keeps its files: run folders and the log, under the user's folders or
``$PTM_STUDIO_HOME`` when it is set (tests and portable installs move everything with it)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "PTM_STUDIO_HOME"
APP_FOLDER_NAME = "PTM Studio"


def default_runs_root() -> Path:
    """``$PTM_STUDIO_HOME/runs`` if set, else the user's data folder (e.g. ~/.local/share/PTM Studio/runs)."""
    override = os.environ.get(HOME_VARIABLE)
    if override:
        return Path(override).expanduser() / "runs"
    import platformdirs  # imported here: only needed when no folder is given

    return Path(platformdirs.user_data_dir(APP_FOLDER_NAME, appauthor=False)) / "runs"


def default_log_dir() -> Path:
    """``$PTM_STUDIO_HOME/logs`` if set, else the user's log folder (e.g. ~/.local/state/PTM Studio/log)."""
    override = os.environ.get(HOME_VARIABLE)
    if override:
        return Path(override).expanduser() / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_FOLDER_NAME, appauthor=False))


def unused_folder(parent: Path, name: str, *, empty_is_unused: bool = False) -> Path:
    """``parent/name``, or ``name 2``, ``name 3``… : the first that does not exist (or, with
    ``empty_is_unused``, is an empty folder), so saving never writes over files already there."""
    candidate, number = parent / name, 1
    while candidate.exists() and not (empty_is_unused and not any(candidate.iterdir())):
        number += 1
        candidate = parent / f"{name} {number}"
    return candidate
