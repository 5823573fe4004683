"""What a run reports: the events it fires, its metrics-log records and its checkpoint metadata.

Plain functions of the run's state, so the Trainer keeps only the order in which they happen.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ptm_studio.core.config import RunConfig
from ptm_studio.core.devices import DeviceInfo
from ptm_studio.core.engine.events import BatchFinished, EpochFinished, TrainingStarted
from ptm_studio.core.engine.progress import RunProgress
from ptm_studio.core.engine.tasks import EpochOutcome, TrainingTask

_EPOCH_LOG_FIELDS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_top5_accuracy",
    "learning_rate",
    "epoch_seconds",
    "is_best",
    "embedding_spread",
)


def started_event(
    run_dir: Path,
    config: RunConfig,
    task: TrainingTask,
    progress: RunProgress,
    steps_per_epoch: int,
    device_info: DeviceInfo,
) -> TrainingStarted:
    return TrainingStarted(
        run_dir=run_dir,
        task=config.objective.task,
        class_names=task.class_names,
        num_epochs=config.optim.num_epochs,
        start_epoch=progress.epoch_index + 1,
        steps_per_epoch=steps_per_epoch,
        num_train_images=task.num_train_images,
        num_val_images=task.num_val_images,
        device_name=device_info.name,
        device_note=device_info.note,
        parameter_count=sum(p.numel() for p in task.trained_module().parameters()),
        weights_note=task.weights_note,
    )


def batch_event(
    progress: RunProgress,
    num_epochs: int,
    steps_per_epoch: int,
    batch_index: int,
    loss: float,
    learning_rate: float,
) -> BatchFinished:
    total_steps = num_epochs * steps_per_epoch
    return BatchFinished(
        epoch=progress.epoch_index + 1,
        batch_index=batch_index,
        num_batches=steps_per_epoch,
        global_step=progress.global_step,
        total_steps=total_steps,
        loss=loss,
        learning_rate=learning_rate,
        samples_per_second=progress.samples_per_second(),
        elapsed_seconds=progress.elapsed_seconds(),
        eta_seconds=progress.eta_seconds(total_steps),
    )


def epoch_event(
    progress: RunProgress,
    num_epochs: int,
    epoch_index: int,
    outcome: EpochOutcome,
    is_best: bool,
    learning_rate: float,
) -> EpochFinished:
    return EpochFinished(
        epoch=epoch_index + 1,
        num_epochs=num_epochs,
        train_loss=progress.epoch_train_loss(),
        train_accuracy=progress.epoch_train_accuracy(),
        val_loss=outcome.val_loss,
        val_accuracy=outcome.val_accuracy,
        val_top5_accuracy=outcome.val_top5_accuracy,
        learning_rate=learning_rate,
        epoch_seconds=progress.epoch_seconds(),
        is_best=is_best,
        per_class=outcome.per_class,
        confusion_matrix=outcome.confusion,
        embedding_spread=outcome.embedding_spread,
    )


def epoch_log_record(event: EpochFinished, global_step: int) -> dict[str, Any]:
    """The metrics.jsonl line of an epoch (the GUI rebuilds its charts from these)."""
    matrix = event.confusion_matrix
    return {
        "type": "epoch",
        "global_step": global_step,
        **{name: getattr(event, name) for name in _EPOCH_LOG_FIELDS},
        "confusion_matrix": matrix.tolist() if matrix is not None else None,
        "per_class": list(event.per_class),
    }


def checkpoint_meta(config: RunConfig, task: TrainingTask, progress: RunProgress) -> dict[str, Any]:
    """What meta.json records besides completeness: enough to predict without the config."""
    return {
        "backbone": task.spec.name,
        "class_names": list(task.class_names),
        "task": config.objective.task,
        "image_size": config.data.image_size,
        "mean": list(task.spec.mean),
        "std": list(task.spec.std),
        "epoch": progress.epochs_completed,
        "global_step": progress.global_step,
        "val_accuracy": _finite_or_none(progress.final_val_accuracy),
        **task.meta(),
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
