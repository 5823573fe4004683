""" "Did pretraining help?": finetune the same data twice, from a pretrained backbone and from an
alternative start (random weights, or ImageNet), with the same split, seed and budget.

Both arms use one config that differs only in ``model.weights``; each arm is an ordinary run
folder, so its curves and predictions can be opened like any other run.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import EpochFinished, TrainingFinished, TrainingStarted
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.transfer_recipe import (
    RECIPE_SETTINGS,
    TRANSFER_MODE,
    with_transfer_recipe,
)

ALTERNATIVES = ("random", "imagenet")
# Like with like: both starts are judged by the same rule, said with the verdict.
COMPARED_RULE = "comparing each run's best epoch, the one it keeps"


@dataclass(frozen=True)
class ComparisonArm:
    """One finetuning run of the comparison."""

    label: str  # "pretrained", "random" or "imagenet"
    seed: int
    finished: TrainingFinished
    val_accuracy_per_epoch: tuple[float, ...]
    val_loss_per_epoch: tuple[float, ...]
    labelled_pictures: int = 0  # training pictures with labels the run learnt from
    classes: int = 0

    @property
    def final_val_accuracy(self) -> float:
        return self.finished.final_val_accuracy

    @property
    def compared_accuracy(self) -> float:
        """The best epoch's validation accuracy (the model the run keeps), for every arm."""
        best = self.finished.best_val_accuracy
        return best if math.isfinite(best) else self.finished.final_val_accuracy


@dataclass(frozen=True)
class ComparisonResult:
    arms: tuple[ComparisonArm, ...]

    def accuracies(self, label: str) -> list[float]:
        return [arm.compared_accuracy for arm in self.arms if arm.label == label]

    def mean_accuracy(self, label: str) -> float:
        values = [value for value in self.accuracies(label) if math.isfinite(value)]
        return statistics.fmean(values) if values else float("nan")

    def differences(self, alternative: str) -> list[float]:
        """Per seed: pretrained minus alternative best validation accuracy, in points."""
        by_seed: dict[int, dict[str, float]] = {}
        for arm in self.arms:
            by_seed.setdefault(arm.seed, {})[arm.label] = arm.compared_accuracy
        return [
            100 * (pair["pretrained"] - pair[alternative])
            for pair in by_seed.values()
            if "pretrained" in pair
            and alternative in pair
            and math.isfinite(pair["pretrained"] - pair[alternative])
        ]

    def verdict(self, alternative: str) -> str:
        """One plain sentence for the user; a win must hold for every seed to count."""
        differences = self.differences(alternative)
        if not differences:
            return "The comparison did not finish, so there is no verdict yet."
        mean = statistics.fmean(differences)
        consistent = all(d > 0 for d in differences) or all(d < 0 for d in differences)
        if abs(mean) < 1 or not consistent:
            spread = (
                f", seeds ranged {min(differences):+.1f} to {max(differences):+.1f}"
                if len(differences) > 1
                else ""
            )
            return (
                f"Pretraining made no clear difference ({mean:+.1f} points on average{spread}; "
                f"{COMPARED_RULE})."
            )
        better = "helped" if mean > 0 else "did not help"
        seeds = f", every one of {len(differences)} seeds" if len(differences) > 1 else ""
        return (
            f"Pretraining {better}: {mean:+.1f} points of validation accuracy against "
            f"{alternative}{seeds} ({COMPARED_RULE})."
        )


def comparison_config(
    base: RunConfig,
    start: str,
    pretrained_run: Path,
    seed: int,
    keep: Collection[str] = RECIPE_SETTINGS,
) -> RunConfig:
    """The finetuning config of one arm: same everything but the starting weights, and for
    the pretrained arm the transfer recipe (objectives/transfer.py), except for the settings
    in ``keep`` (the user's choices; by default every setting stays as ``base`` has it)."""
    config = dataclasses.replace(base, seed=seed)
    config = replace_field(config, "objective.task", "finetune")
    if start == "pretrained":
        config = replace_field(config, "model.weights", "run")
        config = replace_field(config, "model.weights_path", str(pretrained_run))
        config = with_transfer_recipe(config, keep)
    else:
        config = replace_field(config, "model.weights", start)
        config = replace_field(config, "model.weights_path", None)
        if config.model.training_mode == TRANSFER_MODE and "model.training_mode" not in keep:
            # Random weights have nothing to keep; fitting their last layer first did not help
            # them (flowers, 10 % of the labels: 56.0 % against 57.1 %).
            config = replace_field(config, "model.training_mode", "full_finetune")
    name = base.run_name or "comparison"
    return replace_field(config, "run_name", f"{name} - from {start} - seed {seed}").validate()


def compare_initialisations(
    base: RunConfig,
    pretrained_run: Path,
    *,
    alternative: str = "random",
    seeds: Sequence[int] = (0,),
    runs_root: Path | None = None,
    callbacks_for: Callable[[str, int], Iterable[Callback]] | None = None,
    stop_request: StopRequest | None = None,
    keep: Collection[str] = RECIPE_SETTINGS,
) -> ComparisonResult:
    """Finetune from ``pretrained_run`` and from ``alternative`` for every seed, one after
    another. ``keep``: see comparison_config."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")
    stop_request = stop_request or StopRequest()
    arms: list[ComparisonArm] = []
    for seed in seeds:
        for start in ("pretrained", alternative):
            if stop_request.is_requested:
                return ComparisonResult(tuple(arms))
            recorder = EventRecorder()
            extra = list(callbacks_for(start, seed)) if callbacks_for else []
            trainer = Trainer.new_run(
                comparison_config(base, start, pretrained_run, seed, keep),
                callbacks=[recorder, *extra],
                stop_request=stop_request,
                runs_root=runs_root,
            )
            finished = trainer.run()
            epochs = [event for event in recorder.events if isinstance(event, EpochFinished)]
            started = [event for event in recorder.events if isinstance(event, TrainingStarted)]
            arms.append(
                ComparisonArm(
                    label=start,
                    seed=seed,
                    finished=finished,
                    val_accuracy_per_epoch=tuple(event.val_accuracy for event in epochs),
                    val_loss_per_epoch=tuple(event.val_loss for event in epochs),
                    labelled_pictures=started[0].num_train_images if started else 0,
                    classes=len(started[0].class_names) if started else 0,
                )
            )
    return ComparisonResult(tuple(arms))


@dataclass(frozen=True)
class LabelFractionPoint:
    """The comparison at one share of the labels."""

    fraction: float
    result: ComparisonResult

    @property
    def labelled_pictures(self) -> int:
        """Training pictures with labels (the same for every arm: one split per seed)."""
        counts = [arm.labelled_pictures for arm in self.result.arms if arm.labelled_pictures]
        return round(statistics.fmean(counts)) if counts else 0

    @property
    def per_class(self) -> int:
        classes = max((arm.classes for arm in self.result.arms), default=0)
        return round(self.labelled_pictures / classes) if classes else 0

    def spread(self, label: str) -> tuple[float, float, float]:
        """(lowest, mean, highest) accuracy of the seeds of one start."""
        values = [value for value in self.result.accuracies(label) if math.isfinite(value)]
        if not values:
            return (math.nan, math.nan, math.nan)
        return (min(values), statistics.fmean(values), max(values))


@dataclass(frozen=True)
class LabelFractionCurve:
    """Accuracy against the labels used, from the pretraining run and from the alternative."""

    points: tuple[LabelFractionPoint, ...]
    alternative: str = "random"

    def verdict(self) -> str:
        """One sentence per share of the labels, fewest labels first."""
        lines = []
        for point in sorted(self.points, key=lambda point: point.fraction):
            differences = point.result.differences(self.alternative)
            if not differences:
                continue
            mean = statistics.fmean(differences)
            every = all(d > 0 for d in differences) or all(d < 0 for d in differences)
            held = f"every one of {len(differences)} seeds" if every else "not every seed"
            lines.append(
                f"With {point.per_class} labelled pictures per class "
                f"({100 * point.fraction:g} % of the labels), starting from your pretraining is "
                f"worth {mean:+.1f} points against {self.alternative} ({held})."
            )
        if not lines:
            return "The comparison did not finish, so there is no verdict yet."
        return " ".join([*lines, "Each run is judged by its best epoch, the one it keeps."])


def compare_label_fractions(
    base: RunConfig,
    pretrained_run: Path,
    fractions: Sequence[float],
    *,
    on_point: Callable[[LabelFractionPoint], None] | None = None,
    **comparison: Any,
) -> LabelFractionCurve:
    """:func:`compare_initialisations` at each share of the labels (``data.label_fraction``),
    fewest labels first; ``on_point`` hears each share as it is done. A stop keeps what ran."""
    alternative = comparison.get("alternative", "random")
    stop_request = comparison.setdefault("stop_request", StopRequest())
    points: list[LabelFractionPoint] = []
    for fraction in sorted(fractions):
        if stop_request.is_requested:
            break
        config = replace_field(base, "data.label_fraction", fraction)
        named = f"{base.run_name or 'comparison'} - {100 * fraction:g} percent of the labels"
        config = replace_field(config, "run_name", named)  # each run's folder says its share
        point = LabelFractionPoint(
            fraction, compare_initialisations(config, pretrained_run, **comparison)
        )
        points.append(point)
        if on_point is not None:
            on_point(point)
    return LabelFractionCurve(tuple(points), alternative)
