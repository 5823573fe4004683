"""The Evaluation tab: results shown from an Evaluation, a matrix cell opens exactly its
pictures in the gallery, a real run is evaluated in the background, and Cancel leaves no
thread behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

from ptm_studio.core import evaluation as core_evaluation  # the panel imports it on use
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.evaluation import Evaluation, evaluate_logits
from ptm_studio.core.inference import PredictionCancelled
from ptm_studio.gui.panels._preview import make_sample_images
from ptm_studio.gui.panels.evaluation_panel import EvaluationPanel

CLASSES = ("cat", "dog", "bird")
# True class per picture and the class the logits favour: 3 cats (1 taken for a dog),
# 3 dogs (2 taken for birds), 2 birds.
TRUE = [0, 0, 0, 1, 1, 1, 2, 2]
ANSWERED = [0, 0, 1, 1, 2, 2, 2, 2]


def _evaluation(folder: Path) -> Evaluation:
    pictures = make_sample_images(folder, classes=CLASSES, per_class=3, size=16)
    paths = [str(pictures[CLASSES[true]][i % 3]) for i, true in enumerate(TRUE)]
    logits = np.full((len(TRUE), len(CLASSES)), -2.0, dtype=np.float32)
    logits[np.arange(len(TRUE)), ANSWERED] = 2.0
    return evaluate_logits(logits, np.array(TRUE), CLASSES, paths)


def _click_cell(qtbot: Any, view: Any, row: int, column: int) -> None:
    rect = view.visualItemRect(view.item(row, column))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_results_are_shown_in_tables_words_and_the_reliability_plot(
    qtbot: Any, tmp_path: Path
) -> None:
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    evaluation = _evaluation(tmp_path)
    with qtbot.waitSignal(panel.evaluated) as shown:
        panel.show_evaluation(evaluation)
    assert shown.args == [evaluation]
    assert panel.summary_label.text().startswith("Accuracy 62 % −32/+24")  # 5 of 8
    assert panel.class_table.rowCount() == 3
    assert panel.class_table.item(1, 1).text() == "0.33"  # dog recall: 1 of 3
    assert panel.matrix_view.item(1, 2).text() == "2"
    panel.share_button.setChecked(True)
    assert panel.matrix_view.item(1, 2).text() == "67 %"
    assert "'dog' taken for 'bird': 2 pictures" in panel.confused_list.item(0).text()
    assert "Few validation pictures" in panel.warnings_label.text()
    assert not panel.warnings_label.isHidden()
    assert "too few to calibrate" in panel.calibration_label.text()  # 8 pictures
    assert len(panel.reliability_plot.bar_items) == 1  # the model's confidence alone
    panel.clear_results()
    assert panel.class_table.isHidden() and panel.warnings_label.isHidden()


def test_clicking_a_matrix_cell_shows_exactly_those_pictures_in_the_gallery(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window = make_window()
    evaluation = _evaluation(tmp_path / "pictures")
    window.evaluation_panel.show_evaluation(evaluation)
    window.show_tab(window.evaluation_panel)
    gallery = window.predictions_panel
    assert gallery.model.rowCount() == len(TRUE)
    assert "confidences are calibrated" in gallery.summary_label.text()
    gallery.correct_combo.setCurrentIndex(gallery.correct_combo.findData("correct"))

    with qtbot.waitSignal(window.evaluation_panel.pictures_chosen) as chosen:
        _click_cell(qtbot, window.evaluation_panel.matrix_view, 1, 2)  # dogs taken for birds
    assert chosen.args == [1, 2]
    assert window.layout_parts.tabs.currentWidget() is gallery
    shown = [gallery.model.record_at(row) for row in range(gallery.model.rowCount())]
    assert len(shown) == 2  # the other filters were set aside for the cell
    assert all((r.true_index, r.predicted_index) == (1, 2) for r in shown)
    assert "'dog' pictures the model took for 'bird'" in gallery.pair_label.text()
    assert not gallery.pair_bar.isHidden()

    item = window.evaluation_panel.confused_list.item(1)  # 'cat' taken for 'dog'
    window.evaluation_panel.confused_list.itemClicked.emit(item)
    assert [gallery.model.record_at(0).true_index, gallery.model.rowCount()] == [0, 1]

    gallery.show_all_button.click()
    assert gallery.model.rowCount() == len(TRUE) and gallery.pair_bar.isHidden()


def test_an_empty_cell_opens_nothing(qtbot: Any, tmp_path: Path) -> None:
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.show_evaluation(_evaluation(tmp_path))
    panel.show()
    with qtbot.assertNotEmitted(panel.pictures_chosen):
        _click_cell(qtbot, panel.matrix_view, 2, 0)  # no bird was taken for a cat


@pytest.mark.slow
def test_a_real_run_is_evaluated_in_the_background(
    qtbot: Any, tiny_config: RunConfig, tmp_path: Path
) -> None:
    config = replace_field(tiny_config, "device.device", "cpu")
    finished = Trainer.new_run(config, runs_root=tmp_path / "runs").run()
    assert finished.run_dir is not None
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.set_run(finished.run_dir)
    assert panel.checkpoint_combo.count() == 2  # best and last
    assert panel.checkpoint_combo.currentText().startswith("Best (epoch")
    with qtbot.waitSignal(panel.evaluated, timeout=60_000) as shown:
        panel.evaluate_button.click()
        assert panel.job.is_running and not panel.evaluate_button.isEnabled()
    evaluation = shown.args[0]
    assert panel.class_table.rowCount() == len(evaluation.class_names) == 3
    assert sum(item.support for item in evaluation.per_class) == evaluation.num_pictures > 0
    assert evaluation.checkpoint == finished.run_dir / "checkpoints" / "best"
    # 3 validation pictures: too few to calibrate, and nothing is saved beside the weights.
    assert not (evaluation.checkpoint / "calibration.json").exists()
    assert "too few to calibrate" in panel.calibration_label.text()
    qtbot.waitUntil(lambda: not panel.job.is_running)
    assert panel.evaluate_button.isEnabled() and panel.progress.isHidden()


def test_cancel_stops_the_evaluation_and_leaves_no_thread(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow evaluation (faked: it only waits for its stop check) ends when Cancel is pressed."""
    calls: list[Path] = []

    def slow_evaluation(
        run_dir: Path, *, checkpoint: Path, on_progress: Any, should_stop: Any
    ) -> Any:
        calls.append(checkpoint)
        deadline = time.monotonic() + 30
        done = 0
        while time.monotonic() < deadline:
            if should_stop():
                raise PredictionCancelled
            done = min(done + 1, 99)
            on_progress(done, 100)
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(core_evaluation, "evaluate_run", slow_evaluation)
    run = tmp_path / "run"
    best = run / "checkpoints" / "best"
    best.mkdir(parents=True)
    (run / "config.json").write_text("{}", encoding="utf-8")
    (best / "meta.json").write_text('{"complete": true, "epoch": 3}', encoding="utf-8")
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.set_run(run)
    panel.evaluate()
    qtbot.waitUntil(lambda: "of 100 validation pictures" in panel.progress.label.text())
    assert not panel.progress.isHidden()
    with qtbot.waitSignal(panel.job.cancelled, timeout=10_000):
        panel.progress.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.job.is_running)
    assert calls == [best]
    assert "cancelled" in panel.summary_label.text() and panel.progress.isHidden()
    assert panel.evaluate_button.isEnabled()


def test_the_gallery_shows_heatmaps_of_an_evaluated_model_and_drops_them_for_another(
    qtbot: Any, trained_run: Path
) -> None:
    from ptm_studio.core.evaluation import evaluate_run
    from ptm_studio.gui.panels.predictions_panel import PredictionsPanel

    gallery = PredictionsPanel()
    qtbot.addWidget(gallery)
    assert not gallery.heatmap_box.isEnabled()  # no saved model behind the answers yet
    gallery.show_evaluation(evaluate_run(trained_run, save=False))
    assert gallery.heatmap_box.isEnabled()
    heatmaps = gallery.model.heatmaps
    with qtbot.waitSignal(heatmaps.job.succeeded, timeout=60_000):
        gallery.heatmap_box.setChecked(True)
    rows = gallery.model.rowCount()
    shown = [
        gallery.model.data(gallery.model.index(row), Qt.ItemDataRole.DecorationRole)
        for row in range(rows)
    ]
    drawn = [heatmaps.pixmap(gallery.model.record_at(row).path) for row in range(rows)]
    assert all(pixmap is not None for pixmap in drawn)
    assert all(a is b for a, b in zip(shown, drawn, strict=True))
    gallery.heatmap_box.setChecked(False)
    first = gallery.model.data(gallery.model.index(0), Qt.ItemDataRole.DecorationRole)
    assert first is not drawn[0]  # the plain thumbnail again
    gallery.clear()
    gallery.show_evaluation(evaluate_run(trained_run, save=False))  # another evaluation
    assert heatmaps.pixmap(gallery.model.record_at(0).path) is None
    gallery.shutdown()


def test_an_evaluation_of_the_run_before_never_lands_on_the_next(
    qtbot: Any, trained_run: Path
) -> None:
    """A new run starts while the last one is still being measured: its scores must not be
    shown under the new run (nor sent to the gallery)."""
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.set_run(trained_run)
    panel.evaluate()
    panel.set_run(None)  # as when Start is pressed
    qtbot.waitUntil(lambda: not panel.job.is_running, timeout=30_000)
    assert panel.evaluation is None
    panel.run_dir = Path("/elsewhere")
    late = _evaluation_of(trained_run)
    with qtbot.assertNotEmitted(panel.evaluated):
        panel.show_evaluation(late)  # a result that arrives anyway is dropped


def _evaluation_of(run: Path) -> Evaluation:
    from ptm_studio.core.evaluation import evaluate_run

    return evaluate_run(run, save=False)
