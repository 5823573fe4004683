"""Auto: good settings for any folder on any computer, each choice with a one-line reason.

From what the pictures are (how many, how large, grey or colour, how many per class) and the
computer (a graphics card or processor cores), the recipe chooses the network and its starting
weights (the best there is offline: an earlier pretraining run on the same pictures, ImageNet
weights already on this computer, else random), the image size, batch, optimiser, learning
rate, schedule, random changes, epochs, freeze policy, label smoothing and class weights. The
window and the command line show each choice with its reason; every one can be overridden.
The learning rate is a start: a learning-rate test on the pictures refines it
(:func:`with_tested_rate`).
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data.manifest import DatasetScan
from ptm_studio.core.data.problems import IMBALANCE_WARNING_RATIO
from ptm_studio.core.runs import RunInfo
from ptm_studio.core.transfer_recipe import (
    TRANSFER_BACKBONE_FACTOR,
    TRANSFER_MODE,
    TRANSFER_REASON,
)

SAMPLED_PICTURES = 64  # enough to know the usual size and colour of a folder's pictures
GPU_KINDS = ("cuda", "mps")
FEW_PICTURES = 500  # below this a pretrained network learns its new head first (frozen)
PRETRAINED_RATE, RANDOM_RATE = 3e-4, 1e-3
FEW_PER_CLASS = 100  # below this, random changes help even a short run (less to memorise)
STRONG_IMBALANCE = 8.0  # the largest class this many times the smallest: draw classes evenly


@dataclass(frozen=True)
class PictureFacts:
    """What Auto looks at in a folder."""

    training_pictures: int
    class_counts: tuple[int, ...]  # training pictures per class
    typical_side: int  # the median of the pictures' shorter sides, in pixels
    grey_share: float  # share of sampled pictures that are greyscale

    @property
    def is_grey(self) -> bool:
        return self.grey_share >= 0.9

    @property
    def imbalance(self) -> float:
        counts = [count for count in self.class_counts if count > 0]
        return max(counts) / min(counts) if len(counts) >= 2 else 1.0


@dataclass(frozen=True)
class Computer:
    """Where the run will train: ``kind`` cuda, mps or cpu."""

    kind: str
    name: str = ""

    @property
    def has_gpu(self) -> bool:
        return self.kind in GPU_KINDS


@dataclass(frozen=True)
class Choice:
    setting: str  # dotted name, e.g. "model.backbone"
    value: object
    reason: str


@dataclass(frozen=True)
class Recipe:
    """The settings Auto chose (applied to a config) and why, setting by setting."""

    config: RunConfig
    choices: tuple[Choice, ...]

    def reason_for(self, setting: str) -> str:
        return next((choice.reason for choice in self.choices if choice.setting == setting), "")

    def describe(self) -> list[str]:
        return [f"{choice.setting} = {choice.value}: {choice.reason}" for choice in self.choices]


def picture_facts(scan: DatasetScan, *, seed: int = 0) -> PictureFacts:
    """The folder's facts from its scan and a sample of its pictures (headers only: cheap)."""
    pool = "train" if scan.layout == "split_folders" else "unassigned"
    counts = scan.count_by_class(pool)
    records = [record for record in scan.records if record.split in (pool, "unassigned")]
    sample = random.Random(seed).sample(records, min(SAMPLED_PICTURES, len(records)))
    sides, grey = [], 0
    for record in sample:
        try:
            with Image.open(record.path) as image:
                sides.append(min(image.size))
                grey += image.mode in ("1", "L", "LA", "I", "I;16", "F")
        except (OSError, ValueError):
            continue  # vanished or unreadable since the scan: the others tell enough
    return PictureFacts(
        training_pictures=sum(counts.values()) if counts else len(records),
        class_counts=tuple(counts.values()),
        typical_side=int(statistics.median(sides)) if sides else 64,
        grey_share=grey / len(sides) if sides else 0.0,
    )


def choose_recipe(
    config: RunConfig,
    facts: PictureFacts,
    computer: Computer,
    *,
    imagenet_offline: Callable[[str], bool] = lambda _name: False,
    pretraining_run: Path | None = None,
) -> Recipe:
    """Auto's settings for these pictures on this computer, applied to ``config``.

    ``imagenet_offline(backbone)``: whether that network's ImageNet weights are on this
    computer (nothing is downloaded for Auto). ``pretraining_run``: an earlier pretraining run
    on these pictures, when there is one (its backbone is the best start of all).
    """
    choices: list[Choice] = []

    def choose(setting: str, value: object, reason: str) -> None:
        choices.append(Choice(setting, value, reason))

    _choose_network(facts, computer, imagenet_offline, pretraining_run, choose)
    network = next(choice for choice in choices if choice.setting == "model.backbone").value
    pretrained = any(c.setting == "model.weights" and c.value != "random" for c in choices)
    _choose_size_and_batch(facts, computer, str(network), pretrained, choose)
    _choose_training(
        facts, pretrained, config.optim.time_budget_minutes, choose, pretraining_run is not None
    )
    _choose_changes_and_balance(facts, computer, pretrained, choose)
    chosen = config
    for choice in choices:
        chosen = replace_field(chosen, choice.setting, choice.value)
    return Recipe(chosen.validate(), tuple(choices))


def with_tested_rate(recipe: Recipe, suggestion: float | None, rule: str) -> Recipe:
    """The recipe with the learning-rate test's suggestion met halfway (on a log scale) by the
    usual rate Auto started from, when the test made one.

    Why halfway: a test of a hundred steps is noisy. On the flowers from random weights, three
    seeds of the same test suggested 1.2e-4, 5.3e-4 and 6.4e-4 for the same pictures, a factor
    of 5, while a grid of 5-minute runs found 1e-3 best and 3e-4 to 3e-3 within a point or two.
    The geometric mean of the two halves the error of whichever is wrong, and still follows the
    test most of the way where the usual rate is far off (a test saying 1e-1 gives 1e-2)."""
    if suggestion is None:
        return recipe
    usual = recipe.config.optim.learning_rate
    rate = float(f"{math.sqrt(usual * suggestion):.2g}")
    config = replace_field(recipe.config, "optim.learning_rate", rate)
    reason = f"the test suggested {suggestion:.2g} ({rule}), met halfway from the usual {usual:g}"
    choices = [c for c in recipe.choices if c.setting != "optim.learning_rate"]
    choices.append(Choice("optim.learning_rate", rate, reason))
    return dataclasses.replace(recipe, config=config, choices=tuple(choices))


Choose = Callable[[str, object, str], None]


def _choose_network(
    facts: PictureFacts,
    computer: Computer,
    imagenet_offline: Callable[[str], bool],
    pretraining_run: Path | None,
    choose: Choose,
) -> None:
    if pretraining_run is not None:
        choose(
            "model.backbone",
            _backbone_of(pretraining_run),
            "the network your pretraining run on these pictures learnt",
        )
        choose(
            "model.weights", "run", "your pretraining on these pictures: the best start there is"
        )
        choose("model.weights_path", str(pretraining_run), "that pretraining run")
        return
    candidate = "resnet18" if computer.has_gpu else "mobilenet_v3_small"
    if facts.typical_side >= 48 and imagenet_offline(candidate):
        place = "a graphics card" if computer.has_gpu else "the processor"
        choose(
            "model.backbone", candidate, f"ImageNet weights are on this computer; quick on {place}"
        )
        choose(
            "model.weights", "imagenet", "starting from ImageNet learns far more from few pictures"
        )
        return
    why = (
        f"pictures of about {facts.typical_side} px are too small for ImageNet networks"
        if facts.typical_side < 48
        else "no ImageNet weights on this computer (nothing is downloaded without asking)"
    )
    choose(
        "model.backbone", "small_cnn", f"{why}: PTM Studio's own small network learns from scratch"
    )
    choose("model.weights", "random", "no earlier training to start from")


def _backbone_of(run: Path) -> str:
    try:
        return RunConfig.load(run / "config.json").model.backbone
    except (OSError, ValueError):
        return "small_cnn"


def _choose_size_and_batch(
    facts: PictureFacts, computer: Computer, network: str, pretrained: bool, choose: Choose
) -> None:
    side = facts.typical_side
    if side <= 40:
        size, reason = 32, f"pictures are about {side} px: 32 px keeps all they show"
    elif not pretrained:
        size = 64 if side < 160 or not computer.has_gpu else 96
        reason = f"pictures are about {side} px; {size} px is quick for a network from scratch"
    elif computer.has_gpu:
        size, reason = 224, "the size ImageNet networks were trained at, quick on a graphics card"
    else:
        size, reason = 128, "large enough for ImageNet features, small enough for a processor"
    if facts.is_grey:
        reason += " (greyscale pictures)"
    choose("data.image_size", size, reason)
    batch = 64 if computer.has_gpu else 32
    pictures = max(1, facts.training_pictures)
    while batch > 8 and batch * 4 > pictures:
        batch //= 2
    choose("data.batch_size", batch, f"{pictures} training pictures make at least 4 steps an epoch")


def _choose_training(
    facts: PictureFacts,
    pretrained: bool,
    budget_minutes: float,
    choose: Choose,
    from_pretraining: bool = False,
) -> None:
    pictures = facts.training_pictures
    choose("optim.optimizer", "adamw", "works well without tuning for both kinds of start")
    rate = PRETRAINED_RATE if pretrained else RANDOM_RATE
    start = "pretrained weights need a gentler rate" if pretrained else "a usual rate from scratch"
    if from_pretraining:  # the recipe's network learns at a tenth of it already
        rate, start = RANDOM_RATE, "the rate the transfer recipe was measured with"
    choose("optim.learning_rate", rate, f"{start}; a learning-rate test refines it")
    choose("optim.schedule", "cosine", "the rate falls smoothly to the end: steadier last epochs")
    if pretrained:
        choose("optim.warmup_epochs", 1.0, "one gentle epoch first, so the start is not undone")
    else:
        choose("optim.warmup_epochs", 0.0, "random weights have nothing to protect: no warm-up")
    if budget_minutes > 0:
        choose(
            "optim.time_budget_minutes",
            budget_minutes,
            "your time budget: a few steps are timed here and the epochs planned to fit it",
        )
    else:
        epochs = 30 if pictures < 300 else 15 if pictures < 3000 else 8
        choose("optim.num_epochs", epochs, f"{pictures} pictures: more passes for fewer pictures")
    choose(
        "optim.early_stopping_patience",
        5,
        "stops when 5 epochs bring nothing better; keeps the best",
    )
    if from_pretraining:
        choose("model.training_mode", TRANSFER_MODE, TRANSFER_REASON)
        choose(
            "model.backbone_learning_rate_factor",
            TRANSFER_BACKBONE_FACTOR,
            "the network learns at a tenth of the last layer's rate",
        )
    elif pretrained and pictures < FEW_PICTURES:
        choose(
            "model.training_mode",
            "freeze_then_unfreeze",
            f"few pictures ({pictures}): the new last layer learns first, then all",
        )
        choose("model.unfreeze_after_epochs", 2, "two epochs for the new last layer")
    else:
        choose("model.training_mode", "full_finetune", "enough pictures for every layer to learn")


def _choose_changes_and_balance(
    facts: PictureFacts, computer: Computer, pretrained: bool, choose: Choose
) -> None:
    # Random changes make each epoch harder to learn from: they pay off with epochs to spare
    # (a graphics card, or a pretrained start that learns fast) or with few pictures per class
    # to memorise. From scratch on a processor they cost more than they give: on the flowers
    # (557 per class, 5 minutes) flips alone reached 73.7 %, flips, rotations and colour 65.4 %.
    classes = max(1, len([count for count in facts.class_counts if count > 0]))
    per_class = facts.training_pictures / classes
    generous = computer.has_gpu or pretrained or per_class < FEW_PER_CLASS
    changes = ["flip"]
    if generous and facts.typical_side > 40:
        changes.append("small_rotations")
    if generous and facts.training_pictures > 200 and not facts.is_grey:
        changes.append("colour_changes")
    if generous:
        reason = "random changes so the network learns the subject, not the exact picture"
    else:
        reason = (
            f"only flips: {per_class:.0f} pictures per class, a network from scratch on the "
            "processor learns more from clean epochs than from heavier changes"
        )
    if facts.is_grey and generous:
        reason += "; no colour changes for greyscale pictures"
    choose("data.augmentations", tuple(changes), reason)
    classes = len([count for count in facts.class_counts if count > 0])
    smoothing = 0.1 if classes > 10 else 0.0
    choose(
        "objective.label_smoothing",
        smoothing,
        f"{classes} classes" + (": softer targets help" if smoothing else ": not needed"),
    )
    ratio = f"the largest class is {facts.imbalance:.1f} times the smallest"
    # Weighing the mistakes suits a moderate imbalance; a strong one is better met by drawing
    # each class equally often (weights that large make the steps noisy). Never both at once.
    strongly = facts.imbalance >= STRONG_IMBALANCE
    imbalanced = IMBALANCE_WARNING_RATIO <= facts.imbalance < STRONG_IMBALANCE
    choose(
        "objective.use_class_weights",
        imbalanced,
        ratio + (": rare classes weigh more" if imbalanced else ": balanced enough")
        if not strongly
        else ratio + ": classes are drawn equally often instead",
    )
    choose(
        "data.balanced_sampling",
        strongly,
        ratio + ": every class is drawn equally often, a rare class's pictures repeat"
        if strongly
        else "not needed: the classes are not that uneven",
    )


def same_folder_pretraining(runs: Sequence[RunInfo], data_dir: str | None) -> Path | None:
    """The newest completed pretraining run on the folder ``data_dir``, if any."""
    for run in runs:  # newest first (list_runs)
        if run.task != "pretrain" or run.status != "completed":
            continue
        try:
            config = RunConfig.load(run.path / "config.json")
        except (OSError, ValueError):
            continue
        if data_dir is not None and config.data.data_dir == str(Path(data_dir).absolute()):
            return run.path
    return None
