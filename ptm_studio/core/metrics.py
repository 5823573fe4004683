"""Classification metrics: accuracy, top-k, confusion matrix, per-class precision/recall/F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(
    true_indices: np.ndarray, predicted_indices: np.ndarray, num_classes: int
) -> np.ndarray:
    """Rows are true classes, columns predicted ones: ``matrix[t, p]`` counts images."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(
        matrix,
        (np.asarray(true_indices, dtype=np.int64), np.asarray(predicted_indices, dtype=np.int64)),
        1,
    )
    return matrix


def accuracy(true_indices: np.ndarray, predicted_indices: np.ndarray) -> float:
    true_indices = np.asarray(true_indices)
    if true_indices.size == 0:
        return float("nan")
    return float(np.mean(true_indices == np.asarray(predicted_indices)))


def top_k_accuracy(probabilities: np.ndarray, true_indices: np.ndarray, k: int) -> float:
    """Share of images whose true class is among the ``k`` most probable (k capped at the class count)."""
    probabilities = np.asarray(probabilities)
    if probabilities.shape[0] == 0:
        return float("nan")
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == np.asarray(true_indices)[:, None], axis=1)))


def per_class_report(
    matrix: np.ndarray, class_names: Sequence[str]
) -> tuple[dict[str, float | str | int], ...]:
    """Precision, recall, F1 and support for each class. Undefined ratios (0/0) are reported as 0."""
    true_positives = np.diag(matrix).astype(np.float64)
    predicted_totals = matrix.sum(axis=0).astype(np.float64)
    actual_totals = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(
        true_positives,
        predicted_totals,
        out=np.zeros_like(true_positives),
        where=predicted_totals > 0,
    )
    recall = np.divide(
        true_positives, actual_totals, out=np.zeros_like(true_positives), where=actual_totals > 0
    )
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall,
        denominator,
        out=np.zeros_like(true_positives),
        where=denominator > 0,
    )
    return tuple(
        {
            "class_name": name,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(actual_totals[index]),
        }
        for index, name in enumerate(class_names)
    )


def macro_f1(report: Sequence[dict[str, float | str | int]]) -> float:
    scores = [float(row["f1"]) for row in report if int(row["support"]) > 0]
    return float(np.mean(scores)) if scores else float("nan")


def balanced_accuracy(matrix: np.ndarray) -> float:
    """The mean recall over the classes that have validation pictures: a model that always
    answers the largest class scores 1/classes, however large that class is."""
    actual = matrix.sum(axis=1)
    present = actual > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(matrix)[present] / actual[present]))


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (``z`` = 1.96): honest for small counts
    and near 0 or 1, where the usual ± interval is not. ``(nan, nan)`` for no pictures."""
    if total <= 0:
        return float("nan"), float("nan")
    share = successes / total
    denominator = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / denominator
    half_width = z * np.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    half_width /= denominator
    return float(max(0.0, centre - half_width)), float(min(1.0, centre + half_width))


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row as shares of that true class (rows of a class without pictures stay 0)."""
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def most_confused_pairs(
    matrix: np.ndarray, class_names: Sequence[str], limit: int = 5
) -> tuple[tuple[str, str, int], ...]:
    """(true class, class it was taken for, pictures), the largest mix-ups first."""
    pairs = [
        (int(matrix[true, predicted]), true, predicted)
        for true in range(matrix.shape[0])
        for predicted in range(matrix.shape[1])
        if true != predicted and matrix[true, predicted] > 0
    ]
    pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
    return tuple(
        (class_names[true], class_names[predicted], count)
        for count, true, predicted in pairs[:limit]
    )
