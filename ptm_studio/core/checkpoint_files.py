"""Reading and checking checkpoint folders: which files they hold, whether those are complete
and match the hashes meta.json recorded, and finishing a swap a crash cut short. Loading and
saving the tensors is :mod:`ptm_studio.core.checkpoints`; this part needs no torch."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from ptm_studio.core.file_reading import MAX_WEIGHTS_FILE_BYTES, open_for_reading, read_text

MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
TRAINER_STATE_FILE = "trainer_state.pt"
CHECKPOINT_FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is missing, incomplete or damaged; the message names the folder."""


class CheckpointFromNewerVersion(CheckpointError):
    """A checkpoint written by a newer PTM Studio: intact, but this version cannot open it."""


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    try:
        meta = json.loads(read_text(folder / META_FILE))
    except FileNotFoundError as error:
        raise CheckpointError(f"{folder}: no checkpoint here (meta.json is missing)") from error
    except (OSError, ValueError) as error:  # not JSON, not text, a pipe, far too large
        raise CheckpointError(
            f"{folder}: the checkpoint is incomplete or corrupt (meta.json cannot be read)"
        ) from error
    version = meta.get("format_version", 0) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not meta.get("complete") or not isinstance(version, int):
        raise CheckpointError(f"{folder}: the checkpoint is incomplete or corrupt")
    if version > CHECKPOINT_FORMAT_VERSION:
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
    old, partial = sibling(folder, "old"), sibling(folder, "partial")
    if not folder.exists() and old.exists() and is_complete_checkpoint(old):
        old.rename(folder)
    elif not folder.exists() and partial.exists() and is_complete_checkpoint(partial):
        partial.rename(folder)  # a copy put in place by use_previous_checkpoint, cut short
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    return folder


def sibling(folder: Path, role: str) -> Path:
    return folder.parent / f".{folder.name}.{role}"


def hash_files(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """The SHA-256 of each file in ``folder`` but meta.json (which lists them) and ``skip``."""
    left_out = {META_FILE, *skip}
    return {
        path.name: sha256_of(path) for path in sorted(folder.iterdir()) if path.name not in left_out
    }


def _verify_hashes(folder: Path, meta: dict[str, Any]) -> None:
    recorded = meta.get("files", {})
    if not isinstance(recorded, dict) or MODEL_FILE not in recorded:
        raise CheckpointError(f"{folder}: the checkpoint lists no model file")
    for name, expected in recorded.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{folder}: the checkpoint is incomplete or corrupt")
        path = folder / name
        if not path.exists():
            raise CheckpointError(f"{folder}: {name} is missing")
        try:
            digest = sha256_of(path)
        except OSError as error:  # a folder, a pipe, far too large, unreadable
            raise CheckpointError(
                f"{folder}: {name} cannot be read ({error.strerror or error})"
            ) from error
        if digest != expected:
            raise CheckpointError(
                f"{folder}: {name} is incomplete or corrupt (it does not match its checksum)"
            )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open_for_reading(path, max_bytes=MAX_WEIGHTS_FILE_BYTES) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resumable_checkpoint_near(folder: Path) -> Path | None:
    """The intact checkpoint with trainer state a run can go on from: ``folder`` itself, else
    one beside it (a run's "last" when its "best" could not be written). Fallback copies
    (``*-previous``) and damaged ones set aside do not count: a run does not resume from them
    by itself."""
    folder = Path(folder)
    try:
        siblings = sorted(
            path
            for path in folder.parent.iterdir()
            if path != folder and not path.name.startswith(".") and "-" not in path.name
        )
    except OSError:
        siblings = []
    for candidate in (folder, *siblings):
        if (candidate / TRAINER_STATE_FILE).is_file() and is_complete_checkpoint(candidate):
            return candidate
    return None


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
    partial = sibling(folder, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(previous, partial)
    if folder.exists():
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        folder.rename(folder.with_name(f"{folder.name}-damaged-{stamp}"))
    partial.rename(folder)
    return folder
