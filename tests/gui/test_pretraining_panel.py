"""The Pretraining tab: health line, spread / k-NN plot and sample strip, fed by fake and real runs."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from ptm_studio.core.engine.events import STATUS_COMPLETED
from ptm_studio.gui.panels._preview import (
    fake_epoch,
    fake_pretrain_epoch,
    fake_pretrain_samples,
    fake_started,
)
from ptm_studio.gui.panels.pretraining_panel import PretrainingPanel, read_spread


def test_panel_builds_alone_with_a_placeholder(qtbot: Any) -> None:
    panel = PretrainingPanel()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.placeholder_label.isVisible()
    assert "Pretrain" in panel.placeholder_label.text()
    assert not panel.plot.isVisible() and panel.image_labels == []


def test_the_health_line_names_the_epoch_later_runs_start_from(qtbot: Any) -> None:
    """The epochs are ranked by the linear probe (PretrainTask): the tab says which epoch's
    backbone is kept for later runs, and a new run forgets it."""
    panel = PretrainingPanel()
    qtbot.addWidget(panel)
    for epoch, probe, is_best in ((1, 0.4, True), (2, 0.6, True), (3, 0.5, False)):
        event = fake_pretrain_epoch(epoch)
        panel.add_epoch(dataclasses.replace(event, probe_accuracy=probe, is_best=is_best))
    assert "Later runs start from epoch 2's backbone" in panel.health_label.text()
    panel.clear()
    panel.add_epoch(fake_pretrain_epoch(1))  # is_best False: no epoch named yet
    assert "Later runs start from" not in panel.health_label.text()


def test_epochs_update_the_health_line_and_skip_nan(qtbot: Any) -> None:
    panel = PretrainingPanel()
    qtbot.addWidget(panel)
    panel.add_epoch(fake_pretrain_epoch(1))  # spread 0.05: collapsed
    assert "Collapsed" in panel.health_label.text()
    panel.add_epoch(dataclasses.replace(fake_pretrain_epoch(2), val_accuracy=math.nan))
    assert "Low" in panel.health_label.text() and "no labels" in panel.health_label.text()
    panel.add_epoch(fake_pretrain_epoch(3))
    text = panel.health_label.text()
    assert "Epoch 3" in text and "Healthy" in text and "60.0 %" in text
    assert panel.plot.drawn_point_count("spread") == 3
    assert panel.plot.drawn_point_count("knn") == 2  # the NaN accuracy is not drawn
    panel.add_epoch(fake_epoch(4))  # a finetuning epoch (no spread) is ignored
    assert panel.plot.point_count("spread") == 3
    assert panel.health_label.textFormat() == Qt.TextFormat.PlainText
    assert not panel.sample_scroll.isVisibleTo(panel)  # no pictures yet (rotation shows none)
    assert read_spread(math.nan) == "not measured"
    panel.grab()


@pytest.mark.parametrize(
    ("kind", "titles"),
    [("reconstruction", ("Input", "Reconstruction")), ("pair", ("View 1", "View 2"))],
)
def test_samples_show_two_rows_of_pictures(qtbot: Any, kind: str, titles: tuple[str, str]) -> None:
    panel = PretrainingPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.show_samples(fake_pretrain_samples(2, kind=kind, count=8, size=16))
    assert len(panel.image_labels) == 16
    for label in panel.image_labels:
        pixmap = label.pixmap()
        assert not pixmap.isNull() and 64 <= pixmap.width() <= 96
    texts = [label.text() for label in panel.findChildren(QLabel)]
    assert titles[0] in texts and titles[1] in texts
    assert "Pictures after epoch 2" in texts
    assert all(
        label.textFormat() == Qt.TextFormat.PlainText
        for label in panel.findChildren(QLabel)
        if label.text()
    )
    assert not panel.placeholder_label.isVisibleTo(panel)
    panel.show_samples(fake_pretrain_samples(3, kind=kind, count=4))  # replaces, not appends
    assert len(panel.image_labels) == 8
    panel.grab()
    panel.start_run(fake_started())
    assert panel.image_labels == [] and panel.placeholder_label.isVisibleTo(panel)


def test_pixmaps_outlive_the_numpy_arrays(qtbot: Any) -> None:
    panel = PretrainingPanel()
    qtbot.addWidget(panel)
    event = fake_pretrain_samples(1, count=2)
    expected = event.first_images[0, 0, 0].tolist()
    panel.show_samples(event)
    del event
    import gc

    gc.collect()
    colour = panel.image_labels[0].pixmap().toImage().pixelColor(0, 0)
    assert [colour.red(), colour.green(), colour.blue()] == expected


@pytest.mark.slow
def test_a_real_tiny_pretraining_run_fills_the_pretraining_tab(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window()
    window.model_panel.backbone_combo.setCurrentIndex(
        window.model_panel.backbone_combo.findData("small_cnn")
    )
    objective = window.objective_panel
    objective.task_combo.setCurrentIndex(objective.task_combo.findData("pretrain"))
    objective.image_size_spin.setValue(32)
    objective.batch_spin.setValue(4)
    objective.epochs_spin.setValue(1)
    session = window.session
    with qtbot.waitSignals(
        [session.training_started, session.pretrain_samples_ready, session.training_finished],
        order="simple",
        timeout=120_000,
    ):
        window.start_training()
    qtbot.waitUntil(lambda: not session.is_running, timeout=30_000)
    assert session.last_finished.status == STATUS_COMPLETED, session.last_finished.error_details
    panel = window.pretraining_panel
    assert window.layout_parts.tabs.currentWidget() is panel
    assert len(panel.image_labels) >= 2 and len(panel.image_labels) % 2 == 0
    assert all(not label.pixmap().isNull() for label in panel.image_labels)
    assert "Epoch 1" in panel.health_label.text()
    assert panel.plot.drawn_point_count("spread") == 1
