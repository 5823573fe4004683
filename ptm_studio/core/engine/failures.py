"""How a run fails: a guard against a diverging loss, and messages a user can act on."""

from __future__ import annotations

import math
from pathlib import Path

from ptm_studio.core.config import ConfigError
from ptm_studio.core.data import DatasetError, ImageLoadError
from ptm_studio.core.engine.checkpoints import CheckpointError
from ptm_studio.core.engine.loops import TrainingDiverged
from ptm_studio.core.models import ModelError, WeightsError

MAX_NON_FINITE_STEPS_IN_A_ROW = 5

# Errors whose text was written for the user; anything else is reported as unexpected.
USER_FACING_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    DatasetError,
    ImageLoadError,
    ModelError,
    WeightsError,
    CheckpointError,
    TrainingDiverged,
    NotImplementedError,
    OSError,
)


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
    raise DatasetError(
        f"The classes in {data_dir} are not the ones this run was trained on"
        f" ({'; '.join(changes)}).",
        advice="Put the folder back as it was to resume, or start a new run"
        " (it can start from this run's weights).",
    )


def plain_message(error: BaseException) -> str:
    """Errors written for users speak for themselves; anything else is named as unexpected."""
    text = str(error) or type(error).__name__
    if isinstance(error, USER_FACING_ERRORS):
        return text
    return f"Unexpected error ({type(error).__name__}): {text}"
