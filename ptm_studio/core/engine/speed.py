"""How long a run will take on this computer, measured, not guessed: a few training steps of the
run's own parts (loading the pictures included), timed after two warm-up steps, then put back as
they were, and one write of its weights as a checkpoint makes it. The time per epoch is that
time per picture for the training pictures, plus the validation pass, which loads its pictures
the same way and computes about a third of a training step (a forward pass without the
backward one), plus the epoch's checkpoints as paced (see CheckpointPacing)."""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from ptm_studio.core.engine.checkpoint_pacing import writing_per_epoch
from ptm_studio.core.engine.epoch_plan import MAX_PLANNED_EPOCHS, EpochCosts
from ptm_studio.core.engine.parts import TrainingParts
from ptm_studio.core.engine.trial_steps import steps_leaving_no_trace
from ptm_studio.core.objectives import is_backbone_frozen

MEASURED_STEPS = 5
WARM_UP_STEPS = 2  # the first steps pay one-off costs (memory, kernels, caches)
FORWARD_SHARE = 1 / 3  # a validation batch computes about a third of a training step
SAVES_PER_EPOCH = 2  # the epoch's checkpoint and, while the run improves, the best one
GPU_HEADROOM = 0.9  # other programs and the memory allocator's own pieces need some room
GIB = 1024**3


@dataclass(frozen=True)
class GpuMemory:
    """What the measured steps needed of the graphics card's memory, against what is there."""

    peak_bytes: int  # the most this run held at once (weights, optimiser, one batch's work)
    available_bytes: int  # free now, plus what this run holds already
    total_bytes: int

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= GPU_HEADROOM * self.available_bytes

    def describe(self) -> str:
        needed = (
            f"needs about {self.peak_bytes / GIB:.1f} GB of the graphics card's memory "
            f"({self.available_bytes / GIB:.1f} GB free of {self.total_bytes / GIB:.0f} GB)"
        )
        if self.fits:
            return needed
        return (
            needed + ": too close to what is free; the run will split batches into pieces "
            "(slower). A smaller batch or image size, or closing other programs using the "
            "graphics card, avoids that"
        )


@dataclass(frozen=True)
class SpeedMeasurement:
    """What a few steps took on this computer."""

    loading_seconds: float  # per batch
    computing_seconds: float  # per training step
    steps_measured: int
    batch_size: int
    device: str
    gpu_memory: GpuMemory | None = None  # measured on a CUDA graphics card only
    saving_seconds: float = 0.0  # an epoch's end writes its checkpoint, and the best one
    # After a frozen start (freeze-then-unfreeze): the first epoch in which every layer
    # learns, and a step's computing then (measured apart: two to three times a frozen one).
    unfreezes_at: int | None = None
    unfrozen_computing_seconds: float = 0.0
    # Frozen epochs whose network's features are computed (one pass over the pictures each,
    # the first ones); the frozen epochs after them train the last layer on those features,
    # a step of which takes this long (measured on random features of their size).
    feature_copies: int = 0
    feature_step_seconds: float = 0.0
    # Per batch, loading pictures read before (the epochs after the first: decoded pictures
    # kept in memory, or files in the system's cache); None: as the first time.
    loading_again_seconds: float | None = None
    # Passes over the training pictures before the first step (probe then finetune: the
    # frozen network's statistics, then its features of each copy), and one over the
    # validation pictures; each a forward pass alone.
    probe_passes: int = 0
    # Per batch, a forward pass alone as validation runs it (None: not measured for this
    # task; then about FORWARD_SHARE of a training step).
    forward_seconds: float | None = None

    @property
    def seconds_per_step(self) -> float:
        return self.loading_seconds + self.computing_seconds

    def seconds_per_epoch(self, training_pictures: int, validation_pictures: int) -> float:
        """Per picture, as measured: the last batch of an epoch is often a short one."""
        per_picture = self.seconds_per_step / max(1, self.batch_size)
        validating = (self.loading_seconds + self.forward) / max(1, self.batch_size)
        computing = training_pictures * per_picture + validation_pictures * validating
        return self._with_writes(computing)

    def _with_writes(self, computing: float) -> float:
        """An epoch's ``computing`` seconds and its checkpoints, as paced (CheckpointPacing)."""
        return computing + writing_per_epoch(self.saving_seconds, computing)

    def epoch_costs(self, training_pictures: int, validation_pictures: int) -> EpochCosts:
        """Each epoch's seconds: the first epoch's kind as measured, and what changes later (the
        pictures read again, the last layer alone on cached features, or every layer learning
        after a frozen start). Timing only the first epoch's kind was 57 % short for
        freeze-then-unfreeze and 2.2x long for feature extraction (resnet18, 64 px, 6 epochs;
        issue 12)."""
        first = self.seconds_per_epoch(training_pictures, validation_pictures)
        again = self._reading_again()
        later = again.seconds_per_epoch(training_pictures, validation_pictures)
        if self.probe_passes:  # the first epoch reads the pictures the passes read
            probing = self._probe_seconds(training_pictures, validation_pictures)
            return EpochCosts((probing + later,), later)
        frozen = EpochCosts.uniform(first) if later == first else EpochCosts((first,), later)
        if self.feature_copies:
            # A pass over the pictures per copy of their features (the validation pictures'
            # with the first), each epoch training the last layer alone on them: steps of
            # milliseconds.
            size = max(1, self.batch_size)
            on_features = (
                (training_pictures + FORWARD_SHARE * validation_pictures)
                * self.feature_step_seconds
                / size
            )
            first_pass = (
                (training_pictures + validation_pictures)
                * (self.loading_seconds + self.forward)
                / size
            )
            pass_again = training_pictures * (again.loading_seconds + self.forward) / size
            passes = (first_pass,) + (pass_again,) * (self.feature_copies - 1)
            frozen = EpochCosts(
                tuple(self._with_writes(seconds + on_features) for seconds in passes),
                self._with_writes(on_features),
            )
        if self.unfreezes_at is None:
            return frozen
        unfrozen = replace(again, computing_seconds=self.unfrozen_computing_seconds)
        leading = tuple(frozen.of(index) for index in range(self.unfreezes_at))
        return EpochCosts(
            leading,
            unfrozen.seconds_per_epoch(training_pictures, validation_pictures),
            unfreezes=True,
        )

    @property
    def forward(self) -> float:
        """Seconds per batch of a forward pass alone (validation, a pass computing features)."""
        if self.forward_seconds is not None:
            return self.forward_seconds
        return FORWARD_SHARE * self.computing_seconds

    def _probe_seconds(self, training_pictures: int, validation_pictures: int) -> float:
        forward = self.forward
        again = self._reading_again().loading_seconds
        first_pass = (training_pictures + validation_pictures) * (self.loading_seconds + forward)
        other_passes = (self.probe_passes - 1) * training_pictures * (again + forward)
        return (first_pass + other_passes) / max(1, self.batch_size)

    def _reading_again(self) -> SpeedMeasurement:
        if self.loading_again_seconds is None:
            return self
        return replace(self, loading_seconds=self.loading_again_seconds)

    def describe(self) -> str:
        words = (
            f"measured on this computer ({self.device}): {self.steps_measured} steps of "
            f"{self.batch_size} pictures, {self.seconds_per_step:.2f} s each"
        )
        return words + (f"; {self.gpu_memory.describe()}" if self.gpu_memory else "")


def measure_speed(
    parts: TrainingParts,
    *,
    steps: int = MEASURED_STEPS,
    clock: Callable[[], float] = time.perf_counter,
) -> SpeedMeasurement:
    """Time ``steps`` training steps (after warm-up ones) as the first epoch trains, and as
    the later ones do when they train otherwise; the parts are left as they were."""
    on_cuda = parts.device.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(parts.device.device)
    loading, computing, forward = _time_steps(parts, 0, steps, clock)
    # The same pictures again, as the epochs after the first read them.
    loading_again = _time_loading(parts, steps, clock)
    model = parts.config.model
    frozen_at_first = is_backbone_frozen(model, 0)
    unfreezes_at = (
        next((e for e in range(1, MAX_PLANNED_EPOCHS) if not is_backbone_frozen(model, e)), None)
        if frozen_at_first
        else None
    )
    feature_copies = parts.task.feature_copies() if frozen_at_first else 0
    unfrozen_computing = 0.0
    if unfreezes_at is not None:
        # Pieces that only every layer learning needs (out of graphics card memory) are for
        # those epochs to find: the frozen ones before them keep whole batches.
        pieces = parts.step.micro_batching.pieces
        unfrozen_computing = _time_steps(parts, unfreezes_at, steps, clock)[1]
        parts.step.micro_batching.pieces = pieces
    return SpeedMeasurement(
        loading_seconds=loading,
        computing_seconds=computing,
        steps_measured=steps,
        batch_size=parts.config.data.batch_size,
        device=parts.device.info.name,
        gpu_memory=_gpu_memory(parts.device.device) if on_cuda else None,
        saving_seconds=SAVES_PER_EPOCH * time_one_save(parts.step.context.trained_module, clock),
        unfreezes_at=unfreezes_at,
        unfrozen_computing_seconds=unfrozen_computing,
        feature_copies=feature_copies,
        loading_again_seconds=loading_again,
        probe_passes=parts.task.probe_passes(),
        forward_seconds=forward,
        feature_step_seconds=_time_feature_steps(parts, steps, clock) if feature_copies else 0.0,
    )


def _time_steps(
    parts: TrainingParts, epoch_index: int, steps: int, clock: Callable[[], float]
) -> tuple[float, float, float | None]:
    """Seconds per step loading its batch and computing it, trained as epoch ``epoch_index``
    is (on the pictures: a cached feature pass is not a step), and running it forward alone
    as validation does (None when the task does not say)."""
    loading = computing = forward = 0.0
    measured_forward = True
    with steps_leaving_no_trace(parts, epoch_index) as batches:
        for index in range(WARM_UP_STEPS + steps):
            started = clock()
            batch = next(batches)
            loaded = clock()
            parts.step.at_current_rates(batch)
            done = clock()
            measured_forward = parts.task.forward_alone(batch) and measured_forward
            forwarded = clock()
            if index >= WARM_UP_STEPS:
                loading += loaded - started
                computing += done - loaded
                forward += forwarded - done
    return loading / steps, computing / steps, forward / steps if measured_forward else None


def _time_loading(parts: TrainingParts, steps: int, clock: Callable[[], float]) -> float:
    """Seconds per batch loading the batches _time_steps loaded (in the same order: the
    first epoch's), now read a second time."""
    loading = 0.0
    with steps_leaving_no_trace(parts, 0) as batches:
        for index in range(WARM_UP_STEPS + steps):
            started = clock()
            next(batches)
            loaded = clock()
            if index >= WARM_UP_STEPS:
                loading += loaded - started
    return loading / steps


def _time_feature_steps(parts: TrainingParts, steps: int, clock: Callable[[], float]) -> float:
    """Seconds per step of the last layer alone on cached features (random ones: the time
    does not depend on their values), after warm-up ones."""
    batch_size = parts.config.data.batch_size
    computing = 0.0
    with (
        steps_leaving_no_trace(parts, 0),
        parts.task.on_random_features(batch_size) as batch,
    ):
        if batch is None:
            return 0.0
        for index in range(WARM_UP_STEPS + steps):
            started = clock()
            parts.step.at_current_rates(batch)
            if index >= WARM_UP_STEPS:
                computing += clock() - started
    return computing / steps


def time_one_save(module: torch.nn.Module, clock: Callable[[], float] = time.perf_counter) -> float:
    """How long writing the weights takes here: serialised and written to a temporary file
    (deleted at once) and forced to the disk, as a checkpoint is. For a large network on a
    slow disk this is a good part of each epoch."""
    started = clock()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    with tempfile.TemporaryFile() as file:
        file.write(buffer.getbuffer())
        file.flush()
        os.fsync(file.fileno())
    return clock() - started


def _gpu_memory(device: torch.device) -> GpuMemory:
    free, total = torch.cuda.mem_get_info(device)
    held = torch.cuda.memory_reserved(device)
    return GpuMemory(torch.cuda.max_memory_allocated(device), free + held, total)
