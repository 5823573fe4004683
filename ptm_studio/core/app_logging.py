"""A log file in the user's data folder, and faulthandler, for the app and the CLI alike.

When something goes wrong on a user's machine, the log says what happened; faulthandler writes
the Python stack of every thread into it if the process dies in native code (a segfault in a
driver, Qt or torch), where no exception handler can run.
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import logging.handlers
from pathlib import Path
from typing import IO

from ptm_studio.core.locations import default_log_dir

LOG_FILE_NAME = "ptm-studio.log"
MAX_LOG_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3
_fault_log: IO[str] | None = None


def configure_logging(log_dir: Path | None = None, *, level: int = logging.INFO) -> Path:
    """Log to a rotating file (and keep console output); enable faulthandler. Returns the file."""
    global _fault_log
    folder = log_dir or default_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_FILE_NAME
    root = logging.getLogger()
    root.setLevel(min(root.level or level, level))
    if not any(getattr(handler, "baseFilename", None) == str(path) for handler in root.handlers):
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    if _fault_log is None:
        _fault_log = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        faulthandler.enable(file=_fault_log, all_threads=True)
        atexit.register(_close_fault_log)
    return path


def _close_fault_log() -> None:
    global _fault_log
    if _fault_log is not None:
        faulthandler.disable()
        _fault_log.close()
        _fault_log = None
