"""A log file in the user's data folder, and faulthandler, for the app and the CLI alike.

When something goes wrong on a user's machine, the log says what happened; faulthandler writes
the Python stack of every thread into it if the process dies in native code (a segfault in a
driver, Qt or torch), where no exception handler can run.

Logging never stops the program. When the log folder cannot be written (a file in its place,
a read-only disk, no permission, a full disk) the log goes to a folder in the system's temp
folder instead, or to the console only, and one line on stderr says so, once.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import logging
import logging.handlers
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import IO

from ptm_studio.core.locations import default_log_dir, why_unwritable

LOG_FILE_NAME = "ptm-studio.log"
MAX_LOG_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_fault_log: IO[str] | None = None
_warned_about: set[Path] = set()  # log folders already said to be unusable (said once only)


class LogFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that, once it cannot be written any more (the disk filled up, the
    drive went away), says so in one line and steps aside, instead of printing a traceback on
    stderr for every message that follows."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        logging.getLogger().removeHandler(self)
        with contextlib.suppress(Exception):
            self.close()
        folder = Path(self.baseFilename).parent
        reason = why_unwritable(folder, error) if isinstance(error, OSError) else str(error)
        say_on_stderr(
            f"PTM Studio: the log {self.baseFilename} cannot be written any more ({reason});"
            " from now on messages go to the console only."
        )


def configure_logging(log_dir: Path | None = None, *, level: int = logging.INFO) -> Path | None:
    """Log to a rotating file (and keep console output); enable faulthandler.

    Returns the log file: in ``log_dir`` (default: :func:`default_log_dir`), or in a folder of
    this user's in the temp folder when that cannot be written, or None when no file can be
    written anywhere (the log then goes to the console only). Calling it again for the same
    folder adds nothing and says nothing again.
    """
    wanted = Path(log_dir) if log_dir else default_log_dir()
    root = logging.getLogger()
    root.setLevel(min(root.level or level, level))
    path, problem = _attach_log_file(root, wanted)
    if problem is not None:
        fallback = _private_temp_folder()
        path = _attach_log_file(root, fallback / "logs")[0] if fallback else None
        if wanted not in _warned_about:
            _warned_about.add(wanted)
            instead = f"it goes to {path} instead" if path else "it goes to the console only"
            message = f"could not write the log at {wanted / LOG_FILE_NAME} ({problem}); {instead}"
            say_on_stderr(f"PTM Studio: {message}.")
            logging.getLogger(__name__).warning(message)
    _enable_faulthandler(path)
    return path


def _attach_log_file(root: logging.Logger, folder: Path) -> tuple[Path | None, str | None]:
    """Add a handler writing ``folder``/ptm-studio.log to ``root``, unless one is there.
    Returns (the file, None), or (None, why it cannot be written)."""
    path = folder / LOG_FILE_NAME
    if any(getattr(handler, "baseFilename", None) == str(path) for handler in root.handlers):
        return path, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = LogFileHandler(
            path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    except OSError as error:
        return None, why_unwritable(folder, error)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    return path, None


def _private_temp_folder() -> Path | None:
    """``ptm-studio-<user>`` in the system's temp folder, made only this user may enter; None
    when there is no temp folder, or the name is taken by something this user does not own
    (the temp folder is shared: never write through someone else's folder or link)."""
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    try:
        folder = Path(tempfile.gettempdir()) / f"ptm-studio-{user}"
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        status = folder.lstat()
    except OSError:  # gettempdir raises FileNotFoundError when no temp folder is usable
        return None
    if not stat.S_ISDIR(status.st_mode):
        return None
    if hasattr(os, "getuid") and status.st_uid != os.getuid():
        return None
    return folder


def say_on_stderr(line: str) -> None:
    """One line for the user on stderr, if there is one (a windowed app may have none)."""
    stream = sys.stderr
    if stream is None:
        return
    with contextlib.suppress(Exception):
        stream.write(line + "\n")
        stream.flush()


def _enable_faulthandler(log_file: Path | None) -> None:
    """Native crashes are written into the log file (or onto stderr when there is none)."""
    global _fault_log
    if _fault_log is not None:
        return  # already writing into a log file
    if log_file is not None:
        try:
            _fault_log = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
        except OSError:
            _fault_log = None
        else:
            faulthandler.enable(file=_fault_log, all_threads=True)
            atexit.register(_close_fault_log)
            return
    with contextlib.suppress(Exception):  # no usable stderr (a windowed app): nothing to do
        faulthandler.enable(all_threads=True)


def _close_fault_log() -> None:
    global _fault_log
    if _fault_log is not None:
        faulthandler.disable()
        _fault_log.close()
        _fault_log = None
