"""Evaluation: metrics against hand-computed cases, the interval against known values, a
temperature fit that fixes an over-confident model, warnings where numbers mislead, and a
real run evaluated on its own validation pictures."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from training_helpers import train_and_record

from ptm_studio.core import evaluation as evaluation_module
from ptm_studio.core.calibration import (
    CALIBRATION_FILE,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
    saved_temperature,
    softmax,
)
from ptm_studio.core.checkpoints import is_complete_checkpoint, read_meta
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.evaluation import evaluate_logits, evaluate_run, result_warnings
from ptm_studio.core.inference import Predictor, collect_image_paths
from ptm_studio.core.metrics import (
    balanced_accuracy,
    most_confused_pairs,
    row_normalised,
    wilson_interval,
)
from ptm_studio.core.runs import RUNS_TRAINING_HERE, RunDirectory, this_process


def test_the_wilson_interval_matches_known_values() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 5) == pytest.approx((0.0, 0.4345), abs=1e-4)  # never below 0
    assert wilson_interval(5, 5)[1] == 1.0
    low, high = wilson_interval(527, 693)  # 76 % of 693 pictures: about ± 3 points
    assert (high - low) / 2 == pytest.approx(0.032, abs=0.002)
    assert all(math.isnan(value) for value in wilson_interval(0, 0))


def test_balanced_accuracy_ignores_how_large_each_class_is() -> None:
    always_a = np.array([[90, 0], [10, 0]])  # 90 % accuracy by always answering "a"
    assert balanced_accuracy(always_a) == pytest.approx(0.5)
    assert balanced_accuracy(np.array([[3, 1], [0, 2]])) == pytest.approx((0.75 + 1.0) / 2)


def test_row_normalised_and_the_largest_mix_ups_first() -> None:
    matrix = np.array([[5, 3, 0], [1, 6, 0], [0, 4, 2]])
    assert row_normalised(matrix)[0].tolist() == pytest.approx([5 / 8, 3 / 8, 0])
    assert most_confused_pairs(matrix, ["a", "b", "c"], limit=2) == (
        ("c", "b", 4),
        ("a", "b", 3),
    )


def _over_confident(
    seed: int = 0, count: int = 600, scale: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a calibrated 3-class model (sampled from its own probabilities), then multiplied
    by ``scale``: the answers stay, the confidence is too high."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, size=(count, 3))
    probabilities = softmax(logits)
    targets = np.array([rng.choice(3, p=row) for row in probabilities])
    return logits * scale, targets


def test_a_fitted_temperature_makes_an_over_confident_model_honest() -> None:
    logits, targets = _over_confident()
    temperature = fit_temperature(logits, targets)
    assert temperature == pytest.approx(4.0, rel=0.15)  # it undoes the scaling
    assert negative_log_likelihood(logits, targets, temperature) < negative_log_likelihood(
        logits, targets
    )
    calibration = calibrate(logits, targets)
    assert calibration.ece_after < calibration.ece_before / 2
    assert "too sure of itself" in calibration.describe()
    assert softmax(logits, temperature).argmax(axis=1).tolist() == logits.argmax(axis=1).tolist()


def test_reliability_bins_cover_every_picture() -> None:
    logits, targets = _over_confident(count=200)
    bins = reliability_bins(softmax(logits), targets)
    assert sum(item.count for item in bins) == 200 and len(bins) == 10
    assert bins[-1].upper == 1.0 and 0 <= expected_calibration_error(bins) <= 1


def test_evaluating_logits_gives_the_scores_by_hand() -> None:
    # 4 pictures of a, 2 of b; one a is taken for b.
    logits = np.array([[3.0, 0], [3, 0], [3, 0], [0, 3], [0, 3], [0, 3]])
    targets = np.array([0, 0, 0, 0, 1, 1])
    evaluation = evaluate_logits(logits, targets, ("a", "b"), [f"p{i}.png" for i in range(6)])
    assert evaluation.accuracy == pytest.approx(5 / 6)
    assert evaluation.confusion.tolist() == [[3, 1], [0, 2]]
    a, b = evaluation.per_class
    assert (a.precision, a.recall, a.support) == (1.0, 0.75, 4)
    assert b.precision == pytest.approx(2 / 3) and b.recall == 1.0
    assert evaluation.describe_confusions() == ("'a' taken for 'b': 1 picture",)
    assert "Accuracy 83 %" in evaluation.summary() and "6 pictures" in evaluation.summary()
    assert [record.predicted_index for record in evaluation.records] == [0, 0, 0, 1, 1, 1]


def test_plain_warnings_where_the_numbers_mislead() -> None:
    always_dandelion = np.array([[0, 40], [0, 60]])
    warnings = result_warnings(always_dandelion, ("daisy", "dandelion"), np.array([1] * 100))
    assert any("answers 'dandelion' for 100 %" in warning for warning in warnings)
    guessing = np.array([[20, 20, 10], [20, 10, 20], [10, 20, 20]])
    predictions = np.repeat([0, 1, 2], 50)
    assert any("no better than" in w for w in result_warnings(guessing, "abc", predictions))
    few = np.array([[3, 0], [0, 40]])
    warnings = result_warnings(few, ("owl", "cat"), np.array([0] * 3 + [1] * 40))
    assert any("Few validation pictures for 'owl' (3)" in warning for warning in warnings)
    good = np.array([[40, 2], [3, 45]])
    assert result_warnings(good, ("a", "b"), np.array([0] * 43 + [1] * 47)) == ()
    imbalanced_but_right = np.array([[95, 0], [0, 5]])  # most answers are 'cat' because most are
    warnings = result_warnings(imbalanced_but_right, ("cat", "dog"), np.array([0] * 95 + [1] * 5))
    assert not any("answers 'cat'" in warning for warning in warnings)


def test_the_summary_shows_a_lopsided_interval_as_it_is() -> None:
    logits = np.eye(2)[[0] * 20 + [1] * 20] * 4.0
    summary = evaluate_logits(
        logits, np.array([0] * 20 + [1] * 20), ("a", "b"), ["p"] * 40
    ).summary()
    assert summary.startswith("Accuracy 100 % −9/+0 (95 % interval 91–100 %")


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def _pictures(root: Path, per_class: int, prefix: str, seed: int) -> None:
    generator = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            noise = generator.integers(-40, 40, size=(16, 16, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{prefix}{index:03d}.png")


def _noisy_folder(root: Path) -> Path:
    """40 pictures a class, 8 of each filed under the next class: enough validation pictures,
    and mistakes no model can avoid, so a temperature can be fitted."""
    _pictures(root, 40, "picture_", seed=0)
    names = list(COLOURS)
    for index, name in enumerate(names):
        target = root / names[(index + 1) % len(names)]
        for picture in sorted((root / name).glob("picture_*.png"))[:8]:
            picture.rename(target / f"mislabelled_{picture.name}")
    return root


def test_a_trained_run_is_evaluated_on_its_own_validation_pictures(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    config = replace_field(
        tiny_config(num_epochs=2), "data.data_dir", str(_noisy_folder(tmp_path / "noisy"))
    )
    config = replace_field(config, "data.validation_fraction", 0.5)
    finished, _ = train_and_record(config, tmp_path / "runs")
    assert finished.run_dir is not None
    run = RunDirectory(finished.run_dir)
    # Pictures added to the folder after training do not redraw the validation pictures.
    _pictures(tmp_path / "noisy", 5, "new_", seed=9)
    evaluation = evaluate_run(finished.run_dir)
    assert evaluation.checkpoint == run.best_checkpoint_dir
    assert evaluation.accuracy == pytest.approx(finished.best_val_accuracy)  # the same pictures
    assert evaluation.num_pictures == len(run.read_predictions()) >= 30
    assert not any("new_" in record.path for record in evaluation.records)
    assert sum(item.support for item in evaluation.per_class) == evaluation.num_pictures
    # The temperature is kept beside the weights and used by every later prediction.
    assert evaluation.calibration.is_fitted
    digest = read_meta(run.best_checkpoint_dir)["files"]["model.safetensors"]
    temperature = saved_temperature(run.best_checkpoint_dir, digest)
    assert temperature == pytest.approx(evaluation.calibration.temperature)
    assert saved_temperature(run.best_checkpoint_dir, "other weights") is None
    assert is_complete_checkpoint(run.best_checkpoint_dir)  # the checkpoint stays intact
    predictor = Predictor.from_run(run.path)
    assert predictor.temperature == pytest.approx(temperature)
    pictures = collect_image_paths([Path(record.path) for record in evaluation.records[:4]])
    answers = predictor.predict_paths(pictures, top_k=3)
    by_path = {record.path: record for record in evaluation.records}
    for answer in answers:
        assert answer.confidence == pytest.approx(by_path[str(answer.path)].confidence, abs=1e-5)


def test_too_few_pictures_or_mistakes_leave_the_confidences_as_they_are(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    """Six validation pictures, all right: a fit would push every answer to certainty."""
    finished, _ = train_and_record(tiny_config(num_epochs=3), tmp_path)
    assert finished.run_dir is not None
    evaluation = evaluate_run(finished.run_dir)
    assert not evaluation.calibration.is_fitted and evaluation.calibration.temperature == 1.0
    assert "too few to calibrate" in evaluation.calibration.describe()
    assert not (RunDirectory(finished.run_dir).best_checkpoint_dir / CALIBRATION_FILE).exists()
    perfect = np.eye(3)[np.repeat([0, 1, 2], 20)] * 5.0  # 60 pictures, no mistake
    assert "too few mistakes" in calibrate(perfect, np.repeat([0, 1, 2], 20)).describe()


def test_a_run_given_a_relative_folder_can_be_evaluated_from_anywhere(
    tiny_config: Callable[..., RunConfig],
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """config.json keeps the folder as an absolute path: evaluating (or resuming, or writing
    the report) later from another working folder finds the same pictures."""
    monkeypatch.chdir(tiny_dataset.parent)
    config = replace_field(tiny_config(num_epochs=1), "data.data_dir", tiny_dataset.name)
    finished, _ = train_and_record(config, tmp_path / "runs")
    assert finished.run_dir is not None
    saved = RunDirectory(finished.run_dir).read_config()
    assert saved.data.data_dir == str(tiny_dataset.absolute())
    monkeypatch.chdir(tmp_path / "runs")
    assert evaluate_run(finished.run_dir).num_pictures > 0


def test_a_temperature_is_not_saved_beside_weights_that_replaced_the_evaluated_ones(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume may save a new best while an evaluation runs: its temperature would be
    another model's, so it is not written (and a file for other weights is never used)."""
    config = replace_field(
        tiny_config(num_epochs=1), "data.data_dir", str(_noisy_folder(tmp_path / "noisy"))
    )
    config = replace_field(config, "data.validation_fraction", 0.5)
    finished, _ = train_and_record(config, tmp_path / "runs")
    assert finished.run_dir is not None
    best = RunDirectory(finished.run_dir).best_checkpoint_dir
    original = evaluation_module.model_digest
    monkeypatch.setattr(
        evaluation_module,
        "model_digest",
        lambda meta: "weights saved meanwhile" if meta is not None else original(meta),
    )
    evaluation = evaluate_run(finished.run_dir)
    assert evaluation.calibration.is_fitted
    assert not (best / CALIBRATION_FILE).exists()


def test_loading_a_checkpoint_folder_of_a_run_being_trained_leaves_its_swap_alone(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    finished, _ = train_and_record(tiny_config(num_epochs=1), tmp_path)
    assert finished.run_dir is not None
    run = RunDirectory(finished.run_dir)
    half_written = run.best_checkpoint_dir.parent / ".best.partial"
    half_written.mkdir()
    run.write_status(status="running", **this_process())  # as while this process trains it
    RUNS_TRAINING_HERE.add(run.path.resolve())
    try:
        Predictor.from_run(run.best_checkpoint_dir)
    finally:
        RUNS_TRAINING_HERE.discard(run.path.resolve())
    assert half_written.exists()  # the trainer's work in progress is not swept away
