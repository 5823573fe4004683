"""How long a run will take on this computer, measured, not guessed: a few training steps of the
run's own parts (loading the pictures included), timed after two warm-up steps, then put back as
they were. The time per epoch is that time per picture for the training pictures, plus the validation pass,
which loads its pictures the same way and computes about a third of a training step (a forward
pass without the backward one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ptm_studio.core.engine.parts import TrainingParts
from ptm_studio.core.engine.trial_steps import steps_leaving_no_trace

MEASURED_STEPS = 5
WARM_UP_STEPS = 2  # the first steps pay one-off costs (memory, kernels, caches)
FORWARD_SHARE = 1 / 3  # a validation batch computes about a third of a training step


@dataclass(frozen=True)
class SpeedMeasurement:
    """What a few steps took on this computer."""

    loading_seconds: float  # per batch
    computing_seconds: float  # per training step
    steps_measured: int
    batch_size: int
    device: str

    @property
    def seconds_per_step(self) -> float:
        return self.loading_seconds + self.computing_seconds

    def seconds_per_epoch(self, training_pictures: int, validation_pictures: int) -> float:
        """Per picture, as measured: the last batch of an epoch is often a short one."""
        per_picture = self.seconds_per_step / max(1, self.batch_size)
        validating = (self.loading_seconds + FORWARD_SHARE * self.computing_seconds) / max(
            1, self.batch_size
        )
        return training_pictures * per_picture + validation_pictures * validating

    def describe(self) -> str:
        return (
            f"measured on this computer ({self.device}): {self.steps_measured} steps of "
            f"{self.batch_size} pictures, {self.seconds_per_step:.2f} s each"
        )


def measure_speed(
    parts: TrainingParts,
    *,
    steps: int = MEASURED_STEPS,
    clock: Callable[[], float] = time.perf_counter,
) -> SpeedMeasurement:
    """Time ``steps`` training steps (after a warm-up one); the parts are left as they were."""
    loading = computing = 0.0
    with steps_leaving_no_trace(parts) as batches:
        for index in range(WARM_UP_STEPS + steps):
            started = clock()
            batch = next(batches)
            loaded = clock()
            parts.step.at_current_rates(batch)
            done = clock()
            if index >= WARM_UP_STEPS:
                loading += loaded - started
                computing += done - loaded
    return SpeedMeasurement(
        loading_seconds=loading / steps,
        computing_seconds=computing / steps,
        steps_measured=steps,
        batch_size=parts.config.data.batch_size,
        device=parts.device.info.name,
    )
