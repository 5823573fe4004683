"""PretrainingPanel: how self-supervised pretraining is going, per epoch, and what it sees.

A health line (embedding spread in plain words, k-nearest-neighbour accuracy), a small plot of
both per epoch, and a strip of sample pictures: inputs and reconstructions, or the two views a
contrastive objective compares. Events arrive at epoch rate, so everything updates at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from ptm_studio.core.engine.events import EpochFinished, PretrainSamplesReady, TrainingStarted
from ptm_studio.gui import theme
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.run_history import logged_number
from ptm_studio.gui.widgets.live_curve import LivePlot

SAMPLE_SIZE_PX = 80
# Same thresholds as ptm_studio.core.objectives.pretrain_health (not imported: it pulls in torch).
COLLAPSE_THRESHOLD = 0.1
LOW_SPREAD_THRESHOLD = 0.3
ROW_TITLES = {
    "reconstruction": ("Input", "Reconstruction"),
    "pair": ("View 1", "View 2"),
}
PLACEHOLDER = (
    "Pretraining views appear here when the task is Pretrain (in the Objective settings): after each "
    "epoch, how well the network tells pictures apart and a few pictures as it sees them."
)


def read_spread(value: float) -> str:
    """Short plain-language reading of the embedding spread (≈1 healthy, towards 0 collapsed)."""
    if not math.isfinite(value):
        return "not measured"
    if value < COLLAPSE_THRESHOLD:
        return "Collapsed — every picture looks the same to the network"
    if value < LOW_SPREAD_THRESHOLD:
        return "Low — the features are bunching up"
    return "Healthy"


def image_to_pixmap(image: np.ndarray, size_px: int = SAMPLE_SIZE_PX) -> QPixmap:
    """A uint8 [H, W, 3] array as a pixmap scaled to ``size_px`` (the bytes are copied)."""
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = pixels.shape[:2]
    qimage = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    scaled = qimage.scaled(
        size_px,
        size_px,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.FastTransformation,  # nearest: small pictures stay crisp
    )
    return QPixmap.fromImage(scaled)


class PretrainingPanel(QWidget):
    """Health line, spread / k-NN / linear-probe plot and sample strip of a pretraining run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.placeholder_label = plain_label(PLACEHOLDER)
        self.placeholder_label.setObjectName("hint")
        self.health_label = plain_label("")
        self.health_label.setToolTip(
            "Spread: how differently the network describes different pictures (about 1 is "
            "healthy, near 0 means collapse). k-NN accuracy: share of validation pictures whose "
            "class their most similar training pictures guess right. Linear probe: share a "
            "simple classifier on the network's features gets right, what a finetuned last "
            "layer could make of them (both need labelled folders)."
        )
        self.plot = LivePlot("Pretraining health per epoch", "Epoch", "Value (0–1)", integer_x=True)
        self.plot.add_curve("spread", "spread", theme.TRAIN_COLOUR, with_symbols=True)
        self.plot.add_curve("knn", "k-NN accuracy", theme.VALIDATION_COLOUR, with_symbols=True)
        self.plot.add_curve("probe", "linear probe", theme.LEARNING_RATE_COLOUR, with_symbols=True)
        self.samples_title = plain_label("")
        self.sample_grid_host = QWidget()
        self.sample_grid = QGridLayout(self.sample_grid_host)
        self.sample_grid.setContentsMargins(0, 0, 0, 0)
        self.sample_grid.setSpacing(4)
        self.sample_scroll = QScrollArea()
        self.sample_scroll.setWidget(self.sample_grid_host)
        self.sample_scroll.setWidgetResizable(True)
        self.sample_scroll.setMinimumHeight(2 * SAMPLE_SIZE_PX + 60)
        self.image_labels: list[QLabel] = []
        self._row_labels: list[QLabel] = []
        self._continued_run_dir: Path | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.placeholder_label)
        layout.addWidget(self.health_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.samples_title)
        layout.addWidget(self.sample_scroll)
        self._best_epoch: int | None = None  # the one later runs start from
        self.clear()

    @Slot(object)
    def start_run(self, event: TrainingStarted) -> None:
        """A new run clears the panel; the run whose history was just shown continues it."""
        continued, self._continued_run_dir = self._continued_run_dir, None
        if continued is None or event.run_dir is None or Path(event.run_dir) != continued:
            self.clear()

    def show_history(self, epochs: Iterable[Mapping[str, Any]], run_dir: Path) -> None:
        """Replace the plot with a run's logged epoch records (a resumed run continues it)."""
        self.clear()
        for record in epochs:
            epoch = record.get("epoch")
            if isinstance(epoch, int):
                self._add_point(
                    epoch,
                    logged_number(record, "embedding_spread"),
                    logged_number(record, "val_accuracy"),
                    logged_number(record, "probe_accuracy"),
                    is_best=record.get("is_best") is True,
                )
        self._continued_run_dir = Path(run_dir)

    @Slot(object)
    def add_epoch(self, event: EpochFinished) -> None:
        """Take one epoch's spread and k-NN accuracy; ignored when the run is not pretraining."""
        self._add_point(
            event.epoch,
            event.embedding_spread,
            event.val_accuracy,
            event.probe_accuracy,
            is_best=event.is_best,
        )

    def _add_point(
        self, epoch: int, spread: float, accuracy: float, probe: float, *, is_best: bool
    ) -> None:
        if math.isnan(spread):
            return  # finetuning epochs carry no spread
        if is_best and math.isfinite(probe):
            self._best_epoch = epoch  # the epochs are ranked by the probe (PretrainTask)
        self.plot.append("spread", epoch, spread)
        self.plot.append("knn", epoch, accuracy)
        self.plot.append("probe", epoch, probe)
        self.plot.refresh()
        knn = f"{100 * accuracy:.1f} %" if math.isfinite(accuracy) else "not measured (no labels)"
        measured = f"k-NN accuracy {knn}"
        if math.isfinite(probe):
            measured += f" · linear probe {100 * probe:.1f} %"
        if self._best_epoch is not None:
            measured += (
                f"\nLater runs start from epoch {self._best_epoch}'s backbone: its features did "
                "best in the linear probe so far."
            )
        self.health_label.setText(
            f"Epoch {epoch}: spread {spread:.2f} ({read_spread(spread)}) · {measured}"
        )
        self._set_has_content(True)

    @Slot(object)
    def show_samples(self, event: PretrainSamplesReady) -> None:
        """Replace the sample strip with the event's two rows of pictures."""
        self._clear_samples()
        first_title, second_title = ROW_TITLES.get(event.kind, ("First", "Second"))
        self.samples_title.setText(f"Pictures after epoch {event.epoch}")
        for row, (title, images) in enumerate(
            ((first_title, event.first_images), (second_title, event.second_images))
        ):
            row_label = plain_label(title)
            self.sample_grid.addWidget(row_label, row, 0)
            self._row_labels.append(row_label)
            for column, image in enumerate(images, start=1):
                label = QLabel()
                label.setPixmap(image_to_pixmap(image))
                label.setFixedSize(SAMPLE_SIZE_PX, SAMPLE_SIZE_PX)
                label.setAlignment(Qt.AlignmentFlag.AlignCenter)
                self.sample_grid.addWidget(label, row, column)
                self.image_labels.append(label)
        self.sample_grid.setColumnStretch(len(event.first_images) + 1, 1)
        self._set_has_content(True)
        self._set_has_samples(True)

    def clear(self) -> None:
        self._best_epoch = None
        self.plot.clear_data()
        self.plot.refresh()
        self.health_label.setText("")
        self.samples_title.setText("")
        self._clear_samples()
        self._set_has_content(False)
        self._set_has_samples(False)

    def _clear_samples(self) -> None:
        for label in self.image_labels + self._row_labels:
            self.sample_grid.removeWidget(label)
            label.deleteLater()
        self.image_labels = []
        self._row_labels = []

    def _set_has_content(self, has_content: bool) -> None:
        self.placeholder_label.setVisible(not has_content)
        for widget in (self.health_label, self.plot):
            widget.setVisible(has_content)

    def _set_has_samples(self, has_samples: bool) -> None:
        """Some objectives (rotation) show no pictures: no empty frame for them."""
        for widget in (self.samples_title, self.sample_scroll):
            widget.setVisible(has_samples)


def _preview() -> None:  # pragma: no cover - manual preview
    from ptm_studio.gui.panels._preview import (
        fake_pretrain_epoch,
        fake_pretrain_samples,
        run_preview,
    )

    def build() -> PretrainingPanel:
        panel = PretrainingPanel()
        for epoch in range(1, 6):
            panel.add_epoch(fake_pretrain_epoch(epoch))
        panel.show_samples(fake_pretrain_samples(5, kind="reconstruction"))
        return panel

    run_preview(build, size=(1000, 650))


if __name__ == "__main__":
    _preview()
