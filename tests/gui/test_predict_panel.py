"""The New pictures tab: dropped files are predicted in the background, "not sure" follows
the threshold, every file gets a CSV row, the large view steps through them, and Cancel
leaves no thread behind."""

from __future__ import annotations

import csv
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

from ptm_studio.core import inference as core_inference  # the panel imports it on use
from ptm_studio.core.explain import Heatmaps
from ptm_studio.core.inference import PredictionCancelled
from ptm_studio.core.run_catalog import run_title
from ptm_studio.gui.panels.predict_panel import PredictPanel


def _drop(target: Any, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    if isinstance(target, PredictPanel):
        target.dropEvent(event)
    else:  # the window: its event filter, which Qt calls with a real drop (a synthetic drop
        # sent with sendEvent never reaches filters offscreen)
        assert target.model_tabs.eventFilter(target, event)


def _pictures(trained_run: Path, tmp_path: Path) -> Path:
    """Three readable pictures of the run's own kind and one broken file, in a new folder."""
    folder = tmp_path / "new pictures"
    source = Path(trained_run).parent.parent / "images" / "cat"
    folder.mkdir()
    for picture in sorted(source.iterdir())[:3]:
        shutil.copy(picture, folder / picture.name)
    (folder / "broken.png").write_bytes(b"this is not a picture")
    return folder


def _panel(qtbot: Any, trained_run: Path) -> PredictPanel:
    panel = PredictPanel()
    qtbot.addWidget(panel)
    panel.set_run(trained_run)
    return panel


def test_a_dropped_file_shows_its_prediction(qtbot: Any, trained_run: Path, tmp_path: Path) -> None:
    panel = _panel(qtbot, trained_run)
    assert panel.run_label.text().startswith(f"Model: {run_title(trained_run)}, best (epoch")
    assert " · Small CNN · " in panel.run_label.text()  # by the name the Runs tab shows
    picture = next(_pictures(trained_run, tmp_path).glob("image_*.png"))
    with qtbot.waitSignal(panel.job.succeeded, timeout=30_000):
        _drop(panel, [picture])
    qtbot.waitUntil(lambda: not panel.job.is_running)
    assert panel.model.rowCount() == 1
    prediction = panel.model.predictions[0]
    assert prediction.path == picture and prediction.predicted_class in ("cat", "dog", "bird")
    caption = panel.model.data(panel.model.index(0))
    assert caption in (
        f"{prediction.predicted_class} {100 * prediction.confidence:.0f} %",
        f"not sure ({prediction.predicted_class}?)",
    )
    assert panel.summary_label.text().startswith("1 picture: 1 ")


def test_a_folder_dropped_on_the_window_is_predicted_every_file_kept_in_the_csv(
    qtbot: Any, make_window: Any, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    panel = window.predict_panel
    panel.set_run(trained_run)
    folder = _pictures(trained_run, tmp_path)
    with qtbot.waitSignal(panel.job.succeeded, timeout=30_000):
        _drop(window, [folder])
    qtbot.waitUntil(lambda: not panel.job.is_running)
    assert window.layout_parts.tabs.currentWidget() is panel
    assert panel.model.rowCount() == 4
    assert "1 could not be read" in panel.summary_label.text()
    broken = next(p for p in panel.model.predictions if p.path.name == "broken.png")
    assert panel.model.data(panel.model.index(panel.model.predictions.index(broken))) == (
        "could not be read"
    )

    panel.threshold_spin.setValue(100)  # nothing is that sure: every readable answer is "not sure"
    captions = [panel.model.data(panel.model.index(row)) for row in range(4)]
    assert sum(caption.startswith("not sure") for caption in captions) == 3
    assert "3 not sure" in panel.summary_label.text()

    target = tmp_path / "answers.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kw: (str(target), ""))
    panel.csv_button.click()
    with open(target, encoding="utf-8") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert len(rows) == 4 and rows["broken.png"]["error"] and rows["broken.png"]["answer"] == ""
    assert {row["answer"] for name, row in rows.items() if name != "broken.png"} == {"not sure"}
    assert f"Saved 4 rows to {target}" in panel.summary_label.text()
    panel.set_run(trained_run)  # another model: the answers of the one before go
    assert panel.model.rowCount() == 0 and panel.result is None and not panel.csv_button.isEnabled()


def test_the_large_view_steps_through_the_pictures(
    qtbot: Any, trained_run: Path, tmp_path: Path
) -> None:
    panel = _panel(qtbot, trained_run)
    panel.threshold_spin.setValue(0)
    with qtbot.waitSignal(panel.job.succeeded, timeout=30_000):
        panel.predict([_pictures(trained_run, tmp_path)])
    qtbot.waitUntil(lambda: not panel.job.is_running)
    panel.grid.clicked.emit(panel.model.index(0))
    viewer = panel.viewer
    assert viewer is not None and viewer.position == 0
    assert not viewer.previous_button.isEnabled()
    assert viewer.bars.count() == 2 * len(viewer.prediction.top_classes)
    assert "could not be read" in viewer.answer_label.text()  # broken.png comes first by name
    viewer.next_button.click()
    assert viewer.prediction.path.name == "image_000.png"
    assert "% sure" in viewer.answer_label.text()
    viewer.next_button.click()
    viewer.next_button.click()
    assert viewer.position == 3 and not viewer.next_button.isEnabled()
    viewer.show_previous()
    assert viewer.position == 2 and viewer.windowTitle() == "image_001.png (3 of 4)"
    viewer.close()


def test_cancel_stops_predicting_and_leaves_no_thread(
    qtbot: Any, trained_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_predict(
        source: Path, inputs: list[Path], *, top_k: int, on_progress: Any, should_stop: Any
    ) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if should_stop():
                raise PredictionCancelled
            on_progress(1, 1000)
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(core_inference, "predict_pictures", slow_predict)
    panel = _panel(qtbot, trained_run)
    panel.predict([Path("anything")])
    qtbot.waitUntil(lambda: "of 1000 pictures" in panel.progress.label.text())
    assert not panel.folder_button.isEnabled()
    with qtbot.waitSignal(panel.job.cancelled, timeout=10_000):
        panel.progress.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.job.is_running)
    assert panel.summary_label.text() == "Prediction cancelled." and panel.folder_button.isEnabled()


def test_the_heatmap_overlay_toggles_in_the_large_view(
    qtbot: Any, trained_run: Path, tmp_path: Path
) -> None:
    panel = _panel(qtbot, trained_run)
    with qtbot.waitSignal(panel.job.succeeded, timeout=30_000):
        panel.predict([_pictures(trained_run, tmp_path)])
    qtbot.waitUntil(lambda: not panel.job.is_running)
    panel.grid.clicked.emit(panel.model.index(1))  # a readable picture
    viewer = panel.viewer
    assert viewer is not None
    controls = viewer.heatmap
    plain = viewer.image_label.pixmap().toImage()
    assert controls.overlay_for(viewer.prediction.path) is None

    with qtbot.waitSignal(controls.job.succeeded, timeout=30_000):
        controls.switch.setChecked(True)
    qtbot.waitUntil(lambda: controls.overlay_for(viewer.prediction.path) is not None)
    shown = viewer.image_label.pixmap().toImage()
    assert shown != plain  # the picture now carries the heatmap's colours
    assert "Where it saw" in controls.status_label.text() or "Nothing" in (
        controls.status_label.text()
    )
    controls.opacity_slider.setValue(100)  # all heatmap: again another picture
    assert viewer.image_label.pixmap().toImage() != shown

    other = controls.class_combo.findData(2)  # explain the third class, whatever the answer
    name = controls.class_combo.itemText(other)
    with qtbot.waitSignal(controls.job.succeeded, timeout=30_000):
        controls.class_combo.setCurrentIndex(other)
    qtbot.waitUntil(lambda: f"'{name}'" in controls.status_label.text())

    controls.switch.setChecked(False)
    assert viewer.image_label.pixmap().toImage() == plain
    viewer.close()
    qtbot.waitUntil(lambda: not controls.job.is_running)


def test_the_grid_shows_heatmaps_and_drawing_them_can_be_cancelled(
    qtbot: Any, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = _panel(qtbot, trained_run)
    with qtbot.waitSignal(panel.job.succeeded, timeout=30_000):
        panel.predict([_pictures(trained_run, tmp_path)])
    qtbot.waitUntil(lambda: not panel.job.is_running)
    heatmaps = panel.model.heatmaps
    with qtbot.waitSignal(heatmaps.job.succeeded, timeout=60_000):
        panel.heatmap_box.setChecked(True)
    readable = [p for p in panel.model.predictions if not p.error]
    assert all(heatmaps.pixmap(str(p.path)) is not None for p in readable)
    row = panel.model.predictions.index(readable[0])
    decoration = panel.model.data(panel.model.index(row), Qt.ItemDataRole.DecorationRole)
    assert decoration is heatmaps.pixmap(str(readable[0].path))
    panel.heatmap_box.setChecked(False)

    from ptm_studio.core import explain as core_explain  # gallery_heatmaps imports it on use
    from ptm_studio.gui.widgets import gallery_heatmaps

    go_on = threading.Event()

    def slow(predictor: Any, paths: Any) -> Any:
        go_on.wait(timeout=20)  # a chunk that takes until the test says
        return Heatmaps(())

    heatmaps.clear()
    monkeypatch.setattr(gallery_heatmaps, "CHUNK", 1)
    monkeypatch.setattr(core_explain, "heatmaps_for_paths", slow)
    panel.heatmap_box.setChecked(True)
    qtbot.waitUntil(lambda: not panel.heatmap_progress.isHidden())
    with qtbot.waitSignal(heatmaps.job.cancelled, timeout=10_000):
        panel.heatmap_progress.cancel_button.click()
        go_on.set()  # the chunk ends; the next one is not started
    qtbot.waitUntil(lambda: not heatmaps.job.is_running)
