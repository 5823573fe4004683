"""What a run reports: the events it fires and its checkpoint metadata.

Plain functions of the run's state, so the Trainer keeps only the order in which they happen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptm_studio.core.atomic_io import json_safe
from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.events import (
    BatchFinished,
    EpochFinished,
    EvaluationFinished,
    TrainingStarted,
)
from ptm_studio.core.engine.parts import TrainingParts
from ptm_studio.core.engine.progress import RunProgress
from ptm_studio.core.engine.tasks import EpochOutcome, TrainingTask


def started_event(
    run_dir: Path | None, parts: TrainingParts, resume_changes: tuple[str, ...] = ()
) -> TrainingStarted:
    config, task, progress = parts.config, parts.task, parts.progress
    return TrainingStarted(
        run_dir=run_dir,
        task=config.objective.task,
        class_names=task.class_names,
        num_epochs=config.optim.num_epochs,
        start_epoch=progress.epoch_index + 1,
        steps_per_epoch=parts.steps_per_epoch,
        num_train_images=task.num_train_images,
        num_val_images=task.num_val_images,
        device_name=parts.device.info.name,
        device_note=parts.device.info.note,
        parameter_count=sum(p.numel() for p in task.trained_module().parameters()),
        weights_note=task.weights_note,
        resume_changes=resume_changes,
        time_plan=parts.time_plan,
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
        probe_accuracy=outcome.probe_accuracy,
        global_step=progress.global_step,
        best_val_accuracy=progress.best_val_accuracy,
        epochs_without_improvement=progress.epochs_without_improvement,
    )


def evaluation_event(
    progress: RunProgress, steps_per_epoch: int, outcome: EpochOutcome
) -> EvaluationFinished:
    return EvaluationFinished(
        epoch=progress.epoch_index + progress.batch_index / max(1, steps_per_epoch),
        global_step=progress.global_step,
        val_loss=outcome.val_loss,
        val_accuracy=outcome.val_accuracy,
        val_top5_accuracy=outcome.val_top5_accuracy,
        per_class=outcome.per_class,
        confusion_matrix=outcome.confusion,
    )


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
        "val_accuracy": json_safe(progress.final_val_accuracy),
        **task.meta(),
    }
