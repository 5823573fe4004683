"""What a trained model learned, measured on its validation pictures, in words a user can act on.

:func:`evaluate_run` loads a run's checkpoint (best, else last; or one given), predicts the
validation pictures of the run's own split, and returns an :class:`Evaluation`: accuracy with a
95 % interval (so 9 pictures are told from 900), balanced accuracy, macro-F1, per-class scores,
the confusion matrix and its largest mix-ups, plain warnings where the numbers mislead, and the
calibration (one temperature fitted on these pictures; saved beside the weights, so every later
prediction shows honest confidences). :func:`evaluate_logits` does the measuring alone, for
logits from anywhere.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptm_studio.core.atomic_io import json_safe
from ptm_studio.core.calibration import Calibration, calibrate, save_calibration, softmax
from ptm_studio.core.checkpoints import META_FILE, CheckpointError, read_meta
from ptm_studio.core.engine.events import PredictionRecord
from ptm_studio.core.engine.setup import validation_records
from ptm_studio.core.inference import Predictor, model_digest
from ptm_studio.core.metrics import (
    accuracy,
    balanced_accuracy,
    confusion_matrix,
    macro_f1,
    most_confused_pairs,
    per_class_report,
    wilson_interval,
)
from ptm_studio.core.run_models import model_checkpoint
from ptm_studio.core.runs import load_run

LOGGER = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
FEW_PICTURES_PER_CLASS = 5  # fewer validation pictures than this: the class's scores are noise
ONE_CLASS_SHARE = 0.9  # this share of all answers for one class: the model has stopped looking
TOP_K = 5


@dataclass(frozen=True)
class ClassScores:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # validation pictures of the class


@dataclass(frozen=True)
class Evaluation:
    """A model measured on labelled pictures (see the module docstring)."""

    class_names: tuple[str, ...]
    num_pictures: int
    accuracy: float
    accuracy_interval: tuple[float, float]  # 95 % Wilson interval
    balanced_accuracy: float
    macro_f1: float
    per_class: tuple[ClassScores, ...]
    confusion: np.ndarray  # [true, predicted] counts
    confused_pairs: tuple[tuple[str, str, int], ...]  # (true, taken for, pictures)
    warnings: tuple[str, ...]
    calibration: Calibration
    records: tuple[PredictionRecord, ...]  # one per picture, with calibrated confidences
    left_out: tuple[tuple[str, str], ...] = ()  # (path, why): unreadable, or a class unknown
    checkpoint: Path | None = None

    def summary(self) -> str:
        """ "Accuracy 76 % ± 3 (95 % interval 73–79 %, 693 pictures)…" """
        if self.num_pictures == 0:
            return "No validation pictures could be read: nothing to measure."
        low, high = self.accuracy_interval
        below, above = round(100 * (self.accuracy - low)), round(100 * (high - self.accuracy))
        # The Wilson interval is lopsided near 0 and 100 %: "± 7" at 100 % would reach 107.
        spread = f"± {below}" if below == above else f"−{below}/+{above}"
        return (
            f"Accuracy {100 * self.accuracy:.0f} % {spread} (95 % interval "
            f"{100 * low:.0f}–{100 * high:.0f} %, {self.num_pictures} pictures); balanced "
            f"accuracy {100 * self.balanced_accuracy:.0f} %, macro-F1 {self.macro_f1:.2f}."
        )

    def as_json(self) -> dict[str, Any]:
        """Everything but the per-picture records, as plain JSON values (NaN becomes null)."""
        calibration = self.calibration
        return json_safe(
            {
                "checkpoint": str(self.checkpoint) if self.checkpoint else None,
                "class_names": list(self.class_names),
                "pictures": self.num_pictures,
                "accuracy": self.accuracy,
                "accuracy_interval_95": list(self.accuracy_interval),
                "balanced_accuracy": self.balanced_accuracy,
                "macro_f1": self.macro_f1,
                "per_class": [dataclasses.asdict(scores) for scores in self.per_class],
                "confusion": self.confusion.astype(int).tolist(),
                "most_confused": [
                    {"true": true, "predicted": predicted, "pictures": count}
                    for true, predicted, count in self.confused_pairs
                ],
                "warnings": list(self.warnings),
                "calibration": {
                    "temperature": calibration.temperature,
                    "nll_before": calibration.nll_before,
                    "nll_after": calibration.nll_after,
                    "ece_before": calibration.ece_before,
                    "ece_after": calibration.ece_after,
                    "bins_before": [dataclasses.asdict(b) for b in calibration.bins_before],
                    "bins_after": [dataclasses.asdict(b) for b in calibration.bins_after],
                },
                "left_out": [{"path": path, "reason": why} for path, why in self.left_out],
            }
        )

    def describe_confusions(self) -> tuple[str, ...]:
        return tuple(
            f"'{true}' taken for '{predicted}': {count} picture{'s' if count != 1 else ''}"
            for true, predicted, count in self.confused_pairs
        )


def evaluate_logits(
    logits: np.ndarray,
    targets: np.ndarray,
    class_names: Sequence[str],
    paths: Sequence[str],
) -> Evaluation:
    """Measure logits against the true classes (``targets``, indices into ``class_names``)."""
    names = tuple(class_names)
    targets = np.asarray(targets, dtype=np.int64)
    calibration = calibrate(logits, targets)
    probabilities = softmax(logits, calibration.temperature)
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(targets, predictions, len(names))
    report = per_class_report(matrix, names)
    correct = int((predictions == targets).sum())
    return Evaluation(
        class_names=names,
        num_pictures=len(targets),
        accuracy=accuracy(targets, predictions),
        accuracy_interval=wilson_interval(correct, len(targets)),
        balanced_accuracy=balanced_accuracy(matrix),
        macro_f1=macro_f1(report),
        per_class=tuple(
            ClassScores(
                name=str(row["class_name"]),
                precision=float(row["precision"]),
                recall=float(row["recall"]),
                f1=float(row["f1"]),
                support=int(row["support"]),
            )
            for row in report
        ),
        confusion=matrix,
        confused_pairs=most_confused_pairs(matrix, names),
        warnings=result_warnings(matrix, names, predictions),
        calibration=calibration,
        records=_records(paths, targets, probabilities),
    )


def result_warnings(
    matrix: np.ndarray, class_names: Sequence[str], predictions: np.ndarray
) -> tuple[str, ...]:
    """Where the numbers mislead, in plain words: guessing, one answer for everything, classes
    with too few pictures to judge."""
    total = int(matrix.sum())
    if total == 0:
        return ()
    warnings = []
    counts = np.bincount(predictions, minlength=len(class_names))
    favourite = int(counts.argmax())
    share = counts[favourite] / total
    true_shares = matrix.sum(axis=1) / total
    correct = np.trace(matrix) / total
    # Answering one class for nearly everything is only a problem when the other classes are
    # missed: with 95 cats and 5 dogs, all right, the share is just the data's.
    halfway_to_perfect = (1 + 1 / len(class_names)) / 2
    if (
        len(class_names) > 1
        and share >= ONE_CLASS_SHARE
        and (balanced_accuracy(matrix) < halfway_to_perfect)
    ):
        warnings.append(
            f"The model answers '{class_names[favourite]}' for {100 * share:.0f} % of the "
            "pictures: it has learnt which class is most common, not how to tell them apart."
        )
    elif correct <= max(1 / len(class_names), float(true_shares.max())) + 0.01:
        warnings.append(
            f"The accuracy ({100 * correct:.0f} %) is no better than always answering the "
            f"largest class ({100 * true_shares.max():.0f} %) or guessing "
            f"({100 / len(class_names):.0f} %): the model has not learnt these classes yet."
        )
    few = [
        f"'{name}' ({int(matrix[index].sum())})"
        for index, name in enumerate(class_names)
        if matrix[index].sum() < FEW_PICTURES_PER_CLASS
    ]
    if few:
        warnings.append(
            f"Few validation pictures for {', '.join(few)}: their scores can change a lot with "
            "a single picture. Add pictures, or make a val/ folder with more of them."
        )
    return tuple(warnings)


def evaluate_run(
    run_dir: Path,
    *,
    checkpoint: Path | None = None,
    device: str = "auto",
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    save: bool = True,
) -> Evaluation:
    """Evaluate a finetuning run on the validation pictures it was given when it started
    (engine.setup.validation_records), with ``checkpoint`` or the run's model checkpoint; with
    ``save``, the fitted temperature is kept beside those weights.

    Raises:
        CheckpointError: no usable checkpoint, or a pretraining run (no classes).
        DatasetError: the run's pictures are not there, or have no validation part.
        PredictionCancelled: ``should_stop`` returned True.
    """
    run = load_run(run_dir)
    folder = Path(checkpoint) if checkpoint is not None else model_checkpoint(run.path)
    if read_meta(folder).get("task") == "pretrain":
        raise CheckpointError(
            f"{run.path}: a pretraining run has no classes to evaluate. Finetune it on labelled "
            "pictures first, then evaluate that run."
        )
    validation = validation_records(run)
    predictor = Predictor.from_run(folder, device=device)
    index = {name: position for position, name in enumerate(predictor.class_names)}
    known = [record for record in validation if record.class_name in index]
    # A class added to the folder after training cannot be scored: say so, picture by picture.
    left_out = {
        str(record.path): f"its class '{record.class_name}' is not one the model was trained on"
        for record in validation
        if record.class_name not in index
    }
    scores = predictor.score_paths(
        [record.path for record in known], on_progress=on_progress, should_stop=should_stop
    )
    class_of = {record.path: record.class_name or "" for record in known}
    finite = np.isfinite(scores.logits).all(axis=1)  # an overflow would spoil every measure
    left_out.update(
        (str(path), "the model's output for it was not a number")
        for path, is_finite in zip(scores.paths, finite, strict=True)
        if not is_finite
    )
    paths = [path for path, is_finite in zip(scores.paths, finite, strict=True) if is_finite]
    targets = np.array([index[class_of[path]] for path in paths], dtype=np.int64)
    evaluation = evaluate_logits(
        scores.logits[finite], targets, predictor.class_names, [str(path) for path in paths]
    )
    if save and evaluation.num_pictures:
        _save_calibration_if_same_weights(folder, evaluation, predictor.model_digest)
    left_out.update((str(path), reason) for path, reason in scores.unreadable.items())
    return dataclasses.replace(evaluation, left_out=tuple(left_out.items()), checkpoint=folder)


def _save_calibration_if_same_weights(
    folder: Path, evaluation: Evaluation, digest: str | None
) -> None:
    """Save the temperature beside the weights it was fitted for, unless training replaced
    them while the evaluation ran (the new weights would get another model's temperature)."""
    now = model_digest(read_meta(folder)) if (folder / META_FILE).exists() else None
    if digest is None or now != digest:
        LOGGER.warning("%s changed during the evaluation: its calibration is not saved", folder)
        return
    save_calibration(folder, evaluation.calibration, evaluation.num_pictures, digest)


def _records(
    paths: Sequence[str], targets: np.ndarray, probabilities: np.ndarray
) -> tuple[PredictionRecord, ...]:
    if not len(targets):
        return ()
    k = min(TOP_K, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    true_probability = probabilities[np.arange(len(targets)), targets]
    losses = -np.log(np.clip(true_probability, 1e-12, 1.0))
    return tuple(
        PredictionRecord(
            path=str(path),
            true_index=int(targets[row]),
            predicted_index=int(order[row, 0]),
            confidence=float(probabilities[row, order[row, 0]]),
            loss=float(losses[row]) if math.isfinite(losses[row]) else float("inf"),
            top_indices=tuple(int(i) for i in order[row]),
            top_probabilities=tuple(float(probabilities[row, i]) for i in order[row]),
        )
        for row, path in enumerate(paths)
    )
