"""HeatmapControls: "Show where the model looked" for a large view: a switch, which class to
explain, an opacity slider; the heatmaps are drawn by core (Grad-CAM) in a background Job,
one picture at a time, and kept while the view is open."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QWidget

from ptm_studio.gui.jobs.job import Job, JobContext
from ptm_studio.gui.plain_text import plain_label

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.explain import Heatmap
    from ptm_studio.core.inference import ModelSource

PREDICTED = -1  # the class combo's "the model's answer"


def rgb_image(pixels: np.ndarray) -> QImage:
    """A uint8 RGB array as a QImage that owns its pixels."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def show_large(label: QLabel, image: QImage, size: int) -> None:
    """``image`` on ``label``, small pictures enlarged to ``size`` to be seen; a picture that
    cannot be read says so."""
    if image.isNull():
        label.setPixmap(QPixmap())
        label.setText("This picture cannot be shown (the file may be missing or damaged).")
        return
    if max(image.width(), image.height()) < size:
        image = image.scaled(
            size,
            size,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    label.setPixmap(QPixmap.fromImage(image))


class HeatmapControls(QWidget):
    overlay_changed = Signal()
    """The picture to show changed (a heatmap arrived, or the switch or opacity moved)."""

    def __init__(
        self,
        source: ModelSource | None,
        class_names: tuple[str, ...],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.source = source
        self.path: Path | None = None
        self._heatmaps: dict[tuple[Path, int], Heatmap] = {}
        self.job = Job("ptm-heatmap", self)
        self.job.succeeded.connect(self._on_heatmap)
        self.job.failed.connect(self._on_failed)
        self.switch = QCheckBox("Show where the model looked")
        self.switch.setToolTip(
            "A heatmap (Grad-CAM): red where the picture speaks most for the class chosen, "
            "blue where it does not. It shows what the model used, not whether it is right."
        )
        self.switch.toggled.connect(self._on_switch)
        self.class_combo = QComboBox()
        self.class_combo.addItem("its answer", PREDICTED)
        for index, name in enumerate(class_names):
            self.class_combo.addItem(name, index)
        self.class_combo.setToolTip("Which class to explain: the model's answer, or any other.")
        self.class_combo.currentIndexChanged.connect(self._request)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.opacity_slider.setToolTip("How strongly the heatmap covers the picture.")
        self.opacity_slider.valueChanged.connect(self.overlay_changed)
        self.status_label = plain_label()
        self.status_label.setObjectName("hint")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.switch)
        row.addWidget(plain_label("for", word_wrap=False))
        row.addWidget(self.class_combo)
        row.addWidget(plain_label("Opacity:", word_wrap=False))
        row.addWidget(self.opacity_slider)
        row.addWidget(self.status_label, 1)
        self._update_enabled()
        if source is None:
            self.switch.setEnabled(False)
            self.switch.setToolTip("Heatmaps need a saved model: evaluate the run first.")

    @property
    def class_index(self) -> int:
        return int(self.class_combo.currentData())

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100

    def show_for(self, path: Path) -> None:
        """The view now shows ``path``: draw its heatmap if the switch is on."""
        self.path = Path(path)
        self._request()

    def overlay_for(self, path: Path) -> QImage | None:
        """The picture as the model saw it with its heatmap over it, when there is one to show."""
        found = self._heatmaps.get((Path(path), self.class_index))
        if not self.switch.isChecked() or found is None or found.picture is None:
            return None
        from ptm_studio.core.explain import overlay  # torch: loaded after the window is up

        return rgb_image(overlay(found.picture, found, self.opacity))

    def shutdown(self) -> None:
        self.job.cancel()
        self.job.wait()

    # ------------------------------------------------------------------ the work
    @Slot()
    def _request(self) -> None:
        self._update_enabled()
        if not self.switch.isChecked() or self.source is None or self.path is None:
            self.overlay_changed.emit()
            return
        key = (self.path, self.class_index)
        if key in self._heatmaps:
            self._describe(self._heatmaps[key])
            self.overlay_changed.emit()
            return
        self.status_label.setText("Drawing the heatmap…")
        source, path, class_index = self.source, self.path, self.class_index

        def work(context: JobContext) -> tuple[int, Heatmap]:
            from ptm_studio.core.explain import heatmap  # torch: loaded after the window is up

            chosen = None if class_index == PREDICTED else class_index

            def should_stop() -> bool:
                return context.is_cancelled

            with source.use(should_stop) as predictor:  # taking turns with the map
                return class_index, heatmap(predictor, path, chosen)

        self.job.restart(work)

    @Slot(object)
    def _on_heatmap(self, result: tuple[int, Heatmap]) -> None:
        asked_for, found = result
        if found.path is None:
            return
        self._heatmaps[(found.path, asked_for)] = found
        if (found.path, asked_for) == (self.path, self.class_index):
            self._describe(found)
            self.overlay_changed.emit()

    def _describe(self, found: Heatmap) -> None:
        if not found.has_evidence:
            self.status_label.setText(f"Nothing in this picture speaks for '{found.class_name}'.")
        else:
            self.status_label.setText(
                f"Where it saw '{found.class_name}' ({100 * found.probability:.0f} %)."
            )

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self.status_label.setText(message)
        self.overlay_changed.emit()

    @Slot(bool)
    def _on_switch(self, _checked: bool) -> None:
        if not self.switch.isChecked():
            self.status_label.clear()
        self._request()

    def _update_enabled(self) -> None:
        on = self.switch.isChecked()
        self.class_combo.setEnabled(on)
        self.opacity_slider.setEnabled(on)
