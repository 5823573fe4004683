"""Training steps that leave no trace: a learning-rate test or a speed measurement trains the
run's own parts for a few steps, then everything is put back (weights, batch-norm statistics,
train/eval modes, optimiser state, schedule, gradient scaler, random state, skipped pictures),
so the run that follows starts exactly as it would have without them."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from ptm_studio.core.checkpoints import capture_rng_state, restore_rng_state
from ptm_studio.core.engine.parts import TrainingParts


@contextlib.contextmanager
def steps_leaving_no_trace(parts: TrainingParts, epoch_index: int = 0) -> Iterator[Iterator[Any]]:
    """Training batches without end (epoch after epoch); on leaving, the parts as they were,
    even when the block failed."""
    kept = _snapshot(parts)
    try:
        # Trained as epoch ``epoch_index`` is (the first by default: a frozen backbone stays
        # so), on the pictures: a few steps must not wait for a whole pass that caches a
        # frozen backbone's features.
        parts.task.prepare_epoch(epoch_index, cached_features=False)
        yield endless_batches(parts)
    finally:
        _restore(parts, kept)


def endless_batches(parts: TrainingParts) -> Iterator[Any]:
    epoch = 0
    while True:
        yielded = False
        for batch in parts.batches.epoch(epoch, 0):
            yielded = True
            yield batch
        if not yielded:
            return
        epoch += 1


def _snapshot(parts: TrainingParts) -> dict[str, Any]:
    context = parts.step.context
    return {
        "weights": copy.deepcopy(context.trained_module.state_dict()),
        "modes": [(child, child.training) for child in context.trained_module.modules()],
        "trainable": [
            (value, value.requires_grad) for value in context.trained_module.parameters()
        ],
        "optimizer": copy.deepcopy(context.optimizer.state_dict()),
        "scheduler": copy.deepcopy(context.scheduler.state_dict()),
        "scaler": copy.deepcopy(context.scaler.state_dict()),
        "rng": capture_rng_state(),
        "skipped": dict(parts.batches.skipped),
    }


def _restore(parts: TrainingParts, kept: dict[str, Any]) -> None:
    context = parts.step.context
    context.trained_module.load_state_dict(kept["weights"])
    for child, was_training in kept["modes"]:
        child.train(was_training)
    for value, was_trainable in kept["trainable"]:
        value.requires_grad_(was_trainable)
    context.optimizer.load_state_dict(kept["optimizer"])
    context.scheduler.load_state_dict(kept["scheduler"])
    context.scaler.load_state_dict(kept["scaler"])
    restore_rng_state(kept["rng"])
    # Pictures skipped while testing are reported by the run itself if it meets them again.
    parts.batches.skipped.clear()
    parts.batches.skipped.update(kept["skipped"])
