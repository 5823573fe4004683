"""Atomic checkpoints: model weights as safetensors, metadata as JSON, trainer state for resume.

A checkpoint is a folder (``checkpoints/last``, ``checkpoints/best``)::

    model.safetensors   weights only, safe to open from anyone
    trainer_state.pt    optimiser/scheduler/scaler/RNG state + counters, loadable with weights_only=True
    meta.json           class names, preprocessing, versions, SHA-256 of the files, "complete": true

The folder is written under a temporary name; meta.json (the completeness marker) goes in last;
then the old folder is renamed aside, the new one renamed into place and the old one removed. A
kill at any moment leaves either a complete old or a complete new checkpoint, which
:func:`recover_checkpoint` restores on the next start.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import platform
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torchvision

from ptm_studio import __version__
from ptm_studio.core.atomic_io import (
    folder_size,
    free_space,
    write_bytes_atomic,
    write_json_atomic,
    write_with_atomic,
)
from ptm_studio.core.checkpoint_files import (
    CHECKPOINT_FORMAT_VERSION as CHECKPOINT_FORMAT_VERSION,
)
from ptm_studio.core.checkpoint_files import META_FILE as META_FILE
from ptm_studio.core.checkpoint_files import MODEL_FILE as MODEL_FILE
from ptm_studio.core.checkpoint_files import TRAINER_STATE_FILE as TRAINER_STATE_FILE
from ptm_studio.core.checkpoint_files import CheckpointError as CheckpointError
from ptm_studio.core.checkpoint_files import (
    CheckpointFromNewerVersion as CheckpointFromNewerVersion,
)
from ptm_studio.core.checkpoint_files import hash_files, sibling
from ptm_studio.core.checkpoint_files import intact_previous as intact_previous
from ptm_studio.core.checkpoint_files import is_complete_checkpoint as is_complete_checkpoint
from ptm_studio.core.checkpoint_files import previous_checkpoint_dir as previous_checkpoint_dir
from ptm_studio.core.checkpoint_files import read_meta as read_meta
from ptm_studio.core.checkpoint_files import recover_checkpoint as recover_checkpoint
from ptm_studio.core.checkpoint_files import (
    resumable_checkpoint_near as resumable_checkpoint_near,
)
from ptm_studio.core.checkpoint_files import use_previous_checkpoint as use_previous_checkpoint
from ptm_studio.core.checkpoint_files import verify_checkpoint as verify_checkpoint
from ptm_studio.core.file_reading import (
    MAX_WEIGHTS_FILE_BYTES,
    check_readable_file,
    open_for_reading,
)

# On top of the bytes a save writes: meta.json, folder entries and the filesystem's rounding
# of every file up to whole blocks. A save never needs more than that on top.
SPACE_MARGIN = 1024 * 1024
# torch.save's cost per tensor besides its data (zip record, pickle, alignment; ~270 measured).
SAVED_BYTES_PER_TENSOR = 1024
SAVED_BYTES_BESIDES_TENSORS = 64 * 1024  # counters, RNG state lists and the like, pickled
LOGGER = logging.getLogger(__name__)


class DamagedCheckpointError(CheckpointError):
    """A checkpoint's files are incomplete or corrupt; ``previous`` is an intact earlier one."""

    def __init__(self, folder: Path, problem: str, previous: Path | None) -> None:
        text = f"{folder}: {problem}."
        if previous is not None:
            meta = read_meta(previous)
            text += (
                f" The checkpoint saved before it (epoch {meta.get('epoch', '?')}, step"
                f" {meta.get('global_step', '?')}) is intact: training can go on from there,"
                " and the damaged one is kept aside, not deleted."
            )
        else:
            text += " No earlier checkpoint of this run is intact; start a new run."
        super().__init__(text)
        self.folder, self.previous = folder, previous


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, read-only folder). ``kept`` is the intact
    checkpoint the run can go on from; the message says only what is true of it.

    Make it with :meth:`because` (or :meth:`from_os_error`), which looks at what is on disk and
    gives :class:`NothingSavedYetError` when the run has nothing to go on from.
    """

    def __init__(
        self,
        folder: Path,
        reason: str,
        *,
        kept: Path | None = None,
        needed_bytes: int | None = None,
        free_bytes: int | None = None,
    ) -> None:
        self.folder, self.reason, self.kept = Path(folder), reason, kept
        self.needed_bytes, self.free_bytes = needed_bytes, free_bytes
        super().__init__(self._describe())

    @classmethod
    def because(
        cls,
        folder: Path,
        reason: str,
        *,
        needed_bytes: int | None = None,
        free_bytes: int | None = None,
    ) -> CheckpointWriteError:
        kept = resumable_checkpoint_near(folder)
        kind = cls if kept is not None else NothingSavedYetError
        return kind(folder, reason, kept=kept, needed_bytes=needed_bytes, free_bytes=free_bytes)

    @classmethod
    def from_os_error(
        cls, folder: Path, error: OSError, *, needed_bytes: int | None = None
    ) -> CheckpointWriteError:
        reasons = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the folder is on a read-only disk",
            errno.EACCES: "PTM Studio may not write there",
            errno.EPERM: "PTM Studio may not write there",
        }
        reason = reasons.get(error.errno or 0, error.strerror or str(error))
        is_space = error.errno in (errno.ENOSPC, errno.EDQUOT)
        free = free_space(folder) if is_space else None
        return cls.because(
            folder, reason, needed_bytes=needed_bytes if is_space else None, free_bytes=free
        )

    def _describe(self) -> str:
        text = f"Could not save a checkpoint in {self.folder}: {self.reason}"
        free, needed = self.free_bytes, self.needed_bytes
        if free is not None:
            text += f" ({_megabytes(free)} free" + (
                f", about {_megabytes(needed)} needed)" if needed is not None else ")"
            )
        if free is None and needed is None:  # read-only, no permission: not a space problem
            fix = "make the folder writable again (or choose another)"
        elif needed is not None and free is not None and needed > free:
            fix = f"free at least {_megabytes(needed - free)} on that disk"
        else:
            fix = "free some space on that disk"
        if self.kept is None:
            return (
                f"{text}. Nothing of this run is saved yet, so there is nothing to resume:"
                f" {fix}, or choose a runs folder on another disk, then start the run again."
            )
        return (
            f"{text}. The checkpoint {self.kept.name!r} {_saved_when(self.kept)} is kept and"
            f" intact: {fix}, then resume the run (Resume in the app, --resume on the command"
            " line) to go on from it."
        )


class NothingSavedYetError(CheckpointWriteError):
    """A checkpoint could not be written and the run has no intact one to go on from: the
    run fails (there is nothing to resume) rather than pausing."""


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count < 10e6 else f"{count / 1e6:.0f} MB"


def _saved_when(folder: Path) -> str:
    try:
        meta = read_meta(folder)
    except CheckpointError:
        return ""
    epochs, step = meta.get("epoch", "?"), meta.get("global_step", "?")
    return (
        f"(step {step}, during the first epoch)"
        if epochs == 0
        else f"(epoch {epochs}, step {step})"
    )


@dataclass(frozen=True)
class LoadedCheckpoint:
    folder: Path
    model_state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    trainer_state: dict[str, Any] | None


@dataclass(frozen=True)
class SerializedWeights:
    """Weights as the bytes of their safetensors file and those bytes' SHA-256, made once for
    every checkpoint of one moment ("last" and "best" after an epoch that improved): turning
    a resnet18 into bytes and hashing them took 70 of the 140 ms a save took."""

    data: bytes
    sha256: str

    @classmethod
    def of(cls, model_state: dict[str, torch.Tensor]) -> SerializedWeights:
        on_cpu = {
            name: tensor.detach().to("cpu").contiguous() for name, tensor in model_state.items()
        }
        # safetensors refuses tensors that share memory (tied weights): those are copied
        # apart, the others written as they are (copying every one was a quarter of the time).
        sharing = Counter(tensor.untyped_storage().data_ptr() for tensor in on_cpu.values())
        plain_state = {
            name: tensor.clone() if sharing[tensor.untyped_storage().data_ptr()] > 1 else tensor
            for name, tensor in on_cpu.items()
        }
        data = safetensors.torch.save(plain_state)
        return cls(data, hashlib.sha256(data).hexdigest())


def save_checkpoint(
    folder: str | Path,
    model_state: dict[str, torch.Tensor] | SerializedWeights,
    meta: dict[str, Any],
    trainer_state: dict[str, Any] | None = None,
    *,
    keep_previous: bool = False,
) -> Path:
    """Write a complete checkpoint to ``folder`` atomically and return ``folder``.

    With ``keep_previous`` the checkpoint it replaces is kept as :func:`previous_checkpoint_dir`,
    so a checkpoint damaged later (a failing disk, a copy cut short) still has a fallback.
    Raises CheckpointWriteError (NothingSavedYetError when the run has no intact checkpoint
    to go on from) and leaves nothing half-written when the disk is full or read-only.
    """
    folder = Path(folder)
    partial = sibling(folder, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    weights = (
        model_state
        if isinstance(model_state, SerializedWeights)
        else SerializedWeights.of(model_state)
    )
    needed = space_needed(len(weights.data), trainer_state)
    try:
        _make_room(folder, needed)
        partial.mkdir(parents=True)
        write_bytes_atomic(partial / MODEL_FILE, weights.data)
        if trainer_state is not None:
            write_with_atomic(
                partial / TRAINER_STATE_FILE, lambda handle: torch.save(trainer_state, handle)
            )
        # The weights' hash is of the bytes just written (not read back: the same bytes).
        files = {**hash_files(partial, skip=(MODEL_FILE,)), MODEL_FILE: weights.sha256}
        full_meta = {**_environment_meta(), **meta, "complete": True, "files": files}
        write_json_atomic(partial / META_FILE, full_meta)
        _swap_into_place(partial, folder, keep_previous)
    except BaseException as error:
        shutil.rmtree(partial, ignore_errors=True)  # never leave half a checkpoint behind
        recover_checkpoint(folder)  # a swap cut short: the old checkpoint back in place
        if isinstance(error, CheckpointWriteError) or not isinstance(error, OSError):
            raise
        raise CheckpointWriteError.from_os_error(folder, error, needed_bytes=needed) from error
    return folder


def space_needed(model_bytes: int, trainer_state: dict[str, Any] | None) -> int:
    """What saving a checkpoint adds on disk at its peak: the new files are written in full
    beside the checkpoint they replace (which stays until the swap), so the peak is the
    existing files plus these bytes and a little for the filesystem."""
    written = model_bytes
    if trainer_state is not None:
        tensor_bytes, tensor_count = _tensor_bytes(trainer_state, set())
        written += (
            tensor_bytes + tensor_count * SAVED_BYTES_PER_TENSOR + SAVED_BYTES_BESIDES_TENSORS
        )
    return written + SPACE_MARGIN


def _tensor_bytes(value: Any, seen: set[tuple[str, int]]) -> tuple[int, int]:
    """The bytes torch.save writes for the tensors in ``value`` (each storage once), and how
    many tensors there are, without writing anything."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        key = (str(value.device), storage.data_ptr())
        if key in seen:
            return 0, 1
        seen.add(key)
        return storage.nbytes(), 1
    items = value.values() if isinstance(value, dict) else value
    if not isinstance(value, dict | list | tuple):
        return 0, 0
    total = count = 0
    for item in items:
        item_bytes, item_count = _tensor_bytes(item, seen)
        total, count = total + item_bytes, count + item_count
    return total, count


def _make_room(folder: Path, needed: int) -> None:
    """Refuse early when the save clearly cannot fit, before anything is written. When only
    fallback copies (``*-previous``, replaced by this save or the next) stand in the way, they
    go first: the checkpoint in ``folder`` itself stays intact until the new one replaces it."""
    free = free_space(folder)
    if free is None or free >= needed:
        return
    fallbacks = sorted(folder.parent.glob("*-previous")) if folder.parent.is_dir() else []
    room = free + sum(folder_size(fallback) for fallback in fallbacks)
    if room < needed:
        raise CheckpointWriteError.because(
            folder, "the disk is nearly full", needed_bytes=needed, free_bytes=free
        )
    for fallback in fallbacks:
        LOGGER.warning("%s is removed to make room for the new checkpoint", fallback)
        shutil.rmtree(fallback, ignore_errors=True)


def load_checkpoint(
    folder: str | Path, *, with_trainer_state: bool = True, repair: bool = True
) -> LoadedCheckpoint:
    """Load a checkpoint after checking it is complete and its files match their recorded hashes.

    With ``repair`` a swap a crash cut short is finished first (see :func:`recover_checkpoint`);
    pass False when another process may be writing this checkpoint right now.
    Raises DamagedCheckpointError (naming an intact previous checkpoint, if any) when it is not.
    """
    folder = recover_checkpoint(folder) if repair else Path(folder)
    try:
        meta = verify_checkpoint(folder)
    except DamagedCheckpointError:
        raise
    except CheckpointError as error:
        previous = intact_previous(folder)
        if isinstance(error, CheckpointFromNewerVersion) or (
            not folder.exists() and previous is None
        ):
            raise
        problem = str(error).removeprefix(f"{folder}: ")
        raise DamagedCheckpointError(folder, problem, previous) from error
    check_readable_file(folder / MODEL_FILE, max_bytes=MAX_WEIGHTS_FILE_BYTES)
    model_state = safetensors.torch.load_file(str(folder / MODEL_FILE), device="cpu")
    trainer_state = None
    state_path = folder / TRAINER_STATE_FILE
    if with_trainer_state and state_path.exists():
        with open_for_reading(state_path, max_bytes=MAX_WEIGHTS_FILE_BYTES) as handle:
            trainer_state = torch.load(handle, map_location="cpu", weights_only=True)
    return LoadedCheckpoint(folder, model_state, meta, trainer_state)


def _swap_into_place(partial: Path, folder: Path, keep_previous: bool = False) -> None:
    old = sibling(folder, "old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    if keep_previous and old.exists():
        previous = previous_checkpoint_dir(folder)
        shutil.rmtree(previous, ignore_errors=True)
        old.rename(previous)
    shutil.rmtree(old, ignore_errors=True)


def _environment_meta() -> dict[str, Any]:
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "app_version": __version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "python_version": platform.python_version(),
        "saved_at": datetime.now().isoformat(timespec="seconds"),
    }


def capture_rng_state() -> dict[str, Any]:
    """RNG state as tensors and plain ints, so it loads with ``weights_only=True``."""
    version, internal_state, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(internal_state), gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal_state, gauss = state["python"]
    random.setstate((version, tuple(internal_state), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):  # a different number of GPUs than when saved
            torch.cuda.set_rng_state_all(state["cuda"])
