"""The models a run folder holds: which checkpoint predictions and later runs use, the saved
models a user picks from ("Best (epoch 7, 81 %)"), and where a resume would go on from. Read from
the checkpoints' meta.json; the weights are verified when one is loaded."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ptm_studio.core.checkpoint_files import (  # no torch: the window lists models early
    META_FILE,
    MODEL_FILE,
    CheckpointError,
    recover_checkpoint,
    verify_checkpoint,
)
from ptm_studio.core.file_reading import read_text
from ptm_studio.core.runs import RunDirectory, is_being_trained, whole_number

LOGGER = logging.getLogger(__name__)


class NoSavedModel(CheckpointError):
    """A run folder holds no checkpoint with a model (yet)."""


class UnusableCheckpoints(CheckpointError):
    """Every checkpoint of a run that could hold its model is damaged; ``problems`` says how."""

    def __init__(self, problems: list[CheckpointError]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def model_checkpoint(run_path: str | Path) -> Path:
    """The checkpoint of a run whose model predictions and later runs use: ``best`` when it is
    complete, else ``last`` (pretraining keeps only ``last``).

    A checkpoint swap a crash cut short is finished first, unless another window is training
    the run right now (its half-written folders are work in progress, not debris).

    Raises:
        NoSavedModel: the run has no checkpoint yet.
        UnusableCheckpoints: its checkpoints are incomplete or damaged (each problem named).
    """
    run = RunDirectory(run_path)
    may_repair = not is_being_trained(run.path)
    problems: list[CheckpointError] = []
    for folder in (run.best_checkpoint_dir, run.last_checkpoint_dir):
        if may_repair:
            recover_checkpoint(folder)
        if not (folder / MODEL_FILE).exists() and not (folder / META_FILE).exists():
            continue
        try:
            verify_checkpoint(folder)
        except CheckpointError as problem:
            LOGGER.warning("%s cannot be used: %s", folder, problem)
            problems.append(problem)
            continue
        return folder
    if problems:
        raise UnusableCheckpoints(problems)
    raise NoSavedModel(f"{run.path}: no saved model was found in this run folder")


@dataclass(frozen=True)
class SavedModel:
    """A checkpoint of a run that holds a model, as a user picks one: "Best (epoch 7, 81 %)"."""

    folder: Path
    kind: str  # "best" or "last"
    epoch: int
    val_accuracy: float | None

    def describe(self) -> str:
        accuracy = f", {100 * self.val_accuracy:.0f} %" if self.val_accuracy is not None else ""
        return f"{self.kind.capitalize()} (epoch {self.epoch}{accuracy})"


def saved_models(run_path: str | Path) -> list[SavedModel]:
    """The run's complete checkpoints, best first, from their meta.json alone (cheap enough to
    fill a menu; the weights are verified when one is loaded)."""
    run = RunDirectory(run_path)
    found = []
    for kind, folder in (("best", run.best_checkpoint_dir), ("last", run.last_checkpoint_dir)):
        meta = _read_complete_meta(folder)
        if meta is None:
            continue
        accuracy = meta.get("val_accuracy")
        found.append(
            SavedModel(
                folder=folder,
                kind=kind,
                epoch=whole_number(meta.get("epoch", 0)) or 0,
                val_accuracy=float(accuracy)
                if isinstance(accuracy, int | float)
                and not isinstance(accuracy, bool)
                and math.isfinite(accuracy)
                else None,
            )
        )
    return found


def _read_complete_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads(read_text(folder / "meta.json"))
    except (OSError, ValueError):  # missing, a folder, not UTF-8, not JSON
        return None
    return meta if isinstance(meta, dict) and meta.get("complete") else None


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: what its last checkpoint's meta.json records."""

    epochs_completed: int
    global_step: int
    saved_at: datetime | None


def read_resume_point(run_path: str | Path) -> ResumePoint | None:
    """The counters of ``checkpoints/last`` (read-only, no torch; None when there is none).

    When last's meta.json is unreadable, those of the save before it (``last-previous``), which
    a resume is then offered to go on from. It does not verify the checkpoint's files:
    :func:`find_interrupted_runs` and the loader do.
    """
    last = RunDirectory(run_path).last_checkpoint_dir
    for folder in (last, last.with_name(f"{last.name}-previous")):
        meta = _read_complete_meta(folder)
        if meta is not None:
            break
    else:
        return None
    try:
        saved_at: datetime | None = datetime.fromisoformat(str(meta.get("saved_at", "")))
    except ValueError:
        saved_at = None
    epochs, step = whole_number(meta.get("epoch", 0)), whole_number(meta.get("global_step", 0))
    if epochs is None or step is None or epochs < 0 or step < 0:
        return None  # damaged counters: nothing a resume could go on from
    return ResumePoint(epochs_completed=epochs, global_step=step, saved_at=saved_at)
