"""Pictures decoded once: after a picture's first use its prepared pixels are kept, so later
epochs skip opening, decoding and shrinking the file again.

What is kept is ``PictureTransform.prepare``'s result (a uint8 tensor no larger than the random
changes need), so a kept picture goes through exactly the same random changes as a fresh one
and the run trains on the same pixels either way. Where it is kept is decided once per run by a
memory budget (``plan_picture_store``): in memory when every picture fits in a share of the
memory free now; else in one scratch file in the user's cache folder (deleted when the run
ends, even when the process is killed: it is unlinked while open on POSIX) when that fits in a
share of the free disk; else as many as fit in memory, the rest read from their files every
epoch as before.

The reliability guarantees stay: before a kept picture is used its file is looked at again
(``os.stat``: a few microseconds), and a file that changed (size, modification time or identity)
is decoded again; one that vanished is decoded again too, which raises the same ImageLoadError
as without the cache, so it is skipped or marked exactly as before. A failed write (a full
disk) stops storing and loses nothing: the picture is returned as decoded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil
import torch

from ptm_studio.core.file_reading import describe_size

LOGGER = logging.getLogger(__name__)

MEMORY_SHARE = 0.25  # of the memory free when the run starts
MAX_MEMORY_BYTES = 6 * 2**30
DISK_SHARE = 0.5  # of the free space in the cache folder
MAX_DISK_BYTES = 64 * 2**30

Fingerprint = tuple[int, int, int]  # size in bytes, modification time (ns), file identity


def fingerprint(path: str | Path) -> Fingerprint | None:
    """What says a file is still the one that was decoded; None when it cannot be looked at."""
    try:
        facts = os.stat(path)
    except (OSError, ValueError):
        return None
    return facts.st_size, facts.st_mtime_ns, facts.st_ino


@dataclass(frozen=True)
class _InFile:
    offset: int
    shape: tuple[int, ...]


class PictureStore:
    """Where prepared pictures are kept: in memory, or in one scratch file in ``folder``;
    at most ``budget_bytes`` in all (a picture that would go over is not kept)."""

    def __init__(self, budget_bytes: int, folder: Path | None = None) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self.folder = folder
        self.used_bytes = 0
        self._file: IO[bytes] | None = None

    @property
    def in_file(self) -> bool:
        return self.folder is not None

    def put(self, picture: torch.Tensor) -> torch.Tensor | _InFile | None:
        """A handle for ``picture`` (uint8), or None when it was not kept."""
        size = picture.numel() * picture.element_size()
        if self.used_bytes + size > self.budget_bytes:
            return None
        if self.folder is None:
            self.used_bytes += size
            return picture
        try:
            scratch = self._scratch_file()
            offset = scratch.seek(0, os.SEEK_END)
            scratch.write(picture.contiguous().numpy().tobytes())
        except OSError as error:  # a full disk, a cache folder gone: keep what is kept
            LOGGER.warning("decoded pictures are no longer kept in %s: %s", self.folder, error)
            self.budget_bytes = self.used_bytes
            return None
        self.used_bytes += size
        return _InFile(offset, tuple(picture.shape))

    def get(self, handle: torch.Tensor | _InFile) -> torch.Tensor | None:
        """The kept picture, or None when it cannot be read back (it is then decoded again)."""
        if isinstance(handle, torch.Tensor):
            return handle
        size = 1
        for side in handle.shape:
            size *= side
        try:
            assert self._file is not None
            self._file.seek(handle.offset)
            data = bytearray(self._file.read(size))  # writable: torch shares it, never copies
            if len(data) != size:
                return None
        except OSError as error:
            LOGGER.warning(
                "a decoded picture could not be read back from %s: %s", self.folder, error
            )
            return None
        return torch.frombuffer(data, dtype=torch.uint8).reshape(handle.shape)

    def release(self, handle: torch.Tensor | _InFile) -> None:
        """Forget a picture (its file changed). Space in the scratch file is not reused."""
        if isinstance(handle, torch.Tensor):
            self.used_bytes -= handle.numel() * handle.element_size()

    def close(self) -> None:
        self.budget_bytes = self.used_bytes = 0
        if self._file is not None:
            self._file.close()
            self._file = None

    def _scratch_file(self) -> IO[bytes]:
        if self._file is None:
            assert self.folder is not None
            self.folder.mkdir(parents=True, exist_ok=True)
            # TemporaryFile: no name on POSIX (unlinked at once), deleted on close on Windows.
            scratch = tempfile.TemporaryFile(  # noqa: SIM115 (lives as long as the store)
                prefix="ptm-studio-decoded-", dir=self.folder
            )
            self._file = scratch
            # Parts built for a learning-rate test or an evaluation are dropped without an end
            # of run: the file goes (and its space is given back) with the store.
            weakref.finalize(self, self._file.close)
        return self._file


class DecodedPictures:
    """One dataset's kept pictures, by position, each with its file's fingerprint."""

    def __init__(self, store: PictureStore) -> None:
        self.store = store
        self._kept: dict[int, tuple[Fingerprint, torch.Tensor | _InFile]] = {}
        self.reused = 0  # pictures served from the store, for tests and the benchmark

    def __len__(self) -> int:
        return len(self._kept)

    def forget(self) -> None:
        """Let go of every kept picture (the memory, or the scratch file, is given back) and
        keep none from now on."""
        self._kept.clear()
        self.store.close()
        self.store = PictureStore(0)

    def prepared(
        self, position: int, path: str | Path, decode: Callable[[], torch.Tensor]
    ) -> torch.Tensor:
        """The prepared picture at ``position``: kept, or ``decode()``d (and kept if it fits).

        ``decode`` raises ImageLoadError for a file that is gone or broken, as without a cache.
        The fingerprint is read before decoding: a file changed meanwhile is decoded again next
        time rather than trusted.
        """
        now = fingerprint(path)
        entry = self._kept.get(position)
        if entry is not None:
            kept_fingerprint, handle = entry
            if now is not None and now == kept_fingerprint:
                picture = self.store.get(handle)
                if picture is not None:
                    self.reused += 1
                    return picture
            del self._kept[position]
            self.store.release(handle)
        picture = decode()
        if now is not None:
            new_handle = self.store.put(picture)
            if new_handle is not None:
                self._kept[position] = (now, new_handle)
        return picture


@dataclass(frozen=True)
class StorePlan:
    """Where a run keeps its decoded pictures, and what to tell the user when not all fit."""

    store: PictureStore
    expected_bytes: int
    note: str | None  # for the user, only when some pictures will be read every epoch


def plan_picture_store(
    expected_bytes: int,
    cache_folder: Path | None,
    *,
    free_memory: int | None = None,
    free_disk: int | None = None,
) -> StorePlan:
    """Memory if everything fits there, else the cache folder's disk, else memory for as many
    as fit. ``free_memory``/``free_disk`` default to what the computer has now (tests set them)."""
    if free_memory is None:
        free_memory = int(psutil.virtual_memory().available)
    memory_budget = min(MAX_MEMORY_BYTES, int(MEMORY_SHARE * free_memory))
    if expected_bytes <= memory_budget:
        return StorePlan(PictureStore(memory_budget), expected_bytes, None)
    if cache_folder is not None:
        if free_disk is None:
            free_disk = _free_disk(cache_folder)
        disk_budget = min(MAX_DISK_BYTES, int(DISK_SHARE * free_disk))
        if expected_bytes <= disk_budget:
            LOGGER.info(
                "decoded pictures (about %s) are kept in a scratch file in %s",
                describe_size(expected_bytes),
                cache_folder,
            )
            return StorePlan(PictureStore(disk_budget, cache_folder), expected_bytes, None)
    share = memory_budget / expected_bytes if expected_bytes else 1.0
    where = f" or in {cache_folder}" if cache_folder is not None else ""
    note = (
        f"The decoded pictures (about {describe_size(expected_bytes)}) fit neither in memory"
        f"{where}: about {share:.0%} of them are kept decoded after the first epoch, the others"
        " are read from their files every epoch (slower, nothing else changes)."
    )
    return StorePlan(PictureStore(memory_budget), expected_bytes, note)


def _free_disk(folder: Path) -> int:
    """Free bytes where ``folder`` is (or would be made); 0 when that cannot be found out."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free)
    except OSError:
        return 0
