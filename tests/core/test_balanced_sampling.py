"""Uneven classes (issue 12): balanced sampling draws each class equally often, its order still
depending only on (seed, epoch) so a run resumes mid-epoch exactly; balanced accuracy and
macro-F1 are kept and said beside accuracy."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.events import EpochFinished
from ptm_studio.core.engine.parts import build_training
from ptm_studio.core.engine.sampling import ResumableShuffleSampler, balanced_draw

UNEVEN = [0] * 900 + [1] * 90 + [2] * 10  # 90 : 9 : 1


def test_every_class_is_drawn_about_equally_often() -> None:
    drawn = Counter(UNEVEN[index] for index in balanced_draw(UNEVEN, seed=3, epoch_index=0))
    assert sum(drawn.values()) == len(UNEVEN)
    for label in (0, 1, 2):
        assert 280 <= drawn[label] <= 390, drawn  # a third each, give or take the draw


def test_the_draw_depends_only_on_seed_and_epoch_and_resumes_where_it_stopped() -> None:
    assert balanced_draw(UNEVEN, 3, 1) == balanced_draw(UNEVEN, 3, 1)
    assert balanced_draw(UNEVEN, 3, 1) != balanced_draw(UNEVEN, 3, 2)
    sampler = ResumableShuffleSampler(len(UNEVEN), seed=3, balance_by=UNEVEN)
    sampler.set_epoch(1)
    whole = list(sampler)
    sampler.set_epoch(1, start_index=400)
    assert list(sampler) == whole[400:] and len(sampler) == len(UNEVEN) - 400


def test_a_run_with_balanced_sampling_draws_its_rare_class_as_often(
    tiny_config: Callable[..., RunConfig],
) -> None:
    config = replace_field(tiny_config(), "data.balanced_sampling", True)
    parts = build_training(config)
    sampler = parts.task.train_sampler
    labels = sampler.balance_by
    assert labels is not None and len(labels) == len(parts.split.train)
    plain = build_training(tiny_config()).task.train_sampler
    assert plain.balance_by is None and sorted(plain) == list(range(len(labels)))


def test_balanced_accuracy_and_macro_f1_are_kept_and_said_beside_accuracy(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training_helpers import TINY_CLI_TRAINING

    from ptm_studio.cli import EXIT_OK, main

    run = tmp_path / "run"
    command = ["train", "--data", str(tiny_dataset), "--output", str(run), *TINY_CLI_TRAINING]
    assert main([*command, "--balanced-sampling"]) == EXIT_OK
    said = capsys.readouterr().out
    line = next(line for line in said.splitlines() if line.startswith("Best epoch, balanced:"))
    assert "accuracy " in line and "macro-F1 " in line and "(epoch 1)" in line
    epochs = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"epoch"' in line and json.loads(line).get("type") == "epoch"
    ]
    assert epochs and 0.0 <= epochs[0]["val_balanced_accuracy"] <= 1.0
    assert 0.0 <= epochs[0]["val_macro_f1"] <= 1.0


def test_an_epoch_that_always_answers_the_largest_class_scores_one_in_the_classes() -> None:
    matrix = np.array([[8, 0, 0], [1, 0, 0], [1, 0, 0]])  # 80 % accurate, learnt nothing
    event = EpochFinished(1, 1, 1.0, 0.8, 1.0, 0.8, 1.0, 1e-3, 1.0, True, confusion_matrix=matrix)
    assert event.val_balanced_accuracy == pytest.approx(1 / 3)
