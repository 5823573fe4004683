"""Each panel builds on its own and shows what it is given (fake events, generated images)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QModelIndex, QObject, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.events import FrozenFeaturesMeasured
from ptm_studio.core.runs import RunDirectory
from ptm_studio.gui.dataset_summary import ClassSummary, DatasetSummary, ProblemSummary
from ptm_studio.gui.panels._preview import (
    fake_batch,
    fake_epoch,
    fake_finished,
    fake_predictions,
    fake_started,
    make_sample_images,
)
from ptm_studio.gui.panels.dataset_panel import DatasetPanel
from ptm_studio.gui.panels.metrics_panel import MetricsPanel
from ptm_studio.gui.panels.model_panel import ModelPanel
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.panels.predictions_panel import PredictionsPanel
from ptm_studio.gui.panels.pretraining_panel import PretrainingPanel
from ptm_studio.gui.panels.training_panel import TrainingPanel
from ptm_studio.gui.run_history import load_history
from ptm_studio.gui.widgets.live_curve import LivePlot
from ptm_studio.gui.widgets.prediction_grid import RecordRole
from ptm_studio.gui.wording import format_duration

PANELS = [
    "dataset_panel",
    "model_panel",
    "objective_panel",
    "training_panel",
    "metrics_panel",
    "predictions_panel",
    "pretraining_panel",
]
HTML_NAME = "<b>x</b>"
# A folder name cannot hold "/", so the on-disk class uses an unclosed tag (still HTML to Qt).
FOLDER_HTML_NAME = "<b>x<i>"


@pytest.mark.parametrize(
    "panel_class",
    [
        DatasetPanel,
        ModelPanel,
        ObjectivePanel,
        TrainingPanel,
        MetricsPanel,
        PredictionsPanel,
        PretrainingPanel,
    ],
)
def test_each_panel_builds_on_its_own(qtbot: Any, panel_class: type) -> None:
    panel = panel_class()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.isVisible()
    if hasattr(panel, "shutdown"):
        panel.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("module", PANELS)
def test_each_panel_previews_as_a_module(module: str) -> None:
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PTM_STUDIO_PREVIEW_QUIT_MS": "300",
    }
    result = subprocess.run(
        [sys.executable, "-m", f"ptm_studio.gui.panels.{module}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _summary(root: Path, names: tuple[str, ...] = ("cat", "dog")) -> DatasetSummary:
    classes = tuple(ClassSummary(name, 8 + index, 2, ()) for index, name in enumerate(names))
    problem = ProblemSummary(
        "warning", "2 files could not be read", "", "Remove or re-save them.", ("/a.jpg",)
    )
    return DatasetSummary(root, classes, "Split: 20 % kept aside.", (problem,))


def test_dataset_panel_shows_counts_and_problems_from_a_scan(qtbot: Any, tmp_path: Path) -> None:
    panel = DatasetPanel(scan_function=lambda root, **_: _summary(root, ("cat", "dog", HTML_NAME)))
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.dataset_changed, timeout=10_000) as blocker:
        panel.set_folder(tmp_path)
    summary = blocker.args[0]
    assert [item.name for item in summary.classes] == ["cat", "dog", HTML_NAME]
    table = panel.class_table
    assert table.rowCount() == 3
    assert [table.item(row, 1).text() for row in range(3)] == ["10", "11", "12"]
    assert table.item(2, 0).text() == HTML_NAME
    top = panel.problem_tree.topLevelItem(0)
    assert "could not be read" in top.text(0) and "Remove" in top.text(1)
    assert top.child(0).text(0) == "/a.jpg"
    assert "3 classes, 33 images" in panel.summary_label.text()
    panel.shutdown()


def test_dataset_panel_real_scan_of_a_generated_folder(qtbot: Any, tmp_path: Path) -> None:
    make_sample_images(tmp_path / "data", classes=("cat", "dog", FOLDER_HTML_NAME), per_class=5)
    (tmp_path / "data" / "dog" / "broken.jpg").write_bytes(b"not an image")
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.dataset_changed, timeout=30_000) as blocker:
        panel.set_folder(tmp_path / "data")
    summary = blocker.args[0]
    assert summary is not None
    assert {item.name: item.total for item in summary.classes} == {
        "cat": 5,
        "dog": 5,
        FOLDER_HTML_NAME: 5,
    }
    texts = [panel.class_table.item(row, 0).text() for row in range(panel.class_table.rowCount())]
    assert FOLDER_HTML_NAME in texts
    problems = [
        panel.problem_tree.topLevelItem(i) for i in range(panel.problem_tree.topLevelItemCount())
    ]
    children = [item.child(j).text(0) for item in problems for j in range(item.childCount())]
    assert any("broken.jpg" in text for text in children), [item.text(0) for item in problems]
    assert panel.thumbnail_model.rowCount() == 5
    panel.shutdown()


def test_dataset_panel_accepts_an_unlabelled_folder(qtbot: Any, tmp_path: Path) -> None:
    images = make_sample_images(tmp_path / "flat", classes=("only",), per_class=4)
    for path in images["only"]:
        path.rename(tmp_path / "flat" / path.name)
    (tmp_path / "flat" / "only").rmdir()
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.dataset_changed, timeout=30_000) as blocker:
        panel.set_folder(tmp_path / "flat")
    summary = blocker.args[0]
    assert summary is not None and not summary.is_labeled
    assert "pretrain" in panel.summary_label.text()
    panel.shutdown()


def test_dataset_panel_scan_can_be_cancelled(qtbot: Any, tmp_path: Path) -> None:
    import time

    def slow_scan(root: Path, *, progress: Any, should_stop: Any) -> DatasetSummary:
        for done in range(1000):
            progress(done, 1000)
            time.sleep(0.005)
        return _summary(root)

    panel = DatasetPanel(scan_function=slow_scan)
    qtbot.addWidget(panel)
    panel.set_folder(tmp_path)
    with qtbot.waitSignal(panel.scan_job.cancelled, timeout=10_000):
        panel.cancel_scan()
    qtbot.waitUntil(lambda: not panel.scan_job.is_running, timeout=5000)
    assert "cancelled" in panel.summary_label.text()
    assert panel.summary is None


def test_model_panel_writes_its_choices_into_the_config(qtbot: Any) -> None:
    panel = ModelPanel()
    qtbot.addWidget(panel)
    assert panel.backbone_combo.count() >= 1
    index = panel.mode_combo.findData("feature_extraction")
    panel.mode_combo.setCurrentIndex(index)
    config = panel.settings.config.validate()
    assert config.model.training_mode == "feature_extraction"
    assert config.model.backbone == panel.backbone_combo.currentData()
    assert panel.backbone_info.textFormat() == Qt.TextFormat.PlainText


def test_a_start_from_pretraining_gets_the_transfer_recipe_said_and_undone(
    qtbot: Any, pretraining_run_folder: Path
) -> None:
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.weights_combo.setCurrentIndex(panel.weights_combo.findData("run"))
    panel.weights_path_edit.setText(str(pretraining_run_folder))
    model = panel.settings.config.model
    assert (model.training_mode, model.backbone_learning_rate_factor) == (
        "probe_then_finetune",
        0.1,
    )
    assert panel.mode_combo.currentData() == "probe_then_finetune"
    assert panel.mode_info.text().startswith("Chosen for you, as you start from a pretraining run")
    assert panel.backbone_rate_spin.isEnabled()
    panel.weights_combo.setCurrentIndex(panel.weights_combo.findData("random"))
    assert panel.settings.config.model.training_mode == "full_finetune"


def test_the_users_own_mode_is_kept_for_a_start_from_pretraining(
    qtbot: Any, pretraining_run_folder: Path
) -> None:
    panel = ModelPanel()
    qtbot.addWidget(panel)
    index = panel.mode_combo.findData("feature_extraction")
    panel.mode_combo.setCurrentIndex(index)
    panel.mode_combo.activated.emit(index)  # as a click does
    panel.weights_combo.setCurrentIndex(panel.weights_combo.findData("run"))
    panel.weights_path_edit.setText(str(pretraining_run_folder))
    assert panel.settings.config.model.training_mode == "feature_extraction"


def test_objective_panel_auto_and_round_trip(qtbot: Any) -> None:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    panel.set_dataset(120, [100, 10, 10])
    panel.apply_auto()
    config = panel.settings.config.validate()
    assert config.objective.use_class_weights  # 100 vs 10 is imbalanced
    assert "flip" in config.data.augmentations
    assert "epoch" in panel.estimate_label.text()
    other = ObjectivePanel()
    qtbot.addWidget(other)
    other.settings.replace(config)
    assert other.apply_to(RunConfig()) == config


def test_every_control_has_a_tooltip(qtbot: Any) -> None:
    from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox

    for panel_class in (ModelPanel, ObjectivePanel, TrainingPanel, DatasetPanel):
        panel = panel_class()
        qtbot.addWidget(panel)
        widgets = [
            w
            for kind in (QAbstractButton, QComboBox, QAbstractSpinBox)
            for w in panel.findChildren(kind)
        ]
        for widget in widgets:
            if widget.objectName().startswith("qt_"):  # Qt's own internals (table corner button)
                continue
            assert widget.toolTip(), (
                f"{panel_class.__name__}: {widget!r} ({getattr(widget, 'text', str)()})"
            )


def test_training_panel_shows_progress_and_outcome(qtbot: Any) -> None:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_running(True)
    assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    assert panel.frozen_banner.isVisibleTo(panel)
    panel.start_run(fake_started(num_epochs=5, steps=200))
    panel.add_batch(fake_batch(300))
    panel.refresh()
    assert panel.epoch_label.text() == "2 of 5"
    assert panel.progress_bar.value() == 300
    panel.finish_run(fake_finished("stopped"))
    panel.set_can_resume(True)
    panel.set_running(False)
    assert panel.resume_button.isEnabled() and panel.start_button.isEnabled()
    assert "Stopped" in panel.progress_bar.format()
    assert format_duration(125) == "2 min 05 s" and format_duration(math.nan) == "–"


def test_metrics_panel_holds_points_and_skips_non_finite(qtbot: Any) -> None:
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    for step in range(1, 101):
        loss = math.nan if step == 50 else math.inf if step == 51 else 1.0 / step
        panel.add_batch(fake_batch(step, loss=loss))
    panel.add_epoch(fake_epoch(1))
    panel.add_epoch(dataclass_replace(fake_epoch(2), val_loss=math.nan, val_accuracy=math.nan))
    panel.refresh_all()
    assert panel.step_loss_plot.point_count("raw") == 100
    assert panel.step_loss_plot.drawn_point_count("raw") == 98
    assert panel.epoch_loss_plot.drawn_point_count("train") == 2
    assert panel.epoch_loss_plot.drawn_point_count("val") == 1
    assert panel.learning_rate_plot.drawn_point_count("lr") == 100
    panel.grab()  # painting with NaNs held in the buffers must not raise


def test_a_curve_is_given_its_drawn_points_without_filtering_the_whole_buffer(
    qtbot: Any,
) -> None:
    """Issue 14, B4: each update hands pyqtgraph views of the points drawn so far, grown as
    they arrive, instead of a filtered copy of every point held; what it draws is exactly the
    finite (and, on a log scale, positive) points, in order, and a cleared curve never changes
    the arrays pyqtgraph was given before."""
    plot = LivePlot("loss", "step", "loss", log_y=True)
    qtbot.addWidget(plot)
    plot.add_curve("raw", "loss", QColor("#1f77b4"))
    values = [1.0, math.nan, 0.5, -0.1, math.inf, 0.25, 0.0, "not a number", 0.125]
    for step, value in enumerate(values):
        plot.append("raw", step, value)  # type: ignore[arg-type]
    plot.refresh()
    x, y = plot.curve_data("raw")
    assert x.tolist() == [0, 2, 5, 8] and y.tolist() == [1.0, 0.5, 0.25, 0.125]
    assert plot.point_count("raw") == len(values)
    handed_x, _ = plot.curve_data("raw")
    plot.append("raw", 9, 0.0625)
    plot.refresh()
    assert plot.curve_data("raw")[0].base is handed_x.base  # the same array, grown in place
    before = handed_x.copy()
    plot.clear_data()
    for step in range(4):
        plot.append("raw", 100 + step, 3.0)
    plot.refresh()
    assert handed_x.tolist() == before.tolist()  # pyqtgraph's earlier views are untouched
    assert plot.curve_data("raw")[0].tolist() == [100, 101, 102, 103]


class _PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def test_a_growing_curve_is_painted_once_per_refresh(qtbot: Any) -> None:
    """pyqtgraph fits the range to new data as a paint begins, which changed the axes and
    painted the plot again: two paints per refresh, each holding the interpreter lock that a
    training thread waits for (issue 14, B3). The range is fitted at the refresh instead."""
    plot = LivePlot("loss", "step", "loss")
    qtbot.addWidget(plot)
    plot.add_curve("raw", "loss", QColor("#1f77b4"))
    plot.show()
    plot.append("raw", 0, 1.0)
    plot.refresh()
    qtbot.waitExposed(plot)
    qtbot.wait(50)
    counter = _PaintCounter()
    plot.plot_widget.viewport().installEventFilter(counter)
    refreshes = 10
    for step in range(1, refreshes + 1):
        plot.append("raw", 10 * step, 1.0 / step)  # the ranges grow every time
        assert plot.refresh()
        qtbot.wait(30)
    # A few more where the axes' labels grow wider (a new layout); twice as many before.
    assert refreshes <= counter.paints <= refreshes + 3


def test_a_curve_of_very_many_points_is_drawn_without_antialiasing(qtbot: Any) -> None:
    from ptm_studio.gui.widgets.live_curve import SMOOTH_LINES_UP_TO

    plot = LivePlot("loss", "step", "loss")
    qtbot.addWidget(plot)
    plot.add_curve("raw", "loss", QColor("#1f77b4"))
    plot.append("raw", 0, 1.0)
    plot.refresh()
    drawn = plot.plot_widget.getPlotItem().listDataItems()[0]
    assert drawn.curve.opts["antialias"] is True  # a few points: smooth lines
    for step in range(1, SMOOTH_LINES_UP_TO + 1):
        plot.append("raw", step, 1.0 / step)
    plot.refresh()
    assert drawn.curve.opts["antialias"] is False  # a dense band: 10x quicker to paint
    plot.clear_data()
    plot.append("raw", 0, 1.0)
    plot.refresh()
    assert drawn.curve.opts["antialias"] is True


def test_the_accuracy_plot_shows_what_the_last_layer_scored_alone(
    qtbot: Any, tmp_path: Path
) -> None:
    """probe_then_finetune: the fitted last layer's accuracy is a level the finetuned curve is
    read against; a new run clears it, and a reopened run's history brings it back."""
    panel = MetricsPanel()
    qtbot.addWidget(panel)
    message = "fitted"
    panel.show_frozen_features(FrozenFeaturesMeasured(0.5, 0.625, 0.01, 1.0, message))
    assert panel.accuracy_plot.level("probe") == pytest.approx(62.5)
    panel.grab()
    panel.clear()
    assert panel.accuracy_plot.level("probe") is None
    run = RunDirectory.create(tmp_path, "probed")
    run.append_metrics([{"type": "frozen_features", "global_step": 0, "probe_accuracy": 0.7}])
    panel.show_history(load_history(run, up_to_step=10), run.path)
    assert panel.accuracy_plot.level("probe") == pytest.approx(70.0)


def dataclass_replace(event: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(event, **changes)


def test_predictions_panel_filters_sorts_and_opens_an_image(qtbot: Any, tmp_path: Path) -> None:
    paths = make_sample_images(tmp_path, classes=("cat", "dog", HTML_NAME), per_class=10, size=24)
    event = fake_predictions(paths, epoch=3)
    panel = PredictionsPanel()
    qtbot.addWidget(panel)
    panel.show_predictions(event)
    model = panel.model
    assert model.rowCount() == 30
    losses = [model.record_at(row).loss for row in range(model.rowCount())]
    assert losses == sorted(losses, reverse=True)  # top losses first
    panel.correct_combo.setCurrentIndex(panel.correct_combo.findData("mistakes"))
    assert all(not model.record_at(row).is_correct for row in range(model.rowCount()))
    panel.correct_combo.setCurrentIndex(panel.correct_combo.findData("all"))
    panel.class_combo.setCurrentIndex(panel.class_combo.findText(HTML_NAME))
    assert model.rowCount() == 10
    assert all(model.record_at(row).true_index == 2 for row in range(10))
    panel.sort_combo.setCurrentIndex(panel.sort_combo.findData("confidence_high"))
    confidences = [model.record_at(row).confidence for row in range(10)]
    assert confidences == sorted(confidences, reverse=True)
    # Thumbnails load lazily off the GUI thread and then arrive.
    panel.resize(800, 600)
    panel.show()
    qtbot.waitUntil(lambda: len(panel.cache._pixmaps) > 0, timeout=5000)
    index = model.index(0)
    panel._on_clicked(index)
    viewer = panel.viewer
    assert viewer is not None
    record = index.data(RecordRole)
    assert len(viewer.top_labels) == min(5, len(record.top_indices))
    texts = [label.text() for label in viewer.findChildren(QLabel)]
    assert any(HTML_NAME in text for text in texts)
    assert all(
        label.textFormat() == Qt.TextFormat.PlainText for label in viewer.findChildren(QLabel)
    )
    viewer.close()
    panel.grab()
    panel.shutdown()
    assert QModelIndex().isValid() is False


def test_predictions_grid_with_10k_images_stays_lazy_and_fast(qtbot: Any, tmp_path: Path) -> None:
    import time

    from ptm_studio.core.engine.events import PredictionRecord, PredictionsReady

    records = tuple(
        PredictionRecord(
            path=str(tmp_path / f"missing_{index}.png"),
            true_index=index % 3,
            predicted_index=(index * 2) % 3,  # right for a third of them
            confidence=(index % 97) / 97,
            loss=(index % 89) / 10,
            top_indices=(0, 1, 2),
            top_probabilities=(0.5, 0.3, 0.2),
        )
        for index in range(10_000)
    )
    panel = PredictionsPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    qtbot.waitExposed(panel)
    started = time.perf_counter()
    panel.show_predictions(PredictionsReady(epoch=1, class_names=("a", "b", "c"), records=records))
    panel.correct_combo.setCurrentIndex(panel.correct_combo.findData("mistakes"))
    panel.sort_combo.setCurrentIndex(panel.sort_combo.findData("confidence_low"))
    qtbot.wait(50)
    elapsed = time.perf_counter() - started
    assert panel.model.rowCount() == 6666
    assert elapsed < 1.0, f"showing and re-sorting 10k predictions took {elapsed:.2f} s"

    # Only what is on screen is asked for: nowhere near 10k decodes.
    def requested() -> int:
        return len(panel.cache._pending) + len(panel.cache._pixmaps)

    qtbot.waitUntil(lambda: requested() > 0, timeout=5000)
    assert requested() < 500
    panel.grid.verticalScrollBar().setValue(panel.grid.verticalScrollBar().maximum())
    qtbot.wait(100)
    assert requested() < 1000
    panel.shutdown()


def test_objective_panel_pretrain_offers_pretraining_losses(qtbot: Any) -> None:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    assert [panel.loss_combo.itemData(i) for i in range(panel.loss_combo.count())] == [
        "cross_entropy"
    ]
    panel.task_combo.setCurrentIndex(panel.task_combo.findData("pretrain"))
    losses = [panel.loss_combo.itemData(i) for i in range(panel.loss_combo.count())]
    assert "cross_entropy" not in losses and "nt_xent" in losses
    assert not panel.smoothing_spin.isEnabled()
    config = panel.settings.config.validate()  # a valid pretraining config, no error
    assert config.objective.task == "pretrain" and config.objective.loss == losses[0]
    other = ObjectivePanel()
    qtbot.addWidget(other)
    other.settings.replace(config)
    assert other.apply_to(RunConfig()) == config
