"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ptm_studio.core.metrics import (
    accuracy,
    confusion_matrix,
    macro_f1,
    per_class_report,
    top_k_accuracy,
)


def test_confusion_matrix_rows_are_true_classes() -> None:
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_accuracy_and_empty_input() -> None:
    assert accuracy(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == 0.75
    assert math.isnan(accuracy(np.array([]), np.array([])))


def test_top_k_accuracy() -> None:
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.4, 0.35, 0.25]])
    targets = np.array([1, 2, 2])
    assert top_k_accuracy(probabilities, targets, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(probabilities, targets, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(probabilities, targets, 5) == 1.0  # k capped at the class count


def test_per_class_precision_recall_f1() -> None:
    matrix = np.array([[2, 1], [0, 3]])  # class a: 2 right, 1 called b; class b: all 3 right
    report = per_class_report(matrix, ["a", "b"])
    assert report[0] == {
        "class_name": "a",
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert report[1]["precision"] == pytest.approx(0.75)
    assert report[1]["recall"] == 1.0
    assert report[1]["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert macro_f1(report) == pytest.approx((0.8 + 1.5 / 1.75) / 2)


def test_class_never_predicted_has_zero_precision_not_nan() -> None:
    report = per_class_report(np.array([[0, 2], [0, 2]]), ["a", "b"])
    assert report[0]["precision"] == 0.0 and report[0]["f1"] == 0.0
