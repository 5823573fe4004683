"""The Map tab: a run's validation pictures as dots placed by the model's features, coloured
three ways; hovering shows a picture, clicking opens it with its nearest neighbours; the
features can be saved; Cancel leaves no thread behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from ptm_studio.core import embeddings as core_embeddings  # the panel imports it on use
from ptm_studio.core.embeddings import FEATURES_FILE, FILE_LIST, MAP_CSV, Embeddings
from ptm_studio.core.inference import PredictionCancelled
from ptm_studio.gui.panels.embedding_panel import EmbeddingPanel, colour_groups


class _Point:
    def __init__(self, row: int) -> None:
        self.row = row

    def data(self) -> int:
        return self.row


def _mapped(qtbot: Any, trained_run: Path) -> EmbeddingPanel:
    panel = EmbeddingPanel()
    qtbot.addWidget(panel)
    panel.set_run(trained_run)
    with qtbot.waitSignal(panel.job.succeeded, timeout=60_000):
        panel.validation_button.click()
    qtbot.waitUntil(lambda: not panel.job.is_running)
    return panel


def test_the_validation_pictures_are_mapped_coloured_hovered_and_opened(
    qtbot: Any, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = _mapped(qtbot, trained_run)
    assert panel.result is not None
    count = len(panel.result.embeddings.paths)
    assert count > 0 and len(panel.scatter.data) == count
    assert f"{count} pictures. The map's two axes show" in panel.summary_label.text()
    brushes = {}
    for key in ("true", "predicted", "correct"):
        panel.colour_combo.setCurrentIndex(panel.colour_combo.findData(key))
        brushes[key] = [point.brush().color().name() for point in panel.scatter.points()]
    assert set(brushes["correct"]) <= {"#2e9d4f", "#d9443a"}  # right or wrong only
    assert len(set(brushes["true"])) == len(set(panel.result.embeddings.true_classes))
    assert len(set(brushes["predicted"])) == len(set(panel.result.embeddings.predicted))

    panel._on_hovered(panel.scatter, [_Point(0)], None)
    assert panel.result.embeddings.paths[0].name in panel.preview_text.text()
    assert not panel.preview_label.pixmap().isNull()

    panel._on_clicked(panel.scatter, [_Point(1)], None)
    assert panel.viewer is not None and panel.viewer.position == 1
    assert panel.neighbours_model.rowCount() == min(8, count - 1)
    panel.viewer.close()

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    panel.save_button.click()
    saved = tmp_path / f"features of {trained_run.name}"  # a new folder: nothing written over
    assert len(np.load(saved / FEATURES_FILE)) == count
    assert len((saved / FILE_LIST).read_text(encoding="utf-8").splitlines()) == count
    assert (saved / MAP_CSV).is_file() and "Saved" in panel.summary_label.text()
    panel.save_button.click()
    assert (tmp_path / f"features of {trained_run.name} 2" / FEATURES_FILE).is_file()
    panel.set_run(trained_run)  # another (here: the same) run: the old map goes
    assert panel.result is None and len(panel.scatter.data) == 0
    assert not panel.save_button.isEnabled()
    panel.shutdown()


def test_pictures_without_a_class_are_neither_right_nor_wrong() -> None:
    embeddings = Embeddings(
        paths=(Path("a"), Path("b"), Path("c")),
        features=np.zeros((3, 2), dtype=np.float32),
        predicted=("cat", "dog", "cat"),
        confidence=np.ones(3, dtype=np.float32),
        true_classes=("cat", "cat", ""),
    )
    names, groups = colour_groups(embeddings, "correct")
    assert [names[group] for group in groups] == ["right", "wrong", "class not known"]
    names, groups = colour_groups(embeddings, "predicted")
    assert [names[group] for group in groups] == ["cat", "dog", "cat"]


def test_cancel_stops_the_map_and_leaves_no_thread(
    qtbot: Any, trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow(predictor: Any, paths: Any, *, true_classes: Any, should_stop: Any) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if should_stop():
                raise PredictionCancelled
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(core_embeddings, "embed_paths", slow)
    panel = EmbeddingPanel()
    qtbot.addWidget(panel)
    panel.set_run(trained_run)
    panel.start(None)
    qtbot.waitUntil(lambda: not panel.progress.isHidden(), timeout=20_000)
    with qtbot.waitSignal(panel.job.cancelled, timeout=10_000):
        panel.progress.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.job.is_running)
    assert "Cancelled" in panel.summary_label.text() and panel.validation_button.isEnabled()
