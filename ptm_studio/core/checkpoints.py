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
import json
import platform
import random
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torchvision

from ptm_studio import __version__
from ptm_studio.core.atomic_io import write_bytes_atomic, write_json_atomic, write_with_atomic

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
TRAINER_STATE_FILE = "trainer_state.pt"
CHECKPOINT_FORMAT_VERSION = 1
FREE_SPACE_MARGIN = 50 * 1024 * 1024


class CheckpointError(Exception):
    """A checkpoint is missing, incomplete or damaged; the message names the folder."""


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


class CheckpointFromNewerVersion(CheckpointError):
    """A checkpoint written by a newer PTM Studio: intact, but this version cannot open it."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (disk full, read-only folder); the previous one is kept."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(
            f"Could not save a checkpoint in {folder}: {reason}. The previous checkpoint is kept; "
            "free some space (or choose a writable folder), then press Resume."
        )
        self.folder = folder

    @classmethod
    def from_os_error(cls, folder: Path, error: OSError) -> CheckpointWriteError:
        reasons = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the folder is on a read-only disk",
            errno.EACCES: "PTM Studio may not write there",
            errno.EPERM: "PTM Studio may not write there",
        }
        return cls(folder, reasons.get(error.errno or 0, error.strerror or str(error)))


@dataclass(frozen=True)
class LoadedCheckpoint:
    folder: Path
    model_state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    trainer_state: dict[str, Any] | None


def save_checkpoint(
    folder: str | Path,
    model_state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    trainer_state: dict[str, Any] | None = None,
    *,
    keep_previous: bool = False,
) -> Path:
    """Write a complete checkpoint to ``folder`` atomically and return ``folder``.

    With ``keep_previous`` the checkpoint it replaces is kept as :func:`previous_checkpoint_dir`,
    so a checkpoint damaged later (a failing disk, a copy cut short) still has a fallback.
    """
    folder = Path(folder)
    partial = _sibling(folder, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    plain_state = {
        name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in model_state.items()
    }
    model_bytes = safetensors.torch.save(plain_state)
    # Adam's state is about twice the weights: refuse early when that clearly will not fit.
    _check_free_space(folder, needed=3 * len(model_bytes) + FREE_SPACE_MARGIN)
    try:
        partial.mkdir(parents=True)
        write_bytes_atomic(partial / MODEL_FILE, model_bytes)
        if trainer_state is not None:
            write_with_atomic(
                partial / TRAINER_STATE_FILE, lambda handle: torch.save(trainer_state, handle)
            )
        files = _hash_files(partial)
        full_meta = {**_environment_meta(), **meta, "complete": True, "files": files}
        write_json_atomic(partial / META_FILE, full_meta)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)  # never leave half a checkpoint behind
        raise CheckpointWriteError.from_os_error(folder, error) from error
    _swap_into_place(partial, folder, keep_previous)
    return folder


def _check_free_space(folder: Path, needed: int) -> None:
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if existing is None:
        return
    free = shutil.disk_usage(existing).free
    if free < needed:
        reason = f"the disk is nearly full ({free / 1e6:.0f} MB free, about {needed / 1e6:.0f} MB needed)"
        raise CheckpointWriteError(folder, reason)


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
    model_state = safetensors.torch.load_file(str(folder / MODEL_FILE), device="cpu")
    trainer_state = None
    state_path = folder / TRAINER_STATE_FILE
    if with_trainer_state and state_path.exists():
        with open(state_path, "rb") as handle:
            trainer_state = torch.load(handle, map_location="cpu", weights_only=True)
    return LoadedCheckpoint(folder, model_state, meta, trainer_state)


def previous_checkpoint_dir(folder: str | Path) -> Path:
    """Where ``save_checkpoint(keep_previous=True)`` keeps the checkpoint it replaced."""
    folder = Path(folder)
    return folder.with_name(f"{folder.name}-previous")


def intact_previous(folder: str | Path) -> Path | None:
    previous = previous_checkpoint_dir(folder)
    return previous if is_complete_checkpoint(previous) else None


def use_previous_checkpoint(folder: str | Path) -> Path:
    """Put the intact previous checkpoint in place of a damaged ``folder``.

    The damaged folder is renamed aside (``last-damaged-<time>``), never deleted: nothing is lost.
    """
    folder = Path(folder)
    previous = intact_previous(folder)
    if previous is None:
        raise CheckpointError(f"{folder}: there is no intact previous checkpoint to use")
    partial = _sibling(folder, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(previous, partial)
    if folder.exists():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        folder.rename(folder.with_name(f"{folder.name}-damaged-{stamp}"))
    partial.rename(folder)
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise CheckpointError(f"{folder}: no checkpoint here (meta.json is missing)") from error
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{folder}: the checkpoint is incomplete or corrupt (meta.json cannot be read)"
        ) from error
    if not meta.get("complete"):
        raise CheckpointError(f"{folder}: the checkpoint is incomplete or corrupt")
    if int(meta.get("format_version", 0)) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointFromNewerVersion(
            f"{folder}: made with a newer PTM Studio; please update the app to open it"
        )
    return dict(meta)


def verify_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The checkpoint's meta.json after checking it is complete and its files match their
    recorded hashes; CheckpointError naming what is wrong otherwise."""
    meta = read_meta(folder)
    _verify_hashes(Path(folder), meta)
    return meta


def is_complete_checkpoint(folder: str | Path) -> bool:
    try:
        verify_checkpoint(folder)
    except CheckpointError:
        return False
    return True


def recover_checkpoint(folder: str | Path) -> Path:
    """Finish or undo a swap cut short by a crash, and remove half-written folders."""
    folder = Path(folder)
    old, partial = _sibling(folder, "old"), _sibling(folder, "partial")
    if not folder.exists() and old.exists() and is_complete_checkpoint(old):
        old.rename(folder)
    elif not folder.exists() and partial.exists() and is_complete_checkpoint(partial):
        partial.rename(folder)  # a copy put in place by use_previous_checkpoint, cut short
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def _swap_into_place(partial: Path, folder: Path, keep_previous: bool = False) -> None:
    old = _sibling(folder, "old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    if keep_previous and old.exists():
        previous = previous_checkpoint_dir(folder)
        shutil.rmtree(previous, ignore_errors=True)
        old.rename(previous)
    shutil.rmtree(old, ignore_errors=True)


def _sibling(folder: Path, role: str) -> Path:
    return folder.parent / f".{folder.name}.{role}"


def _hash_files(folder: Path) -> dict[str, str]:
    return {path.name: _sha256(path) for path in sorted(folder.iterdir()) if path.name != META_FILE}


def _verify_hashes(folder: Path, meta: dict[str, Any]) -> None:
    recorded = meta.get("files", {})
    if MODEL_FILE not in recorded:
        raise CheckpointError(f"{folder}: the checkpoint lists no model file")
    for name, expected in recorded.items():
        path = folder / name
        if not path.exists():
            raise CheckpointError(f"{folder}: {name} is missing")
        if _sha256(path) != expected:
            raise CheckpointError(
                f"{folder}: {name} is incomplete or corrupt (it does not match its checksum)"
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
