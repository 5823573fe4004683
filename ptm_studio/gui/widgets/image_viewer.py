"""ImageViewer: one validation image large, with its true label and the model's top-5 probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.gui.widgets.heatmap_controls import HeatmapControls, show_large
from ptm_studio.gui.widgets.thumbnail_grid import load_thumbnail

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.inference import ModelSource

VIEW_SIZE = 448


def _plain_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class ImageViewer(QDialog):
    def __init__(
        self,
        record: Any,
        class_names: tuple[str, ...],
        parent: QWidget | None = None,
        *,
        source: ModelSource | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(Path(record.path).name)
        self.image_label = _plain_label()
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(256, 256)
        self.record = record
        self.heatmap = HeatmapControls(source, class_names)
        self.heatmap.overlay_changed.connect(self._show_picture)
        self._show_picture()
        self.heatmap.show_for(Path(record.path))

        def name_of(index: int) -> str:
            return class_names[index] if 0 <= index < len(class_names) else f"class {index}"

        verdict = "Correct" if record.is_correct else "Mistake"
        self.verdict_label = _plain_label(
            f"{verdict}: the model says {name_of(record.predicted_index)} "
            f"({100 * record.confidence:.1f} % sure); the label is {name_of(record.true_index)}."
        )
        self.path_label = _plain_label(record.path)
        self.path_label.setObjectName("hint")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.loss_label = _plain_label(
            f"Loss on this image: {record.loss:.3f} (higher = more wrong)"
        )
        bars = QGridLayout()
        bars.addWidget(_plain_label("Top guesses:"), 0, 0, 1, 2)
        self.top_labels: list[QLabel] = []
        for row, (index, probability) in enumerate(
            zip(record.top_indices[:5], record.top_probabilities[:5], strict=False), start=1
        ):
            name = _plain_label(name_of(index))
            self.top_labels.append(name)
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * probability))
            bar.setFormat(f"{100 * probability:.1f} %")
            bars.addWidget(name, row, 0)
            bars.addWidget(bar, row, 1)
        bars.setColumnStretch(1, 1)
        side = QVBoxLayout()
        side.addWidget(self.verdict_label)
        side.addWidget(self.loss_label)
        side.addLayout(bars)
        side.addStretch(1)
        side.addWidget(self.path_label)
        body = QHBoxLayout()
        body.addWidget(self.image_label, 3)
        body.addLayout(side, 2)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(body)
        layout.addWidget(self.heatmap)
        layout.addWidget(buttons)
        self.resize(820, 500)

    @Slot()
    def _show_picture(self) -> None:
        image = self.heatmap.overlay_for(Path(self.record.path))
        if image is None:
            image = load_thumbnail(self.record.path, VIEW_SIZE)
        show_large(self.image_label, image, VIEW_SIZE)

    def done(self, result: int) -> None:
        self.heatmap.shutdown()  # no heatmap thread outlives the view
        super().done(result)
