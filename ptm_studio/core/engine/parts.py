"""Everything a run trains with, built from its config: :func:`build_training`.

Building writes nothing to disk (no run folder; downloading ImageNet weights into their cache
is the one exception, and only when the user allowed it), so the same parts serve a training
run, a learning-rate test, the evaluation of a saved checkpoint or an export. The Trainer runs
them; a RunRecorder, when there is one, keeps what they do in a run folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import DatasetError, DatasetScan, DataSplit
from ptm_studio.core.engine.batches import BatchSource
from ptm_studio.core.engine.distributed import DistributedContext
from ptm_studio.core.engine.memory import MicroBatching
from ptm_studio.core.engine.pretrain_task import PretrainTask
from ptm_studio.core.engine.progress import RunProgress
from ptm_studio.core.engine.setup import (
    DeviceSetup,
    batch_per_process,
    prepare_device,
    prepare_split,
    seed_everything,
)
from ptm_studio.core.engine.stepping import TrainingStep, build_step_context
from ptm_studio.core.engine.tasks import SupervisedTask, TaskEnvironment, TrainingTask

Listener = Callable[[str, str], None]


@dataclass
class Adjustments:
    """Where the parts report that they changed how they work to keep going (after running out
    of memory, or when a loading process failed): ``report(kind, message)``. The Trainer
    listens and fires TrainingAdjusted."""

    reported: list[tuple[str, str]] = field(default_factory=list)
    _listeners: list[Listener] = field(default_factory=list)

    def report(self, kind: str, message: str) -> None:
        self.reported.append((kind, message))
        for listener in self._listeners:
            listener(kind, message)

    def listen(self, listener: Listener) -> None:
        """``listener`` hears every report from now on, and first those made while the parts
        were being built (e.g. that not every decoded picture fits in memory)."""
        for kind, message in self.reported:
            listener(kind, message)
        self._listeners.append(listener)


@dataclass
class TrainingParts:
    """A run's model, data, optimiser and schedule, ready to train (see :func:`build_training`)."""

    config: RunConfig
    device: DeviceSetup
    split: DataSplit
    task: TrainingTask  # the model(s), the data loaders, the loss
    step: TrainingStep  # one optimisation step: optimiser, schedule, gradient scaler
    batches: BatchSource  # each epoch's batches, from any batch on
    progress: RunProgress
    adjustments: Adjustments
    # Counted once, when built: the loader's length shrinks while a resumed epoch skips the
    # batches it already trained.
    steps_per_epoch: int
    time_plan: str = ""  # a time budget's plan in words (see time_budget.py), told at the start
    distributed: DistributedContext = field(default_factory=DistributedContext)  # torchrun

    def skipped_files(self) -> dict[str, str]:
        """Files left out: by the scan before training, and those unreadable during it."""
        skipped = {str(path): reason for path, reason in self.split.left_out}
        skipped.update(self.task.skipped_files())
        skipped.update(self.batches.skipped)
        return skipped


def build_training(
    config: RunConfig,
    *,
    scan: DatasetScan | None = None,
    download_progress: Callable[[int, int], None] | None = None,
) -> TrainingParts:
    """The parts a run with ``config`` trains with.

    Args:
        config: the run's settings (validated here).
        scan: a scan of the picture folder already made (the one the user saw); it is used
            when the folder has not changed since, otherwise the folder is scanned again.
        download_progress: ``(done_bytes, total_bytes)`` while ImageNet weights download.

    Raises:
        ConfigError, DatasetError, WeightsError, …: the settings, the pictures or the starting
            weights cannot be used (the message says why, in words a user understands).
    """
    config.validate()
    seed_everything(config.seed)
    distributed = DistributedContext.from_env()
    device = prepare_device(config.device)
    device = replace(device, device=distributed.device(device.device))
    distributed.start(device.device)  # every process of the run waits here for the others
    adjustments = Adjustments()
    micro_batching = MicroBatching(device.device, partial(adjustments.report, "out_of_memory"))
    environment = TaskEnvironment(
        config,
        device.device,
        device.channels_last,
        device.autocast_dtype,
        micro_batching,
        download_progress,
        adjustments.report,
        distributed,
    )
    split = prepare_split(config, scan)
    task_type = PretrainTask if config.objective.task == "pretrain" else SupervisedTask
    task: TrainingTask = task_type(environment, split)
    steps_per_epoch = len(task.train_loader)
    if steps_per_epoch == 0:
        raise DatasetError(
            "There are fewer training pictures than one batch needs.",
            advice="Lower the batch size or add pictures.",
        )
    context = build_step_context(
        config, task, device.device, device.autocast_dtype, steps_per_epoch
    )
    return TrainingParts(
        config=config,
        device=device,
        split=split,
        task=task,
        step=TrainingStep(context, task, micro_batching),
        batches=BatchSource(
            task,
            batch_per_process(config.data.batch_size, distributed),
            config.data.num_workers,
            adjustments.report,
        ),
        progress=RunProgress(),
        adjustments=adjustments,
        steps_per_epoch=steps_per_epoch,
        distributed=distributed,
    )
