"""One trainer per run folder: an exclusive lock held for as long as a process trains the run.

Two processes resuming the same run at the same moment both see "not running" in run.json; only
an operating-system lock settles who goes on. The lock is an advisory lock on ``run.lock`` in
the run folder (``flock`` on Linux and macOS, ``msvcrt.locking`` on Windows), so:

* it is released by the operating system when the process ends in any way (a crash, a kill,
  a power cut): a stale lock never blocks a resume, and the leftover file means nothing;
* the file is never deleted: deleting it while someone waits on it would let two holders in;
* it is closed in forked children (a forked picture-loading process would otherwise keep the
  lock alive after a killed trainer, until it noticed its parent was gone).

The file also says who holds it (process, computer, since when), for the message that refuses
a second trainer.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

LOCK_FILE = "run.lock"
# Windows locks byte ranges, and a locked byte cannot be read by others: lock one byte far
# past the holder's description so the description stays readable.
_WINDOWS_LOCK_OFFSET = 1 << 20
# A look at whether a run is free takes the lock for an instant; a trainer starting at that
# very instant tries again for this long before it takes the run for busy.
ACQUIRE_PATIENCE_SECONDS = 1.5

_HELD: dict[int, Path] = {}  # descriptors of the locks this process holds (closed after fork)
_HELD_GUARD = threading.Lock()


@dataclass(frozen=True)
class LockHolder:
    """Who trains a run now, as its lock file says (each field may be unknown)."""

    pid: int | None
    host: str
    since: datetime | None
    command: str

    def describe(self) -> str:
        """'process 4242 (ptm-studio train) since 14:02:11 on 2026-05-01'."""
        who = f"process {self.pid}" if self.pid is not None else "another process"
        if self.command:
            who += f" ({self.command})"
        if self.host and self.host != socket.gethostname():
            who += f" on the computer {self.host}"
        if self.since is not None:
            who += f" since {self.since:%H:%M:%S on %Y-%m-%d}"
        return who


class RunInUseError(Exception):
    """Another trainer (this process or another) holds the run's lock."""

    def __init__(self, run_path: Path, holder: LockHolder) -> None:
        self.run_path, self.holder = run_path, holder
        super().__init__(
            f"The run in {run_path} is being trained now, by {holder.describe()}. "
            "Two trainers on one run would mix their checkpoints and logs, so this one did not "
            "start. Wait for that training to end (or stop it: Ctrl-C in its terminal, or Stop "
            "in its window), then resume the run again."
        )


class RunLock:
    """The held lock of one run folder; :meth:`release` (or the end of the process) frees it."""

    def __init__(self, run_path: Path, descriptor: int) -> None:
        self.run_path = run_path
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(
        cls, run_path: str | Path, *, patience_seconds: float = ACQUIRE_PATIENCE_SECONDS
    ) -> RunLock:
        """Take the run's lock, or raise RunInUseError naming who holds it.

        A file system without locks (some network drives) cannot be guarded: the run is then
        trained unlocked, as before locks were kept (run.json's process still guards it).
        """
        path = Path(run_path)
        descriptor = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + patience_seconds
        while True:
            outcome = _try_lock(descriptor)
            if outcome != "busy":
                break
            if time.monotonic() >= deadline:
                holder = _read_holder(descriptor)
                os.close(descriptor)
                raise RunInUseError(path, holder)
            time.sleep(0.05)
        with _HELD_GUARD:
            _HELD[descriptor] = path
        _describe_holder(descriptor)
        return cls(path, descriptor)

    @property
    def is_held(self) -> bool:
        return self._descriptor is not None

    def release(self) -> None:
        """Free the run (closing the file releases the lock; the file stays)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        with _HELD_GUARD:
            _HELD.pop(descriptor, None)
        with contextlib.suppress(OSError):
            _unlock(descriptor)
        os.close(descriptor)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *_exception: object) -> None:
        self.release()


def lock_holder(run_path: str | Path) -> LockHolder | None:
    """Who holds the run's lock now (None: nobody; the run is free to train).

    Raises:
        OSError: the lock cannot be checked here (no lock file can be opened, or the file
            system keeps no locks); the caller falls back to what run.json says.
    """
    lock_path = Path(run_path) / LOCK_FILE
    try:
        descriptor = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return None  # never trained since locks were kept: nobody holds it
    try:
        outcome = _try_lock(descriptor)
        if outcome == "unsupported":
            raise OSError(f"{lock_path}: this drive keeps no file locks")
        if outcome == "busy":
            return _read_holder(descriptor)
        _unlock(descriptor)
        return None
    finally:
        os.close(descriptor)


# ------------------------------------------------------------------------ the operating system
def _try_lock(descriptor: int) -> str:
    """ "locked", "busy" (someone else holds it) or "unsupported" (no locks on this drive)."""
    try:
        if sys.platform == "win32":
            import msvcrt

            os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "busy"
    except OSError as error:
        if sys.platform == "win32" or error.errno in _BUSY_ERRNOS:
            return "busy"  # Windows reports a held range as EACCES / EDEADLOCK
        return "unsupported"
    return "locked"


_BUSY_ERRNOS = {11, 13, 35}  # EAGAIN (Linux), EACCES, EWOULDBLOCK (macOS)


def _unlock(descriptor: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(descriptor, fcntl.LOCK_UN)


def _describe_holder(descriptor: int) -> None:
    """Write who holds the lock into its file (best effort: the lock works without it)."""
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now().isoformat(timespec="seconds"),
        "command": _command_name(),
    }
    text = (json.dumps(holder) + "\n").encode("utf-8")
    with contextlib.suppress(OSError):
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, text)


def _read_holder(descriptor: int) -> LockHolder:
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        raw: Any = json.loads(os.read(descriptor, 4096).decode("utf-8"))
    except (OSError, ValueError):
        raw = {}
    raw = raw if isinstance(raw, dict) else {}
    pid, host, since = raw.get("pid"), raw.get("host"), raw.get("since")
    started: datetime | None = None
    if isinstance(since, str):
        with contextlib.suppress(ValueError):
            started = datetime.fromisoformat(since)
    return LockHolder(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        host=host if isinstance(host, str) else "",
        since=started,
        command=raw["command"] if isinstance(raw.get("command"), str) else "",
    )


def _command_name() -> str:
    """'ptm-studio train' for the command line, 'PTM Studio window' for the app."""
    arguments = sys.argv[1:]
    if arguments and not arguments[0].startswith("-"):
        return f"ptm-studio {arguments[0]}"
    return "the PTM Studio window" if "PySide6" in sys.modules else "PTM Studio"


def _close_inherited_locks() -> None:
    """In a forked child: drop the copies of this process's lock descriptors. The parent's
    lock stays (it is released only when every copy is closed), and the child no longer keeps
    a killed parent's run locked."""
    global _HELD_GUARD
    _HELD_GUARD = threading.Lock()  # another thread may have held it at the fork: it is gone
    descriptors = list(_HELD)
    _HELD.clear()
    for descriptor in descriptors:
        with contextlib.suppress(OSError):
            os.close(descriptor)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)
