"""How a run fails: a guard against a diverging loss, messages a user can act on, and the
structured :class:`Ending` every failure is reported with."""

from __future__ import annotations

import math
from pathlib import Path

from ptm_studio.core.checkpoints import (
    CheckpointError,
    CheckpointWriteError,
    DamagedCheckpointError,
    NothingSavedYetError,
)
from ptm_studio.core.config import ConfigError
from ptm_studio.core.data import DatasetError, ImageLoadError
from ptm_studio.core.data.skipping import DatasetVanished
from ptm_studio.core.engine.events import Ending
from ptm_studio.core.engine.loops import TrainingDiverged
from ptm_studio.core.engine.memory import OutOfMemoryError
from ptm_studio.core.models import ModelError, WeightsError

MAX_NON_FINITE_STEPS_IN_A_ROW = 5


class DataChangedError(DatasetError):
    """A resumed run's picture folder no longer holds the classes the run was trained on."""


# Checked in order: the first matching class gives the ending (subclasses before their bases).
_ENDINGS: tuple[tuple[type[BaseException], Ending], ...] = (
    (ConfigError, Ending.INVALID_SETTINGS),
    (DataChangedError, Ending.DATA_CHANGED),
    (DatasetVanished, Ending.PAUSED_DATA_MISSING),
    (DatasetError, Ending.DATA_UNUSABLE),
    (ImageLoadError, Ending.DATA_UNUSABLE),
    (WeightsError, Ending.WEIGHTS_UNUSABLE),
    (ModelError, Ending.WEIGHTS_UNUSABLE),
    # A save that failed with nothing to go on from cannot pause: there is nothing to resume.
    (NothingSavedYetError, Ending.FILE_ERROR),
    (CheckpointWriteError, Ending.PAUSED_DISK),
    (DamagedCheckpointError, Ending.CHECKPOINT_DAMAGED),
    (CheckpointError, Ending.CHECKPOINT_UNUSABLE),
    (TrainingDiverged, Ending.DIVERGED),
    (OutOfMemoryError, Ending.OUT_OF_MEMORY),
    (OSError, Ending.FILE_ERROR),
)
# Errors whose text was written for the user; anything else is reported as unexpected.
_WRITTEN_FOR_USERS = (*(error_type for error_type, _ in _ENDINGS), NotImplementedError)


def ending_for(error: BaseException) -> Ending:
    """The ending a run that raised ``error`` is reported with."""
    for error_type, ending in _ENDINGS:
        if isinstance(error, error_type):
            return ending
    return Ending.UNEXPECTED


def previous_checkpoint_of(error: BaseException) -> Path | None:
    """The intact earlier save a damaged checkpoint can be replaced by, if any."""
    return error.previous if isinstance(error, DamagedCheckpointError) else None


def plain_message(error: BaseException) -> str:
    """Errors written for users speak for themselves; anything else is named as unexpected."""
    text = str(error) or type(error).__name__
    if isinstance(error, _WRITTEN_FOR_USERS):
        return text
    return f"Unexpected error ({type(error).__name__}): {text}"


class DivergenceGuard:
    """Stops a run whose loss is NaN or infinite several steps in a row (one bad batch is skipped)."""

    def __init__(self, limit: int = MAX_NON_FINITE_STEPS_IN_A_ROW) -> None:
        self.limit = limit
        self.in_a_row = 0

    def check(self, loss: float, global_step: int) -> None:
        if math.isfinite(loss):
            self.in_a_row = 0
            return
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise TrainingDiverged(
                f"The loss diverged at step {global_step} (it became NaN or infinite"
                f" {self.in_a_row} steps in a row). Try a lower learning rate."
            )


def check_same_classes(trained_on: tuple[str, ...], found: tuple[str, ...], data_dir: Path) -> None:
    """Resuming needs the classes the run started with: the model's outputs are tied to them."""
    if trained_on == found:
        return
    missing = [name for name in trained_on if name not in found]
    added = [name for name in found if name not in trained_on]
    changes = []
    if missing:
        changes.append("missing now: " + ", ".join(missing))
    if added:
        changes.append("new: " + ", ".join(added))
    if not changes:
        changes.append("the same names in another order")
    raise DataChangedError(
        f"The classes in {data_dir} are not the ones this run was trained on"
        f" ({'; '.join(changes)}).",
        advice="Put the folder back as it was to resume, or start a new run"
        " (it can start from this run's weights).",
    )
