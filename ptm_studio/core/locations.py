"""Where PTM Studio keeps its files: run folders and the log, under the user's folders or
``$PTM_STUDIO_HOME`` when it is set (tests and portable installs move everything with it);
and the check that a folder it must write into can be written."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

HOME_VARIABLE = "PTM_STUDIO_HOME"
APP_FOLDER_NAME = "PTM Studio"


class UnusableFolderError(OSError):
    """A folder PTM Studio must write into cannot be made or written; the message names the
    folder, why, and ``fix`` (what the user can do about it)."""

    def __init__(self, folder: Path, reason: str, fix: str) -> None:
        super().__init__(f"PTM Studio cannot write into {folder}: {reason}. {fix}")
        self.folder, self.reason, self.fix = folder, reason, fix


def home_override() -> Path | None:
    """``$PTM_STUDIO_HOME`` as an absolute path, or None when it is unset or blank (then the
    user's own folders are used, as if it were not set)."""
    value = os.environ.get(HOME_VARIABLE, "").strip()
    if not value:
        return None
    return Path(value).expanduser().absolute()


def default_runs_root() -> Path:
    """``$PTM_STUDIO_HOME/runs`` if set, else the user's data folder (e.g. ~/.local/share/PTM Studio/runs)."""
    override = home_override()
    if override is not None:
        return override / "runs"
    import platformdirs  # imported here: only needed when no folder is given

    return Path(platformdirs.user_data_dir(APP_FOLDER_NAME, appauthor=False)) / "runs"


def default_log_dir() -> Path:
    """``$PTM_STUDIO_HOME/logs`` if set, else the user's log folder (e.g. ~/.local/state/PTM Studio/log)."""
    override = home_override()
    if override is not None:
        return override / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_FOLDER_NAME, appauthor=False))


def default_cache_dir() -> Path:
    """``$PTM_STUDIO_HOME/cache`` if set, else the user's cache folder (e.g. ~/.cache/PTM Studio):
    files that can be thrown away at any time, such as decoded pictures of a run too large for
    memory."""
    override = home_override()
    if override is not None:
        return override / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_FOLDER_NAME, appauthor=False))


def runs_root_fix() -> str:
    """What to tell a user whose default runs folder cannot be written."""
    if home_override() is not None:
        return f"Set {HOME_VARIABLE} to a folder you can write to, or give one with --runs-root FOLDER."
    return f"Give a folder you can write to with --runs-root FOLDER, or set {HOME_VARIABLE} to one."


def writable_folder(folder: Path, fix: str) -> Path:
    """Make ``folder`` (with its parents) and check that a file can be created in it.

    Returns ``folder``; raises UnusableFolderError saying why not (a file in the way, a
    read-only disk, no permission, a full disk) and ``fix``. The check really writes, since
    permission bits do not tell the whole story (read-only mounts, root, network disks).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".ptm-studio-write-check-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise UnusableFolderError(folder, why_unwritable(folder, error), fix) from error
    return folder


def why_unwritable(folder: Path, error: OSError) -> str:
    """In plain words, why ``error`` stopped PTM Studio from writing into ``folder``."""
    blocking_file = _file_in_the_way(folder)
    if blocking_file is not None:
        return f"{blocking_file} is a file, not a folder"
    reasons = {
        errno.EROFS: "it is on a read-only disk",
        errno.EACCES: "you may not write there",
        errno.EPERM: "you may not write there",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "your disk quota is used up",
        errno.ENOENT: "it cannot be made there",
        errno.ENAMETOOLONG: "the name is too long",
    }
    return reasons.get(error.errno or 0, error.strerror or str(error))


def _file_in_the_way(folder: Path) -> Path | None:
    """``folder`` itself or the nearest existing folder above it, when that is not a folder."""
    for candidate in (folder, *folder.parents):
        try:
            is_folder = stat.S_ISDIR(candidate.stat().st_mode)
        except OSError:  # not there (or not visible): look further up
            continue
        return None if is_folder else candidate
    return None


def unused_folder(parent: Path, name: str, *, empty_is_unused: bool = False) -> Path:
    """``parent/name``, or ``name 2``, ``name 3``… : the first that does not exist (or, with
    ``empty_is_unused``, is an empty folder), so saving never writes over files already there."""
    candidate, number = parent / name, 1
    while candidate.exists() and not (empty_is_unused and not any(candidate.iterdir())):
        number += 1
        candidate = parent / f"{name} {number}"
    return candidate
