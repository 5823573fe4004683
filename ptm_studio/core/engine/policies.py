"""A run's standing rules, as callbacks made from its settings: stop when it no longer improves,
save a checkpoint every few steps or minutes, check on the validation pictures mid-epoch.

They act only through the TrainingControl, like any callback a user of the engine writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

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


OVERRUN_ALLOWED = 1.1  # an epoch may end this far past the budget before the run is cut short
PLATEAU_SHARE, PLATEAU_EPOCHS = 0.2, 5  # under a budget: a fifth of the epochs, at least 5


class TimeBudget(Callback):
    """Keeps a run with a time budget (``optim.time_budget_minutes``) within it.

    Its epochs were planned from a few measured steps (time_budget.py); when they come out
    slower (another program took the processor), the run ends after the last epoch that fits,
    saying so. Without an early-stopping patience, it also ends a run whose validation score
    has not improved for a fifth of its epochs (at least PLATEAU_EPOCHS): time the user gave
    is not spent on a plateau. A resumed run gets the budget's share of the epochs it has left.
    """

    def __init__(self, config: RunConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget_minutes = config.optim.time_budget_minutes
        self.watch_plateau = config.optim.early_stopping_patience == 0
        self.clock = clock
        self._started = clock()
        self._allowed_seconds = self.budget_minutes * 60
        self._epochs_here = 0

    def on_training_started(self, event: TrainingStarted, control: TrainingControl) -> None:
        self._started = self.clock()
        epochs_left = event.num_epochs - event.start_epoch + 1
        self._allowed_seconds = self.budget_minutes * 60 * epochs_left / max(1, event.num_epochs)

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        self._epochs_here += 1
        if event.epoch >= event.num_epochs:
            return
        elapsed = self.clock() - self._started
        per_epoch = elapsed / self._epochs_here
        if elapsed + per_epoch > OVERRUN_ALLOWED * self._allowed_seconds:
            control.request_stop(
                f"the time budget ({self.budget_minutes:g} min) is used up after {event.epoch} "
                f"of the {event.num_epochs} planned epochs: they took about {per_epoch:.0f} s "
                "each, longer than measured before the start (was the computer busy?)"
            )
            return
        plateau = max(PLATEAU_EPOCHS, math.ceil(PLATEAU_SHARE * event.num_epochs))
        if self.watch_plateau and event.epochs_without_improvement >= plateau:
            control.request_stop(
                f"no better validation score for {event.epochs_without_improvement} epochs: "
                "ended before the time budget was used up; the best epoch is kept"
            )


NOT_LEARNING_EPOCHS = 3  # epochs in a row at what guessing gives before the user is told
GUESSING_MARGIN = 0.02  # within 2 points of guessing counts as guessing
ONE_ANSWER_SHARE = 0.95  # this share of one answer is "the same answer for everything"


class LearningWatch(Callback):
    """Tells the user, once, when a classifier is not learning: for NOT_LEARNING_EPOCHS epochs
    in a row its validation accuracy is no better than guessing (chance, or always answering
    the largest class), or it gives one answer for nearly every picture. A MobileNet from random
    weights can sit there for a whole run without a word otherwise."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._streak = 0
        self._said = False

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        matrix = event.confusion_matrix
        if self._said or matrix is None or not math.isfinite(event.val_accuracy):
            return  # pretraining, or no validation pictures to judge by
        counts = np.asarray(matrix, dtype=float)
        total = counts.sum()
        if total <= 0 or counts.shape[0] < 2:
            return
        guess = _best_guess(counts, event.per_class)
        one_answer = counts.sum(axis=0).max() / total >= ONE_ANSWER_SHARE
        at_guessing = event.val_accuracy <= guess.share + GUESSING_MARGIN
        self._streak = self._streak + 1 if (at_guessing or one_answer) else 0
        if self._streak >= NOT_LEARNING_EPOCHS:
            self._said = True
            control.advise("not_learning", _not_learning_message(self.config, guess, self._streak))


@dataclass(frozen=True)
class _Guess:
    share: float  # the accuracy guessing gets
    words: str  # "always answering 'daisy'" or "guessing at random (1 in 5)"


def _best_guess(counts: np.ndarray, per_class: tuple[dict[str, Any], ...]) -> _Guess:
    shares = counts.sum(axis=1) / counts.sum()
    largest = int(np.argmax(shares))
    chance = 1 / len(shares)
    if shares[largest] > chance + GUESSING_MARGIN and largest < len(per_class):
        name = per_class[largest].get("class_name", "the largest class")
        return _Guess(float(shares[largest]), f"always answering '{name}'")
    return _Guess(chance, f"guessing at random (1 in {len(shares)})")


def _not_learning_message(config: RunConfig, guess: _Guess, epochs: int) -> str:
    tries = ["find a learning rate (Find a learning rate…, or `ptm-studio find-lr`)"]
    if config.model.weights == "random":
        tries.append("start from ImageNet weights or an earlier run instead of random weights")
    if config.data.image_size < 64:
        tries.append("a larger image size, if what tells the classes apart is small")
    tries.append("more epochs or more pictures")
    return (
        f"For {epochs} epochs the model has done no better than {guess.words} "
        f"({100 * guess.share:.0f} % of the validation pictures): it is not learning yet. "
        "Likely causes: a learning rate too high or too low, a network from random weights "
        "that needs more pictures or epochs, or pictures too small to show what tells the "
        f"classes apart. Try: {'; '.join(tries)}."
    )


def standard_callbacks(config: RunConfig) -> list[Callback]:
    """The rules every run follows, from its settings."""
    return [
        PeriodicCheckpoints(
            config.saving.checkpoint_every_steps, config.saving.checkpoint_every_minutes
        ),
        EarlyStopping(config.optim.early_stopping_patience),
        PeriodicEvaluation(config.optim.evaluate_every_steps),
        LearningWatch(config),
        *([TimeBudget(config)] if config.optim.time_budget_minutes > 0 else []),
    ]
