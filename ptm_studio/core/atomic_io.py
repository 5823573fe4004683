"""Atomic file writes: a temp file in the same folder, fsync, then os.replace.

A crash or kill at any moment leaves either the old file or the new one at the final path,
never a partial file. Stray temp files (``*.partial``) are swept by :func:`remove_stray_temp_files`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a file object; on clean exit its content replaces ``path`` atomically."""
    final_path = Path(path)
    final_path.parent.mkdir(parents=True, exist_ok=True)  # its error names the folder
    try:
        descriptor, temp_name = tempfile.mkstemp(
            prefix=f".{final_path.name}.", suffix=TEMP_SUFFIX, dir=final_path.parent
        )
    except OSError as error:
        # Named by the file the user asked for, not by a temp name they never chose.
        raise OSError(error.errno, error.strerror, str(final_path)) from error
    try:
        _give_usual_permissions(descriptor, final_path)
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(descriptor, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(temp_name, final_path)
        except OSError as error:  # e.g. the file is write-protected: name it, not the temp
            raise OSError(error.errno, error.strerror, str(final_path)) from error
        _fsync_directory(final_path.parent)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        buried = _os_error_beneath(error)
        if buried is not None:
            # A writer that hid the real cause (torch.save turns a full disk into a
            # RuntimeError about zip positions): callers are told what the disk said.
            raise OSError(buried.errno, buried.strerror, str(final_path)) from error
        raise


def _os_error_beneath(error: BaseException) -> OSError | None:
    """The OSError that ``error`` (not itself an OSError) was raised while handling, if any."""
    if not isinstance(error, Exception) or isinstance(error, OSError):
        return None
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def _give_usual_permissions(descriptor: int, final_path: Path) -> None:
    """mkstemp makes files only their owner may read (0600); a file replaced keeps its mode and
    a new one gets what the user's umask allows, as open() would: a report or a CSV a user
    hands on must be readable by whoever they hand it to."""
    if not hasattr(os, "fchmod"):  # Windows: no such modes
        return
    try:
        mode = final_path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    os.fchmod(descriptor, mode)


def _umask() -> int:
    """The process umask, read without changing it where Linux says it (os.umask can only
    read it by setting it, which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: NaN and ±Inf become null (JSON has no such numbers), paths and
    keys become strings; dicts, lists and tuples are converted all the way down."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: str | Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_with_atomic(path: str | Path, save: Callable[[IO[bytes]], None]) -> None:
    """Let ``save`` write into a binary file object (e.g. ``torch.save(obj, f)``) atomically."""
    with atomic_writer(path, "wb") as handle:
        save(handle)


def free_space(folder: Path) -> int | None:
    """Bytes free to this user on the disk that holds (or will hold) ``folder``; None when
    that cannot be told."""
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if existing is None:
        return None
    try:
        return shutil.disk_usage(existing).free
    except OSError:
        return None


def folder_size(folder: Path) -> int:
    """The bytes of the files under ``folder`` (0 when it is not there)."""
    total = 0
    for path in Path(folder).rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def remove_stray_temp_files(folder: str | Path) -> list[Path]:
    """Delete temp files left by a write that was killed; return what was removed."""
    removed = []
    for candidate in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            candidate.unlink()
            removed.append(candidate)
    return removed


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open directories, which is fine.
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
