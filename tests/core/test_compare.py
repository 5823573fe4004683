"""The "did pretraining help?" comparison in core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ptm_studio.core.compare import (
    ComparisonArm,
    ComparisonResult,
    compare_initialisations,
    compare_label_fractions,
    comparison_config,
)
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.events import TrainingFinished
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory
from ptm_studio.core.transfer_recipe import (
    TRANSFER_BACKBONE_FACTOR,
    TRANSFER_MODE,
    with_transfer_recipe,
)


def test_both_arms_share_everything_but_the_starting_weights(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    base = tiny_config()
    pretrained = comparison_config(base, "pretrained", tmp_path / "pre", seed=3)
    random_start = comparison_config(base, "random", tmp_path / "pre", seed=3)
    assert pretrained.model.weights == "run" and pretrained.model.weights_path == str(
        tmp_path / "pre"
    )
    assert random_start.model.weights == "random" and random_start.model.weights_path is None
    assert pretrained.data == random_start.data and pretrained.optim == random_start.optim
    assert pretrained.seed == random_start.seed == 3


def test_the_pretrained_arm_finetunes_with_the_transfer_recipe_the_random_arm_as_usual(
    tiny_config: Callable[..., RunConfig], pretraining_run_folder: Path
) -> None:
    base, run = tiny_config(), pretraining_run_folder
    pretrained = comparison_config(base, "pretrained", run, seed=0, keep=())
    random_start = comparison_config(base, "random", run, seed=0, keep=())
    assert pretrained.model.training_mode == TRANSFER_MODE
    assert pretrained.model.backbone_learning_rate_factor == TRANSFER_BACKBONE_FACTOR
    assert random_start.model.training_mode == "full_finetune"
    # A mode the user chose is theirs, for both arms.
    chosen = replace_field(base, "model.training_mode", "feature_extraction")
    for start in ("pretrained", "random"):
        config = comparison_config(chosen, start, run, seed=0, keep={"model.training_mode"})
        assert config.model.training_mode == "feature_extraction"


def test_the_recipe_is_only_for_a_start_from_pretraining(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, pretraining_run_folder: Path
) -> None:
    finetuned = RunDirectory.create(tmp_path, "finetuned")
    finetuned.write_config(RunConfig())
    for weights, path in (("run", str(finetuned.path)), ("run", str(tmp_path / "gone"))):
        config = replace_field(tiny_config(), "model.weights", weights)
        config = replace_field(config, "model.weights_path", path)
        assert with_transfer_recipe(config) == config
    config = replace_field(tiny_config(), "model.weights", "run")
    config = replace_field(config, "model.weights_path", str(pretraining_run_folder))
    assert with_transfer_recipe(config).model.training_mode == TRANSFER_MODE


def _trained_pretraining_run(tiny_config: Callable[..., RunConfig], runs_root: Path) -> Path:
    """A real one-epoch rotation pretraining of the tiny dataset."""
    pretrain = replace_field(
        replace_field(tiny_config(num_epochs=1), "objective.task", "pretrain"),
        "objective.loss",
        "rotation",
    )
    pretrained = Trainer.new_run(pretrain, runs_root=runs_root).run()
    assert pretrained.run_dir is not None
    return pretrained.run_dir


def test_comparison_runs_both_arms_per_seed(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    pretrained_run = _trained_pretraining_run(tiny_config, tmp_path)
    result = compare_initialisations(
        tiny_config(), pretrained_run, seeds=(0, 1), runs_root=tmp_path
    )
    assert [(arm.label, arm.seed) for arm in result.arms] == [
        ("pretrained", 0),
        ("random", 0),
        ("pretrained", 1),
        ("random", 1),
    ]
    for arm in result.arms:
        assert arm.finished.status == "completed" and len(arm.val_accuracy_per_epoch) == 2
        config = RunDirectory(arm.finished.run_dir).read_config()  # type: ignore[arg-type]
        assert config.seed == arm.seed
    assert result.verdict("random").startswith("Pretraining")


def _arm(label: str, accuracy: float, seed: int = 0) -> ComparisonArm:
    finished = TrainingFinished("completed", None, 1, accuracy, accuracy, 1.0)
    return ComparisonArm(label, seed, finished, (accuracy,), (1.0,))


def test_verdict_in_plain_words() -> None:
    assert ComparisonResult((_arm("pretrained", 0.8), _arm("random", 0.6))).verdict("random") == (
        "Pretraining helped: +20.0 points of validation accuracy against random "
        "(comparing each run's best epoch, the one it keeps)."
    )
    assert "did not help" in ComparisonResult(
        (_arm("pretrained", 0.5), _arm("random", 0.6))
    ).verdict("random")
    assert "no clear difference" in ComparisonResult(
        (_arm("pretrained", 0.6), _arm("random", 0.605))
    ).verdict("random")


def test_both_starts_are_judged_by_their_best_epoch() -> None:
    late_drop = TrainingFinished("completed", None, 3, 0.70, 0.55, 1.0)  # best 70 %, final 55 %
    steady = TrainingFinished("completed", None, 3, 0.62, 0.62, 1.0)
    result = ComparisonResult(
        (
            ComparisonArm("pretrained", 0, late_drop, (0.7, 0.6, 0.55), ()),
            ComparisonArm("random", 0, steady, (0.5, 0.6, 0.62), ()),
        )
    )
    assert result.differences("random") == pytest.approx([8.0])
    assert "best epoch" in result.verdict("random")


def test_a_win_must_hold_for_every_seed() -> None:
    mixed = ComparisonResult(
        (
            _arm("pretrained", 0.63, 0),
            _arm("random", 0.60, 0),
            _arm("pretrained", 0.58, 1),
            _arm("random", 0.59, 1),
        )
    )
    assert mixed.differences("random") == pytest.approx([3.0, -1.0])
    assert (
        mixed.verdict("random")
        == "Pretraining made no clear difference (+1.0 points on average, seeds ranged -1.0 to "
        "+3.0; comparing each run's best epoch, the one it keeps)."
    )


def test_the_label_fraction_curve_holds_the_runs_numbers(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    pretrained_run = _trained_pretraining_run(tiny_config, tmp_path)
    heard: list[float] = []
    curve = compare_label_fractions(
        tiny_config(num_epochs=1),
        pretrained_run,
        (1.0, 0.5),
        seeds=(0, 1),
        runs_root=tmp_path,
        on_point=lambda point: heard.append(point.fraction),
    )
    assert [point.fraction for point in curve.points] == heard == [0.5, 1.0]  # fewest first
    half, whole = curve.points
    assert 0 < half.labelled_pictures < whole.labelled_pictures == 18  # 3 classes of 6
    assert whole.per_class == 6
    for point in curve.points:
        assert len(point.result.arms) == 4
        for label in ("pretrained", "random"):
            runs = [arm.finished.run_dir for arm in point.result.arms if arm.label == label]
            kept = [RunDirectory(run).read_status()["best_val_accuracy"] for run in runs]  # type: ignore[arg-type]
            low, mean, high = point.spread(label)
            assert (low, high) == (min(kept), max(kept))
            assert mean == pytest.approx(sum(kept) / len(kept))
            for run in runs:
                config = RunDirectory(run).read_config()  # type: ignore[arg-type]
                assert config.data.label_fraction == point.fraction
    assert "labelled pictures per class" in curve.verdict()
