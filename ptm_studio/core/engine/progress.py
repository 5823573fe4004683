"""Counters of a run in progress (position, running sums, best score, timing; saved for
resume), and a throttle for progress reports that arrive faster than anyone can read them."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

REPORT_INTERVAL_S = 0.1


class RunProgress:
    """Where a run is (epoch, batch, step) and what it has measured so far."""

    def __init__(self) -> None:
        self.epoch_index = 0  # the epoch being trained (from 0)
        self.batch_index = 0  # batches of that epoch already trained
        self.global_step = 0
        self.epochs_completed = 0
        self.best_val_accuracy = float("nan")
        self.best_val_loss = float("inf")
        self.final_val_accuracy = float("nan")
        self.epochs_without_improvement = 0
        self.loss_sum = 0.0
        self.finite_batches = 0
        self.correct = 0
        self.seen = 0
        self._epoch_started = time.perf_counter()
        self._run_started = time.perf_counter()
        self._steps_this_session = 0
        self._samples_this_epoch = 0

    # ------------------------------------------------------------- during an epoch
    def start_epoch(self, epoch_index: int, steps_per_epoch: int) -> None:
        if epoch_index != self.epoch_index or self.batch_index == 0:
            self.loss_sum, self.finite_batches, self.correct, self.seen = 0.0, 0, 0, 0
        self.epoch_index = epoch_index
        self.steps_per_epoch = steps_per_epoch
        self._epoch_started = time.perf_counter()
        self._samples_this_epoch = 0

    def add_batch(self, loss: float, correct: int | None, batch_size: int) -> None:
        """``correct`` is None for objectives without an accuracy (most pretraining losses)."""
        self.batch_index += 1
        self.global_step += 1
        self._steps_this_session += 1
        self._samples_this_epoch += batch_size
        if math.isfinite(loss):
            self.loss_sum += loss
            self.finite_batches += 1
        if correct is not None:
            self.correct += correct
            self.seen += batch_size

    def finish_training_part(self) -> None:
        self.train_seconds = time.perf_counter() - self._epoch_started

    def finish_epoch(self, val_accuracy: float, val_loss: float) -> bool:
        """Close the epoch; return whether it is the best so far (accuracy, then loss)."""
        self.epochs_completed = self.epoch_index + 1
        self.epoch_index += 1
        self.batch_index = 0
        self.final_val_accuracy = val_accuracy
        is_best = _is_improvement(
            val_accuracy, val_loss, self.best_val_accuracy, self.best_val_loss
        )
        if is_best:
            self.best_val_accuracy, self.best_val_loss = val_accuracy, val_loss
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return is_best

    # ------------------------------------------------------------- derived numbers
    def epoch_train_loss(self) -> float:
        return self.loss_sum / self.finite_batches if self.finite_batches else float("nan")

    def epoch_train_accuracy(self) -> float:
        return self.correct / self.seen if self.seen else float("nan")

    def epoch_seconds(self) -> float:
        return time.perf_counter() - self._epoch_started

    def elapsed_seconds(self) -> float:
        return time.perf_counter() - self._run_started

    def samples_per_second(self) -> float:
        seconds = time.perf_counter() - self._epoch_started
        return self._samples_this_epoch / seconds if seconds > 0 else 0.0

    def eta_seconds(self, total_steps: int) -> float:
        """Remaining training time from the average step time of this session (validation excluded)."""
        if self._steps_this_session == 0:
            return float("nan")
        seconds_per_step = self.elapsed_seconds() / self._steps_this_session
        return max(0, total_steps - self.global_step) * seconds_per_step

    # ------------------------------------------------------------- resume
    _SAVED = (
        "epoch_index",
        "batch_index",
        "global_step",
        "epochs_completed",
        "best_val_accuracy",
        "best_val_loss",
        "final_val_accuracy",
        "epochs_without_improvement",
        "loss_sum",
        "finite_batches",
        "correct",
        "seen",
    )

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._SAVED}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._SAVED:
            setattr(self, name, state[name])


def _is_improvement(accuracy: float, loss: float, best_accuracy: float, best_loss: float) -> bool:
    if math.isnan(accuracy):
        return math.isfinite(loss) and loss < best_loss
    if math.isnan(best_accuracy) or accuracy > best_accuracy:
        return True
    return accuracy == best_accuracy and loss < best_loss


class ProgressThrottle:
    """Passes ``(done, total)`` reports on at most once per ``interval_s``; the first and the
    final one (``done >= total`` with a known total) always."""

    def __init__(
        self,
        report: Callable[[int, int], None],
        interval_s: float = REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._interval_s = interval_s
        self._clock = clock
        self._last_report_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        is_final = total > 0 and done >= total
        is_due = self._last_report_at is None or now - self._last_report_at >= self._interval_s
        if is_final or is_due:
            self._last_report_at = now
            self._report(int(done), int(total))
