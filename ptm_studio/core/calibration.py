"""Calibration: are the model's confidences honest? A network trained with cross-entropy is
often over-confident (it says 95 % where it is right 80 % of the time). One temperature T,
fitted on the validation pictures, divides the logits before the softmax (Guo et al. 2017,
"On calibration of modern neural networks"): the answers stay the same, the confidences
become truthful. A reliability diagram shows it: per confidence bin, how often the answer was
right."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptm_studio.core.atomic_io import write_json_atomic
from ptm_studio.core.config import NOT_SURE as NOT_SURE
from ptm_studio.core.config import NOT_SURE_BELOW as NOT_SURE_BELOW
from ptm_studio.core.file_reading import read_text

NUM_BINS = 10
TEMPERATURE_RANGE = (0.1, 10.0)
# One temperature from a handful of pictures, or from pictures the model never gets wrong, is
# noise: with no mistakes the fit only ever sharpens, to the end of the range, and every later
# answer would look certain. Below these the confidences are left as the model gives them.
MIN_CALIBRATION_PICTURES = 30
MIN_CALIBRATION_MISTAKES = 3


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    return np.asarray(exponentials / exponentials.sum(axis=1, keepdims=True))


def negative_log_likelihood(
    logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0
) -> float:
    """The mean of −log p(true class): what calibration lowers (0 is perfect)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    highest = scaled.max(axis=1, keepdims=True)
    log_sum = highest[:, 0] + np.log(np.exp(scaled - highest).sum(axis=1))
    true_logits = scaled[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)]
    return float(np.mean(log_sum - true_logits))


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The temperature that minimises the validation NLL. The NLL is convex in 1/T, so a
    golden-section search over log T finds the minimum; 1.0 when there is nothing to fit."""
    if len(targets) == 0:
        return 1.0
    low, high = (math.log(bound) for bound in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_temperature: float) -> float:
        return negative_log_likelihood(logits, targets, math.exp(log_temperature))

    left, right = high - ratio * (high - low), low + ratio * (high - low)
    loss_left, loss_right = loss(left), loss(right)
    for _ in range(80):  # the bracket shrinks by 0.618 a step: far below 1e-6 of log T
        if loss_left < loss_right:
            high, right, loss_right = right, left, loss_left
            left = high - ratio * (high - low)
            loss_left = loss(left)
        else:
            low, left, loss_left = left, right, loss_right
            right = low + ratio * (high - low)
            loss_right = loss(right)
    return float(math.exp((low + high) / 2))


@dataclass(frozen=True)
class ReliabilityBin:
    """The pictures whose confidence fell in [lower, upper): how confident, how often right."""

    lower: float
    upper: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability_bins(
    probabilities: np.ndarray, targets: np.ndarray, num_bins: int = NUM_BINS
) -> tuple[ReliabilityBin, ...]:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(targets)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # The last bin includes 1.0 itself.
    which = np.minimum(np.digitize(confidence, edges[1:-1], right=False), num_bins - 1)
    bins = []
    for index in range(num_bins):
        members = which == index
        count = int(members.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[index]),
                upper=float(edges[index + 1]),
                count=count,
                mean_confidence=float(confidence[members].mean()) if count else float("nan"),
                accuracy=float(correct[members].mean()) if count else float("nan"),
            )
        )
    return tuple(bins)


def expected_calibration_error(bins: tuple[ReliabilityBin, ...]) -> float:
    """The gap between confidence and accuracy, averaged over the pictures (0 is perfect)."""
    total = sum(item.count for item in bins)
    if total == 0:
        return float("nan")
    return float(
        sum(item.count * abs(item.mean_confidence - item.accuracy) for item in bins if item.count)
        / total
    )


def calibration_refusal(logits: np.ndarray, targets: np.ndarray) -> str:
    """Why these pictures cannot calibrate the model, in words; empty when they can."""
    pictures = len(targets)
    mistakes = (
        int((np.asarray(logits).argmax(axis=1) != np.asarray(targets)).sum()) if pictures else 0
    )
    if pictures < MIN_CALIBRATION_PICTURES:
        return (
            f"Only {pictures} validation pictures: too few to calibrate the confidences "
            f"(at least {MIN_CALIBRATION_PICTURES} are needed), so they are shown as the "
            "model gives them."
        )
    if mistakes < MIN_CALIBRATION_MISTAKES:
        return (
            f"The model got all but {mistakes} of the {pictures} validation pictures right: too "
            "few mistakes to tell how far its confidence can be trusted, so the confidences "
            "are shown as the model gives them."
        )
    return ""


@dataclass(frozen=True)
class Calibration:
    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    bins_before: tuple[ReliabilityBin, ...]
    bins_after: tuple[ReliabilityBin, ...]
    refusal: str = ""  # why no temperature was fitted (then it is 1.0)

    @property
    def is_fitted(self) -> bool:
        return not self.refusal

    def describe(self) -> str:
        """One sentence for the user."""
        if self.refusal:
            return self.refusal
        if not math.isfinite(self.ece_before):
            return "No validation pictures to calibrate the confidences with."
        if self.temperature > 1.05:
            how = "too sure of itself; its confidences are now lowered"
        elif self.temperature < 0.95:
            how = "too timid; its confidences are now raised"
        else:
            how = "already honest about its confidence"
        return (
            f"The model was {how} (temperature {self.temperature:.2f}): on average its "
            f"confidence was {100 * self.ece_before:.0f} points off how often it is right, "
            f"now {100 * self.ece_after:.0f}."
        )


def calibrate(logits: np.ndarray, targets: np.ndarray) -> Calibration:
    """Fit the temperature (when the pictures allow: :func:`calibration_refusal`) and measure
    the reliability before and after."""
    refusal = calibration_refusal(logits, targets)
    temperature = 1.0 if refusal else fit_temperature(logits, targets)
    before = reliability_bins(softmax(logits), targets)
    after = reliability_bins(softmax(logits, temperature), targets)
    has_pictures = len(targets) > 0
    return Calibration(
        temperature=temperature,
        nll_before=negative_log_likelihood(logits, targets) if has_pictures else math.nan,
        nll_after=negative_log_likelihood(logits, targets, temperature)
        if has_pictures
        else math.nan,
        ece_before=expected_calibration_error(before),
        ece_after=expected_calibration_error(after),
        bins_before=before,
        bins_after=after,
        refusal=refusal,
    )


CALIBRATION_FILE = "calibration.json"


def save_calibration(
    checkpoint_folder: Path, calibration: Calibration, pictures: int, model_digest: str
) -> None:
    """Keep the fitted temperature beside the weights it was fitted for, with their digest: a
    temperature is only ever used with those weights (a newer checkpoint in the same folder
    does not inherit it). Without a fit (too few pictures or mistakes) an older file goes, so
    what is used matches what the evaluation said."""
    target = Path(checkpoint_folder) / CALIBRATION_FILE
    if not calibration.is_fitted:
        target.unlink(missing_ok=True)
        return
    write_json_atomic(
        target,
        {
            "temperature": calibration.temperature,
            "model_sha256": model_digest,
            "fitted_on_pictures": pictures,
            "nll_before": calibration.nll_before,
            "nll_after": calibration.nll_after,
            "ece_before": calibration.ece_before,
            "ece_after": calibration.ece_after,
        },
    )


def saved_temperature(checkpoint_folder: Path, model_digest: str | None) -> float | None:
    """The temperature fitted for exactly these weights (``model_digest``, the sha256 the
    checkpoint's meta.json records), if one was."""
    try:
        data = json.loads(read_text(Path(checkpoint_folder) / CALIBRATION_FILE))
        temperature = float(data["temperature"])
        fitted_for = str(data["model_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    low, high = TEMPERATURE_RANGE
    if not model_digest or fitted_for != model_digest or not low <= temperature <= high:
        return None
    return temperature
