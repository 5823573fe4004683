"""Choices made before a run starts: Auto's settings, a backbone's usual image size, a rough time
estimate, whether the pictures chosen can train at all, and the task a folder without classes
needs. The window shows them; the decisions live here so the command line and a future Auto
recipe make the same ones."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from ptm_studio.core.config import PRETRAIN_LOSSES, SUPERVISED_LOSSES, ObjectiveConfig, RunConfig
from ptm_studio.core.data.manifest import DatasetError, DatasetScan
from ptm_studio.core.data.preflight import preflight
from ptm_studio.core.data.problems import IMBALANCE_WARNING_RATIO
from ptm_studio.core.engine.epoch_plan import EpochCosts
from ptm_studio.core.models import get_backbone_spec

GPU_KINDS = ("cuda", "mps")
CPU_IMAGE_SIZE_LIMIT = 128  # larger pictures make a CPU epoch take many minutes


@dataclass(frozen=True)
class DataFacts:
    """What Auto looks at: how many pictures train and how they spread over the classes."""

    num_train_images: int
    class_counts: tuple[int, ...] = ()

    @property
    def is_imbalanced(self) -> bool:
        """The largest class at least as many times the smallest as the scan warns about."""
        counts = [count for count in self.class_counts if count > 0]
        return bool(counts) and max(counts) >= IMBALANCE_WARNING_RATIO * min(counts)


def with_backbone(config: RunConfig, backbone: str) -> RunConfig:
    """``config`` with another network, at the image size that network usually works with."""
    spec = get_backbone_spec(backbone)
    model = replace(config.model, backbone=spec.name)
    data = replace(config.data, image_size=int(spec.default_image_size or config.data.image_size))
    return replace(config, model=model, data=data)


def auto_settings(config: RunConfig, facts: DataFacts, device_kind: str) -> RunConfig:
    """Sensible settings for these pictures, this network and this computer; the choices a
    domain expert should not have to make (the network and the weights stay as chosen)."""
    images = facts.num_train_images
    is_gpu = device_kind in GPU_KINDS
    spec = get_backbone_spec(config.model.backbone)
    image_size = int(spec.default_image_size or 64)
    if not is_gpu:
        image_size = min(image_size, CPU_IMAGE_SIZE_LIMIT)
    batch_size = 64 if is_gpu else 32
    if images:
        batch_size = max(4, min(batch_size, 2 ** int(math.log2(max(4, images // 4)))))
    num_classes = len([count for count in facts.class_counts if count > 0])
    augmentations = ["flip", "small_rotations"]
    if images > 200:
        augmentations.append("colour_changes")
    return replace(
        config,
        data=replace(
            config.data,
            image_size=image_size,
            batch_size=batch_size,
            augmentations=tuple(augmentations),
        ),
        objective=replace(
            config.objective,
            use_class_weights=facts.is_imbalanced,
            label_smoothing=0.1 if num_classes > 10 else 0.0,
        ),
        optim=replace(
            config.optim,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-4,
            num_epochs=30 if images < 300 else 15 if images < 3000 else 8,
        ),
    )


def estimate_images_per_second(parameter_count: int, image_size: int, device_kind: str) -> float:
    """A deliberately rough guess, used until a run on this computer has been measured."""
    scale = max(1.0, parameter_count / 1e5) ** 0.8 * (image_size / 64) ** 2
    speed = min(3000.0, 20000.0 / scale)
    return speed * (20.0 if device_kind in GPU_KINDS else 1.0)


def why_it_cannot_train(scan: DatasetScan, config: RunConfig) -> DatasetError | None:
    """Why the pictures ``scan`` found cannot train with ``config`` (its task, validation share
    and allowed share of bad files), or None when they can: the very check a run makes before
    it starts (``preflight``), made while the user is still choosing."""
    try:
        preflight(
            scan,
            task=config.objective.task,
            validation_fraction=config.data.validation_fraction,
            max_bad_file_fraction=config.data.max_bad_file_fraction,
        )
    except DatasetError as error:
        return error
    return None


# What :func:`choose_task` just did, for the window to put into words.
TASK_UNCHANGED = ""
TASK_SWITCHED = "switched"  # to pretraining: the folder has pictures but no classes
TASK_SWITCH_KEPT = "kept"  # an earlier automatic switch still has its reason
TASK_RESTORED = "restored"  # the reason went away: the user's own task is back


@dataclass(frozen=True)
class TaskChoice:
    """The task (and loss) to train a folder with, and whether PTM Studio chose it.

    ``replaced`` holds the user's own (task, loss) while an automatic choice stands in for it,
    so the switch can be undone when its reason goes away; None when the task is the user's.
    """

    task: str
    loss: str
    replaced: tuple[str, str] | None = None
    change: str = TASK_UNCHANGED

    @property
    def is_automatic(self) -> bool:
        return self.replaced is not None


def needs_pretraining(scan: DatasetScan | None) -> bool:
    """Pictures without any class folders: only pretraining can learn from them."""
    return scan is not None and scan.layout == "unlabeled" and bool(scan.records)


def choose_task(
    scan: DatasetScan | None,
    objective: ObjectiveConfig,
    earlier: TaskChoice | None,
    *,
    user_chose_task: bool = False,
) -> TaskChoice:
    """The task for the folder ``scan`` describes, never overriding a choice the user made.

    Args:
        scan: the folder just looked at (None: none, or it could not be read).
        objective: the task and loss the settings hold now.
        earlier: the automatic choice made for an earlier folder, if any. When the settings no
            longer hold its task, someone (the user, a resumed run) chose another since: it is
            theirs, and no longer undone.
        user_chose_task: the user chose the task themselves (in the Task box, by resuming a
            run, in an earlier session): it is never changed for them.

    A folder of pictures without classes switches finetuning to pretraining (the only task it
    can train); any other folder undoes that switch, back to the user's own task and loss.
    """
    if earlier is not None and (not earlier.is_automatic or earlier.task != objective.task):
        earlier = None
    if user_chose_task and earlier is None:
        return TaskChoice(objective.task, objective.loss)
    if needs_pretraining(scan):
        if earlier is not None:
            return replace(earlier, loss=objective.loss, change=TASK_SWITCH_KEPT)
        if objective.task == "pretrain":
            return TaskChoice(objective.task, objective.loss)  # the user's own choice
        loss = objective.loss if objective.loss in PRETRAIN_LOSSES else PRETRAIN_LOSSES[0]
        return TaskChoice("pretrain", loss, (objective.task, objective.loss), TASK_SWITCHED)
    if earlier is not None and earlier.replaced is not None:
        task, loss = earlier.replaced
        if loss not in (PRETRAIN_LOSSES if task == "pretrain" else SUPERVISED_LOSSES):
            loss = SUPERVISED_LOSSES[0]
        return TaskChoice(task, loss, None, TASK_RESTORED)
    return TaskChoice(objective.task, objective.loss)


def with_task(config: RunConfig, choice: TaskChoice) -> RunConfig:
    """``config`` training with the task and loss of ``choice``."""
    objective = replace(config.objective, task=choice.task, loss=choice.loss)
    return replace(config, objective=objective)


def as_the_user_chose(config: RunConfig, choice: TaskChoice | None) -> RunConfig:
    """``config`` with an automatic task choice undone: what to remember for the next launch
    (that folder switches it again, and says so)."""
    if choice is None or choice.replaced is None or config.objective.task != choice.task:
        return config
    task, loss = choice.replaced
    return with_task(config, TaskChoice(task, loss))


@dataclass(frozen=True)
class DurationEstimate:
    """How long a run will take, measured on this computer (see engine/speed.py)."""

    costs: EpochCosts  # each epoch's seconds (the first ones may differ from the rest)
    epochs: int
    how: str
    memory_note: str = ""  # what the run needs of the graphics card's memory, when it has one
    # Getting ready (reading the folder, building the network), as long as it took here: on
    # a small folder it is a good part of the wait.
    setup_seconds: float = 0.0
    planned_by_budget: bool = False  # the epochs a time budget planned (see for_run_of)

    @property
    def run_costs(self) -> EpochCosts:
        return self.costs.for_run_of(self.epochs) if self.planned_by_budget else self.costs

    @property
    def seconds_per_epoch(self) -> float:
        """On average over the run's epochs."""
        return self.run_costs.average(self.epochs)

    @property
    def total_seconds(self) -> float:
        return self.setup_seconds + self.run_costs.total(self.epochs)


def estimate_duration(config: RunConfig, scan: DatasetScan | None = None) -> DurationEstimate:
    """Build the run's parts (nothing is written), time a few of its steps, and scale them to
    its epochs: the figure shown before Start. Raises what building raises (DatasetError…)."""
    from ptm_studio.core.engine.parts import build_training
    from ptm_studio.core.engine.speed import measure_speed
    from ptm_studio.core.engine.time_budget import plan_for_budget

    started = time.perf_counter()
    parts = build_training(config, scan=scan)
    setup = time.perf_counter() - started
    measured = measure_speed(parts)
    memory = measured.gpu_memory.describe() if measured.gpu_memory else ""
    costs = measured.epoch_costs(len(parts.split.train), parts.task.checked_pictures())
    if config.optim.time_budget_minutes > 0:  # the epochs the run will plan, the same way
        plan = plan_for_budget(measured, parts)
        return DurationEstimate(
            costs, plan.epochs, plan.describe(), memory, setup, planned_by_budget=True
        )
    return DurationEstimate(costs, config.optim.num_epochs, measured.describe(), memory, setup)
