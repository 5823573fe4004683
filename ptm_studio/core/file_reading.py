"""Opening a file someone gave us: only regular files, only up to a size, checked while reading.

Every file PTM Studio reads that a person (or another program) could have put there goes through
``open_for_reading``: pictures, weights, config files, a run's JSON and CSV files. A FIFO named
``x.jpg`` would block ``open()`` forever, a device file never ends, a file can grow while it is
read; so the file is opened without blocking, checked through the descriptor that was opened
(not the name, which could be swapped in between), and reading past the size limit raises.

The errors are ``OSError`` subclasses with a plain ``strerror``, so code that already turns
``OSError`` into a message ("could not be read (…)") says why without knowing about them.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

MEGABYTE = 1024 * 1024
GIGABYTE = 1024 * MEGABYTE
# Limits on what is read: generous for real files, finite for hostile ones.
MAX_SETTINGS_FILE_BYTES = 16 * MEGABYTE  # config.json, run.json, meta.json, calibration.json
MAX_LIST_FILE_BYTES = 512 * MEGABYTE  # metrics.jsonl, validation.csv, predictions.csv
MAX_PICTURE_FILE_BYTES = 2 * GIGABYTE
MAX_WEIGHTS_FILE_BYTES = 16 * GIGABYTE

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
# Opening a FIFO for reading blocks until a writer appears; without blocking it returns at once.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)


class NotARegularFile(OSError):
    """A pipe, socket or device where a file was expected."""


class FileTooLarge(OSError):
    """A file larger than what PTM Studio reads for its purpose (checked before and while reading)."""


def open_for_reading(path: str | Path, *, max_bytes: int) -> BinaryIO:
    """Open ``path`` for binary reading, or raise an OSError that says why it cannot be used.

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: as ``open`` would.
        NotARegularFile: a FIFO, socket or device.
        FileTooLarge: larger than ``max_bytes`` now, or grows beyond it while being read.
    """
    name = os.fspath(path)
    descriptor = os.open(name, _OPEN_FLAGS | _NO_WAIT)
    try:
        _check_descriptor(descriptor, name, max_bytes)
        if _NO_WAIT:
            os.set_blocking(descriptor, True)
        raw = _BoundedFileIO(descriptor, max_bytes=max_bytes, name=name)
    except BaseException:
        os.close(descriptor)
        raise
    return io.BufferedReader(raw)


def check_readable_file(path: str | Path, *, max_bytes: int) -> int:
    """Check that ``path`` is a regular file no larger than ``max_bytes``; return its size. For
    libraries that open the file by name themselves (safetensors)."""
    with open_for_reading(path, max_bytes=max_bytes) as handle:
        return os.fstat(handle.fileno()).st_size


def read_bytes(path: str | Path, *, max_bytes: int) -> bytes:
    with open_for_reading(path, max_bytes=max_bytes) as handle:
        return handle.read()


def read_text(path: str | Path, *, max_bytes: int = MAX_SETTINGS_FILE_BYTES) -> str:
    """The file as UTF-8 text; bytes that are not UTF-8 raise ``UnreadableText`` (a ValueError
    that says where)."""
    data = read_bytes(path, max_bytes=max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UnreadableText(Path(path), error) from None


class UnreadableText(ValueError):
    """A text file whose bytes are not UTF-8 (saved in another encoding, or not text at all)."""

    def __init__(self, path: Path, error: UnicodeDecodeError) -> None:
        self.path = path
        self.reason = (
            f"it is not UTF-8 text (byte 0x{error.object[error.start]:02x} at position "
            f"{error.start}): save it again as UTF-8, or choose the right file"
        )
        super().__init__(f"{path}: {self.reason}")


def describe_size(size: int) -> str:
    if size >= GIGABYTE:
        return f"{size / GIGABYTE:.1f} GB"
    if size >= MEGABYTE:
        return f"{size / MEGABYTE:.1f} MB"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


def _check_descriptor(descriptor: int, name: str, max_bytes: int) -> None:
    info = os.fstat(descriptor)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "this is a folder, not a file", name)
    if not stat.S_ISREG(info.st_mode):
        raise NotARegularFile(errno.EINVAL, f"{_kind_of(info.st_mode)}, not a file", name)
    if info.st_size > max_bytes:
        raise FileTooLarge(
            errno.EFBIG,
            f"it is {describe_size(info.st_size)}, more than the {describe_size(max_bytes)} "
            "PTM Studio reads for this",
            name,
        )


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "this is a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "this is a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "this is a device"
    return "this is not an ordinary file"


class _BoundedFileIO(io.FileIO):
    """A file that raises FileTooLarge instead of reading past ``max_bytes`` (it grew meanwhile)."""

    def __init__(self, descriptor: int, *, max_bytes: int, name: str) -> None:
        super().__init__(descriptor, "rb", closefd=True)
        self.name = name  # what open() would report (the descriptor's number says nothing)
        self._max_bytes = max_bytes
        self._display_name = name

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = super().readinto(buffer) or 0
        if count and self.tell() > self._max_bytes:
            raise FileTooLarge(
                errno.EFBIG,
                f"it grew beyond {describe_size(self._max_bytes)} while it was read",
                self._display_name,
            )
        return count

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        count = self.readinto(buffer)
        return bytes(buffer[:count])

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(MEGABYTE):
            chunks.append(chunk)
        return b"".join(chunks)
