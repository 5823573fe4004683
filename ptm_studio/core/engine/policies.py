"""A run's standing rules, as callbacks made from its settings: stop when it no longer improves,
save a checkpoint every few steps or minutes, check on the validation pictures mid-epoch.

They act only through the TrainingControl, like any callback a user of the engine writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    TrainingStarted,
)


class EarlyStopping(Callback):
    """Ends the run after ``patience`` epochs without a better validation score (0 = never).

    The count comes with each EpochFinished (it is saved with checkpoints), so a resumed run
    stops exactly where the uninterrupted one would have.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        if self.patience > 0 and event.epochs_without_improvement >= self.patience:
            control.request_stop(
                f"no better validation score for {event.epochs_without_improvement} epochs"
            )


def _is_last_batch(event: BatchFinished) -> bool:
    return event.batch_index + 1 >= event.num_batches  # the epoch's end saves and checks anyway


class PeriodicCheckpoints(Callback):
    """Asks for a checkpoint every ``every_steps`` steps or when ``every_minutes`` passed since
    the last one (0 turns either off), so a crash in a long epoch loses little work."""

    def __init__(
        self,
        every_steps: int,
        every_minutes: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_steps, self.every_minutes, self.clock = every_steps, every_minutes, clock
        self._last_saved = clock()

    def on_training_started(self, event: TrainingStarted, control: TrainingControl) -> None:
        self._last_saved = self.clock()

    def on_checkpoint_saved(self, event: CheckpointSaved, control: TrainingControl) -> None:
        self._last_saved = self.clock()

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        if _is_last_batch(event):
            return
        if self.every_steps and event.global_step % self.every_steps == 0:
            control.request_save()
            return
        minutes = (self.clock() - self._last_saved) / 60
        if 0 < self.every_minutes <= minutes:
            control.request_save()


class PeriodicEvaluation(Callback):
    """Asks for a validation pass every ``every_steps`` steps within an epoch (0 = off)."""

    def __init__(self, every_steps: int) -> None:
        self.every_steps = every_steps

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        is_due = self.every_steps and event.global_step % self.every_steps == 0
        if is_due and not _is_last_batch(event):
            control.request_evaluation()


def standard_callbacks(config: RunConfig) -> list[Callback]:
    """The rules every run follows, from its settings."""
    return [
        PeriodicCheckpoints(
            config.saving.checkpoint_every_steps, config.saving.checkpoint_every_minutes
        ),
        EarlyStopping(config.optim.early_stopping_patience),
        PeriodicEvaluation(config.optim.evaluate_every_steps),
    ]
