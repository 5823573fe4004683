"""How often an epoch's end writes the resumable checkpoint when writing it costs more than the
training it keeps.

Every epoch's end writes the run's resumable checkpoint, so that a crash loses at most the epoch
in progress. That is right while an epoch takes longer than the write; it is not when the
head of a frozen network trains on cached features: an epoch then takes milliseconds and
writing a resnet18's 45 MB (with fsync) takes 130 ms, ten times the training (issue 14, B2).
There the write waits until the training done since the last one is worth it: writes take at
most about a tenth of the run, and a crash loses at most those last seconds. Stopping, pausing,
a failure and the run's end still write what the run has (see Trainer._end_epoch).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

# Writes take at most about this share of the run's time (training plus writing).
WRITING_SHARE = 0.1
# A write this quick is always made: a small network's checkpoint (and tests' runs) at every
# epoch's end, as before pacing; only a write that a user would feel is paced.
ALWAYS_WRITTEN_SECONDS = 0.05


def writing_per_epoch(write_seconds: float, epoch_seconds: float) -> float:
    """What an epoch's checkpoints cost on average, paced: every write while it is quick or
    no more than a ninth of the epoch, else a write every few epochs (a ninth of each)."""
    if write_seconds < ALWAYS_WRITTEN_SECONDS:
        return write_seconds
    return min(write_seconds, epoch_seconds * WRITING_SHARE / (1 - WRITING_SHARE))


class CheckpointPacing:
    """Says at each epoch's end whether the resumable checkpoint is due; told how long each
    write took. ``clock``: seconds, monotonic (a test's own)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._last_write_seconds = 0.0
        self._last_write_ended: float | None = None

    def is_due(self) -> bool:
        """Whether a write now keeps writing within WRITING_SHARE of the run: the first is
        always due (it also measures what a write costs), and so is every quick one."""
        if self._last_write_ended is None or self._last_write_seconds < ALWAYS_WRITTEN_SECONDS:
            return True
        trained = self._clock() - self._last_write_ended
        return trained >= self._last_write_seconds * (1 - WRITING_SHARE) / WRITING_SHARE

    def written(self, started: float) -> None:
        """A write that began at ``started`` (this clock) has just ended."""
        now = self._clock()
        self._last_write_seconds = now - started
        self._last_write_ended = now

    def now(self) -> float:
        return self._clock()


class WeightsSnapshot:
    """A copy of a model's weights at one moment (the best epoch's, held until its checkpoint
    is written), taken into the same memory each time: copying resnet18's 45 MB into memory
    already there takes 2 ms, into new memory 9 ms, at every improving epoch. Each snapshot
    overwrites the one before: take one only when the last is written or no longer wanted."""

    def __init__(self) -> None:
        self._copies: dict[str, torch.Tensor] = {}

    def take(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self._fits(weights):
            self._copies = {name: tensor.detach().clone() for name, tensor in weights.items()}
            return self._copies
        with torch.no_grad():
            for name, tensor in weights.items():
                self._copies[name].copy_(tensor)
        return self._copies

    def _fits(self, weights: dict[str, torch.Tensor]) -> bool:
        copies = self._copies
        return copies.keys() == weights.keys() and all(
            copies[name].shape == tensor.shape
            and copies[name].dtype == tensor.dtype
            and copies[name].device == tensor.device
            for name, tensor in weights.items()
        )
