"""The learning-failure watch (issue 12): a classifier whose validation stays at what guessing
gives for several epochs is named as not learning, once, with likely causes and what to try."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from training_helpers import train_and_record

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import EpochFinished, LearningAdvice
from ptm_studio.core.engine.policies import NOT_LEARNING_EPOCHS, LearningWatch
from ptm_studio.core.runs import RunDirectory

NAMES = ("daisy", "rose", "tulip")


def _epoch(epoch: int, matrix: list[list[int]]) -> EpochFinished:
    counts = np.asarray(matrix)
    accuracy = float(np.trace(counts) / counts.sum())
    per_class = tuple({"class_name": name} for name in NAMES)
    nan = float("nan")
    return EpochFinished(
        epoch, 10, 1.0, nan, 1.0, accuracy, nan, 1e-3, 1.0, False, per_class, counts
    )


# True class in rows, the model's answer in columns; 60 % of the pictures are daisies.
ALWAYS_DAISY = [[30, 0, 0], [10, 0, 0], [10, 0, 0]]
LEARNING = [[25, 3, 2], [2, 7, 1], [1, 1, 8]]


def _advice_after(matrices: list[list[list[int]]], config: RunConfig) -> list[tuple[str, str]]:
    watch, control, given = LearningWatch(config), TrainingControl(), []
    for epoch, matrix in enumerate(matrices, start=1):
        watch.on_epoch_finished(_epoch(epoch, matrix), control)
        given += control.take_advice()
    return given


def test_answering_the_largest_class_for_several_epochs_is_named_once() -> None:
    given = _advice_after([ALWAYS_DAISY] * (NOT_LEARNING_EPOCHS + 3), RunConfig())
    assert len(given) == 1
    kind, message = given[0]
    assert kind == "not_learning"
    assert "always answering 'daisy'" in message and "60 %" in message
    assert "find a learning rate" in message and "ImageNet weights" in message


def test_a_model_that_learns_or_recovers_is_left_alone() -> None:
    assert _advice_after([LEARNING] * 6, RunConfig()) == []
    stuck_then_learning = [ALWAYS_DAISY] * (NOT_LEARNING_EPOCHS - 1) + [LEARNING] * 3
    assert _advice_after(stuck_then_learning, RunConfig()) == []


def test_balanced_classes_at_chance_are_named_as_random_guessing() -> None:
    at_chance = [[4, 3, 3], [3, 3, 4], [3, 4, 3]]  # 10 of 30 right
    config = replace_field(RunConfig(), "model.weights", "imagenet")
    ((_, message),) = _advice_after([at_chance] * NOT_LEARNING_EPOCHS, config)
    assert "guessing at random (1 in 3)" in message
    assert "ImageNet weights" not in message  # it already starts from them


def _classes_that_look_alike(root: Path) -> Path:
    """Three classes of the same grey pictures: nothing tells them apart."""
    generator = np.random.default_rng(0)
    for name in NAMES:
        (root / name).mkdir(parents=True)
        for index in range(8):
            pixels = np.clip(128 + generator.integers(-3, 4, size=(16, 16, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{index}.png")
    return root


def test_a_real_run_that_cannot_learn_says_so_in_the_run_and_its_record(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    config = tiny_config(num_epochs=NOT_LEARNING_EPOCHS + 1, learning_rate=1e-8)
    pictures = _classes_that_look_alike(tmp_path / "alike")
    config = replace_field(config, "data.data_dir", str(pictures))
    finished, recorder = train_and_record(config, tmp_path / "runs")
    assert finished.status == "completed", finished.error_details
    (advice,) = recorder.of_type(LearningAdvice)
    assert advice.kind == "not_learning" and advice.epochs_completed == NOT_LEARNING_EPOCHS
    assert finished.run_dir is not None
    status = RunDirectory(finished.run_dir).read_status()
    assert status["advice"] == [{"kind": "not_learning", "message": advice.message}]


@pytest.mark.parametrize("epochs", [2])
def test_a_run_that_learns_gets_no_advice(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, epochs: int
) -> None:
    finished, recorder = train_and_record(tiny_config(num_epochs=epochs), tmp_path / "runs")
    assert finished.status == "completed"
    assert recorder.of_type(LearningAdvice) == []
