"""PredictionViewer: one predicted picture large, its top guesses as bars, Previous/Next through
the others, and "Show in folder"."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.widgets.heatmap_controls import HeatmapControls, show_large
from ptm_studio.gui.widgets.thumbnail_grid import load_thumbnail

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.inference import ModelSource, Prediction

VIEW_SIZE = 448


class PredictionViewer(QDialog):
    def __init__(
        self,
        predictions: Sequence[Prediction],
        position: int,
        threshold: float = 0.0,
        parent: QWidget | None = None,
        *,
        source: ModelSource | None = None,
        class_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(parent)
        self.predictions, self.position, self.threshold = list(predictions), position, threshold
        self.heatmap = HeatmapControls(source, class_names)
        self.heatmap.overlay_changed.connect(self._repaint_picture)
        self.image_label = plain_label()
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(VIEW_SIZE, VIEW_SIZE)
        self.answer_label = plain_label()
        self.answer_label.setObjectName("summary")
        self.path_label = plain_label()
        self.path_label.setObjectName("hint")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bars = QGridLayout()
        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.setToolTip("The picture before this one (Left arrow).")
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip("The next picture (Right arrow).")
        self.folder_button = QPushButton("Show in folder")
        self.folder_button.setToolTip("Open the folder that holds this picture.")
        close_button = QPushButton("Close")
        self.previous_button.clicked.connect(self.show_previous)
        self.next_button.clicked.connect(self.show_next)
        self.folder_button.clicked.connect(self.show_in_folder)
        close_button.clicked.connect(self.accept)
        QShortcut(QKeySequence(Qt.Key.Key_Left), self, self.show_previous)
        QShortcut(QKeySequence(Qt.Key.Key_Right), self, self.show_next)
        side = QVBoxLayout()
        side.addWidget(self.answer_label)
        side.addLayout(self.bars)
        side.addStretch(1)
        side.addWidget(self.path_label)
        body = QHBoxLayout()
        body.addWidget(self.image_label, 3)
        body.addLayout(side, 2)
        buttons = QHBoxLayout()
        for button in (self.previous_button, self.next_button, self.folder_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(self.heatmap)
        layout.addLayout(buttons)
        self.resize(900, 560)
        self.show_position(position)

    @property
    def prediction(self) -> Prediction:
        return self.predictions[self.position]

    def show_position(self, position: int) -> None:
        self.position = max(0, min(position, len(self.predictions) - 1))
        prediction = self.prediction
        self.setWindowTitle(
            f"{prediction.path.name} ({self.position + 1} of {len(self.predictions)})"
        )
        self._show_picture(prediction.path)
        self.heatmap.show_for(prediction.path)
        self.path_label.setText(str(prediction.path))
        self._show_answer(prediction)
        self.previous_button.setEnabled(self.position > 0)
        self.next_button.setEnabled(self.position < len(self.predictions) - 1)

    @Slot()
    def show_previous(self) -> None:
        if self.position > 0:
            self.show_position(self.position - 1)

    @Slot()
    def show_next(self) -> None:
        if self.position < len(self.predictions) - 1:
            self.show_position(self.position + 1)

    def done(self, result: int) -> None:
        self.heatmap.shutdown()  # no heatmap thread outlives the view
        super().done(result)

    @Slot()
    def show_in_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.prediction.path.parent)))

    @Slot()
    def _repaint_picture(self) -> None:
        self._show_picture(self.prediction.path)

    def _show_picture(self, path: Path) -> None:
        image = self.heatmap.overlay_for(path)  # the model's crop with its heatmap, when on
        if image is None:
            image = load_thumbnail(str(path), VIEW_SIZE)
        show_large(self.image_label, image, VIEW_SIZE)

    def _show_answer(self, prediction: Prediction) -> None:
        while self.bars.count():
            item = self.bars.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        if prediction.error:
            self.answer_label.setText(f"This picture could not be read: {prediction.error}")
            return
        answer = prediction.answer(self.threshold)
        if answer == prediction.predicted_class:
            self.answer_label.setText(f"{answer} ({100 * prediction.confidence:.1f} % sure)")
        else:
            self.answer_label.setText(
                f"Not sure: the best guess, {prediction.predicted_class}, is only "
                f"{100 * prediction.confidence:.1f} % sure (below your {100 * self.threshold:.0f} %)."
            )
        for row, (name, probability) in enumerate(
            zip(prediction.top_classes, prediction.top_probabilities, strict=True)
        ):
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * probability))
            bar.setFormat(f"{100 * probability:.1f} %")
            self.bars.addWidget(plain_label(name, word_wrap=False), row, 0)
            self.bars.addWidget(bar, row, 1)
        self.bars.setColumnStretch(1, 1)
