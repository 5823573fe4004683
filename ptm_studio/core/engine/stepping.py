"""One training step per batch, kept going after running out of memory, and the state that a
checkpoint needs to continue the steps exactly where they stopped."""

from __future__ import annotations

import math
from typing import Any

import torch

from ptm_studio.core.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    capture_rng_state,
)
from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.loops import (
    StepContext,
    StepResult,
    accumulate_gradients,
    apply_update,
    update_weights,
)
from ptm_studio.core.engine.memory import MicroBatching, OutOfMemoryError, is_out_of_memory
from ptm_studio.core.engine.progress import RunProgress
from ptm_studio.core.engine.tasks import TrainingTask
from ptm_studio.core.objectives import build_optimizer, build_scheduler, keep_built_kernels


def build_step_context(
    config: RunConfig,
    task: TrainingTask,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    steps_per_epoch: int,
) -> StepContext:
    """The optimiser (head and backbone groups), schedule and gradient scaler of a run."""
    head, backbone = task.optimizer_parts()
    optimizer = build_optimizer(head, backbone, config.optim, config.model)
    return StepContext(
        trained_module=task.trained_module(),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, config.optim, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16),
        gradient_clip_norm=config.optim.gradient_clip_norm,
    )


class TrainingStep:
    """Computes a batch's gradients (in pieces if memory runs out), then updates the weights."""

    def __init__(
        self, context: StepContext, task: TrainingTask, micro_batching: MicroBatching
    ) -> None:
        self.context, self.task, self.micro_batching = context, task, micro_batching

    def __call__(self, batch: Any) -> StepResult:
        step = self.micro_batching.run(batch, self._accumulate_gradients, "training")
        if math.isfinite(step.loss):  # a NaN loss skips the update (see DivergenceGuard)
            self._apply_update()
        return step

    def at_current_rates(self, batch: Any) -> StepResult:
        """One step at the rates the optimiser holds now, the schedule left where it is: a
        learning-rate test sets the rates itself (and could run past a one-cycle schedule)."""
        step = self.micro_batching.run(batch, self._accumulate_gradients, "training")
        if math.isfinite(step.loss):
            update_weights(self.context)
        return step

    def _accumulate_gradients(self, pieces: list[Any]) -> StepResult:
        return accumulate_gradients(
            self.context,
            pieces,
            self.task.compute_loss,
            self.task.loss_share,
            self.task.gradient_sync,
        )

    def _apply_update(self) -> None:
        """The optimiser step. Out of memory here is not about the batch (the first step of
        Adam allocates two copies of the weights), so smaller pieces would not help."""
        try:
            apply_update(self.context)
            return
        except Exception as error:
            if not is_out_of_memory(error):
                raise
        raise OutOfMemoryError(
            "The graphics card ran out of memory while updating the weights: the optimiser"
            " keeps extra copies of them. Choose a smaller model, the SGD optimiser, or"
            " train on the processor (CPU)."
        )


def capture_trainer_state(
    context: StepContext, progress: RunProgress, task: TrainingTask
) -> dict[str, Any]:
    """Everything besides the weights that a resumed run needs to continue exactly."""
    return {
        "progress": progress.state_dict(),
        "optimizer": context.optimizer.state_dict(),
        "scheduler": context.scheduler.state_dict(),
        "scaler": context.scaler.state_dict(),
        "rng": capture_rng_state(),
        "task": task.extra_state(),
    }


def restore_trainer_state(
    loaded: LoadedCheckpoint, context: StepContext, progress: RunProgress, task: TrainingTask
) -> dict[str, Any]:
    """Put a checkpoint's weights and state back; return the RNG state, which the batch source
    restores at the right moment (see BatchSource._iterator)."""
    state = loaded.trainer_state
    if state is None:
        raise CheckpointError(f"{loaded.folder}: has no trainer state to resume from")
    task.load_state(loaded.model_state, state.get("task", {}))
    context.optimizer.load_state_dict(state["optimizer"])
    keep_built_kernels(context.optimizer)  # this computer's kernels, not the saving one's
    context.scheduler.load_state_dict(state["scheduler"])
    context.scaler.load_state_dict(state["scaler"])
    progress.load_state_dict(state["progress"])
    return dict(state["rng"])


def follow_schedule_from_here(context: StepContext) -> None:
    """Give each parameter group the rate its schedule has for the current step (after the
    schedule changed, e.g. a resumed run asked for more epochs)."""
    scheduler = context.scheduler
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is None:
        return
    step = scheduler.last_epoch
    for group, base_rate, multiplier in zip(
        context.optimizer.param_groups, scheduler.base_lrs, lambdas, strict=True
    ):
        group["lr"] = base_rate * multiplier(step)
