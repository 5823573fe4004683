"""PredictionsPanel: the validation images after each epoch, with predicted and true labels.

Filter by class and by correct/mistake, sort by loss ("top losses": the model's worst mistakes
first) or by confidence; click an image to see it large with its top-5 probabilities. The grid is
a QListView over a model: thumbnails load lazily off the GUI thread, so 10k images scroll smoothly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.engine.events import PredictionsReady
from ptm_studio.core.evaluation import Evaluation
from ptm_studio.core.inference import ModelSource
from ptm_studio.gui import theme
from ptm_studio.gui.plain_text import plain_label, plain_tooltip
from ptm_studio.gui.widgets.gallery_heatmaps import GalleryHeatmaps
from ptm_studio.gui.widgets.image_viewer import ImageViewer
from ptm_studio.gui.widgets.job_progress import JobProgress
from ptm_studio.gui.widgets.thumbnail_grid import ThumbnailCache, ThumbnailGrid

THUMBNAIL_SIZE = 112
CELL = QSize(THUMBNAIL_SIZE + 16, THUMBNAIL_SIZE + 48)
RecordRole = Qt.ItemDataRole.UserRole + 1
SORTS = {
    "loss": "Worst mistakes first (top losses)",
    "confidence_low": "Least confident first",
    "confidence_high": "Most confident first",
    "name": "File name",
}
CORRECTNESS = {
    "all": "Correct and mistakes",
    "mistakes": "Mistakes only",
    "correct": "Correct only",
}


class PredictionsModel(QAbstractListModel):
    """Holds every record of the last validation pass and the filtered, sorted order shown."""

    def __init__(self, cache: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self.records: tuple[Any, ...] = ()
        self.class_names: tuple[str, ...] = ()
        self._order: list[int] = []
        self._rows_of_path: dict[str, list[int]] = {}
        self.class_filter = -1
        self.pair_filter: tuple[int, int] | None = None  # (true, predicted): one matrix cell
        self.heatmaps = GalleryHeatmaps(THUMBNAIL_SIZE, self)
        self.heatmaps.overlay_ready.connect(self._on_thumbnail_ready)
        self.show_heatmaps = False
        self.correctness = "all"
        self.sort_key = "loss"
        cache.thumbnail_ready.connect(self._on_thumbnail_ready)

    def set_predictions(self, class_names: tuple[str, ...], records: tuple[Any, ...]) -> None:
        self.class_names = tuple(class_names)
        self.records = tuple(records)
        self.pair_filter = None
        self.apply_view()

    def set_view(self, *, class_filter: int, correctness: str, sort_key: str) -> None:
        self.class_filter, self.correctness, self.sort_key = class_filter, correctness, sort_key
        self.apply_view()

    def set_pair_filter(self, pair: tuple[int, int] | None) -> None:
        """Only the pictures of true class ``pair[0]`` answered ``pair[1]`` (None: all)."""
        self.pair_filter = pair
        self.apply_view()

    def apply_view(self) -> None:
        records = self.records
        if records:
            true = np.fromiter((r.true_index for r in records), dtype=np.int64, count=len(records))
            predicted = np.fromiter(
                (r.predicted_index for r in records), dtype=np.int64, count=len(records)
            )
            keep = np.ones(len(records), dtype=bool)
            if self.class_filter >= 0:
                keep &= true == self.class_filter
            if self.pair_filter is not None:
                keep &= (true == self.pair_filter[0]) & (predicted == self.pair_filter[1])
            if self.correctness == "mistakes":
                keep &= true != predicted
            elif self.correctness == "correct":
                keep &= true == predicted
            indices = np.flatnonzero(keep)
            indices = indices[self._sort_order(indices)]
            order = indices.tolist()
        else:
            order = []
        self.beginResetModel()
        self._order = order
        self._rows_of_path = {}
        for row, index in enumerate(order):
            self._rows_of_path.setdefault(records[index].path, []).append(row)
        self.endResetModel()

    def _sort_order(self, indices: np.ndarray) -> np.ndarray:
        records = self.records
        if self.sort_key == "name":
            return np.argsort([Path(records[i].path).name.lower() for i in indices], kind="stable")
        if self.sort_key == "loss":
            values = -np.array([_finite_or(records[i].loss, np.inf) for i in indices])
        else:
            values = np.array([records[i].confidence for i in indices], dtype=np.float64)
            if self.sort_key == "confidence_high":
                values = -values
        return np.argsort(values, kind="stable")

    def shown_paths(self) -> list[str]:
        """The paths in the order shown (filtered and sorted)."""
        return [self.records[index].path for index in self._order]

    def record_at(self, row: int) -> Any:
        return self.records[self._order[row]]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._order)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid() or index.row() >= len(self._order):
            return None
        record = self.record_at(index.row())
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{self.name_of(record.predicted_index)} {100 * record.confidence:.0f} %"
        if role == Qt.ItemDataRole.DecorationRole:
            drawn = self.heatmaps.pixmap(record.path) if self.show_heatmaps else None
            return drawn or self._cache.pixmap(record.path) or self._cache.placeholder
        if role == Qt.ItemDataRole.ToolTipRole:
            verdict = "correct" if record.is_correct else "MISTAKE"
            return plain_tooltip(
                f"{record.path}\nPredicted: {self.name_of(record.predicted_index)} "
                f"({100 * record.confidence:.1f} %)\nTrue label: {self.name_of(record.true_index)}\n"
                f"Loss: {record.loss:.3f} ({verdict})"
            )
        if role == RecordRole:
            return record
        return None

    def name_of(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else f"class {index}"

    @Slot(str)
    def _on_thumbnail_ready(self, path: str) -> None:
        for row in self._rows_of_path.get(path, ()):
            model_index = self.index(row)
            self.dataChanged.emit(model_index, model_index, [Qt.ItemDataRole.DecorationRole])


def _finite_or(value: float, default: float) -> float:
    return value if np.isfinite(value) else default


class PredictionDelegate(QStyledItemDelegate):
    """Thumbnail with a green (correct) or red (mistake) frame, then predicted and true label as text."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        record = index.data(RecordRole)
        if record is None:
            return
        model = index.model()
        if not isinstance(model, PredictionsModel):
            return
        painter.save()
        rect = option.rect.adjusted(2, 2, -2, -2)
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, option.palette.highlight())
        pixmap = index.data(Qt.ItemDataRole.DecorationRole)
        image_rect = QRect(
            rect.x() + (rect.width() - THUMBNAIL_SIZE) // 2,
            rect.y() + 4,
            THUMBNAIL_SIZE,
            THUMBNAIL_SIZE,
        )
        if pixmap is not None and not pixmap.isNull():
            size = pixmap.deviceIndependentSize().toSize()
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(image_rect.center())
            painter.drawPixmap(target, pixmap)
        colour = theme.CORRECT_COLOUR if record.is_correct else theme.INCORRECT_COLOUR
        painter.setPen(QPen(colour, 3))
        painter.drawRect(image_rect.adjusted(-1, -1, 1, 1))
        mark = theme.icon("correct" if record.is_correct else "incorrect")
        mark.paint(painter, QRect(image_rect.right() - 20, image_rect.top() + 3, 18, 18))
        text_rect = QRect(rect.x() + 2, image_rect.bottom() + 4, rect.width() - 4, 18)
        metrics = option.fontMetrics
        painter.setPen(option.palette.color(option.palette.ColorRole.Text))
        predicted = f"{model.name_of(record.predicted_index)} {100 * record.confidence:.0f} %"
        painter.drawText(
            text_rect,
            Qt.AlignmentFlag.AlignCenter,
            metrics.elidedText(predicted, Qt.TextElideMode.ElideMiddle, text_rect.width()),
        )
        text_rect.translate(0, 18)
        painter.setPen(
            colour
            if not record.is_correct
            else option.palette.color(option.palette.ColorRole.PlaceholderText)
        )
        truth = f"true: {model.name_of(record.true_index)}"
        painter.drawText(
            text_rect,
            Qt.AlignmentFlag.AlignCenter,
            metrics.elidedText(truth, Qt.TextElideMode.ElideMiddle, text_rect.width()),
        )
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return CELL


class PredictionsPanel(QWidget):
    image_opened = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cache = ThumbnailCache(THUMBNAIL_SIZE, self)
        self.model = PredictionsModel(self.cache, self)
        self.grid = ThumbnailGrid(CELL)
        self.grid.setModel(self.model)
        self.grid.setItemDelegate(PredictionDelegate(self.grid))
        self.grid.setToolTip("Click an image to see it large with the model's top guesses.")
        self.grid.clicked.connect(self._on_clicked)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Show only images whose true class is this one.")
        self.class_combo.addItem("All classes", -1)
        self.correct_combo = QComboBox()
        self.correct_combo.setToolTip(
            "Show every image, only the mistakes, or only the correct ones."
        )
        for key, text in CORRECTNESS.items():
            self.correct_combo.addItem(text, key)
        self.sort_combo = QComboBox()
        self.sort_combo.setToolTip(
            "Worst mistakes first shows where the model is most wrong: check those labels."
        )
        for key, text in SORTS.items():
            self.sort_combo.addItem(text, key)
        self.summary_label = QLabel("Predictions appear here after the first epoch.")
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)
        for combo in (self.class_combo, self.correct_combo, self.sort_combo):
            combo.currentIndexChanged.connect(self._on_view_changed)
        self.heatmap_box = QCheckBox("Heatmaps")
        self.heatmap_box.setToolTip(
            "Lay over each picture where the model looked for its answer (red: most). "
            "Available once the run is evaluated."
        )
        self.heatmap_box.setEnabled(False)
        self.heatmap_box.toggled.connect(self._on_heatmaps_toggled)
        self.heatmap_progress = JobProgress(
            self.model.heatmaps.job, "pictures", starting_text="Loading the model…"
        )
        self.model.heatmaps.job.failed.connect(self._on_heatmaps_failed)
        controls = QHBoxLayout()
        for caption, combo in (
            ("Class:", self.class_combo),
            ("Show:", self.correct_combo),
            ("Order:", self.sort_combo),
        ):
            label = QLabel(caption)
            label.setToolTip(combo.toolTip())
            controls.addWidget(label)
            controls.addWidget(combo)
        controls.addWidget(self.heatmap_box)
        controls.addStretch(1)
        self.pair_label = plain_label()
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.setToolTip("Back to every picture, with the filters above.")
        self.show_all_button.clicked.connect(self.clear_pair)
        pair_bar = QHBoxLayout()
        pair_bar.addWidget(self.pair_label, 1)
        pair_bar.addWidget(self.show_all_button)
        self.pair_bar = QWidget()
        self.pair_bar.setLayout(pair_bar)
        self.pair_bar.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addLayout(controls)
        layout.addWidget(self.heatmap_progress)
        layout.addWidget(self.pair_bar)
        layout.addWidget(self.grid, 1)
        self.viewer: ImageViewer | None = None
        self.model_source: ModelSource | None = None  # the evaluated model, for heatmaps

    @Slot(object)
    def show_predictions(self, event: PredictionsReady) -> None:
        records = event.records
        self.model_source = None  # these are the training's answers, not a saved model's
        self._reset_heatmaps()
        if tuple(event.class_names) != self.model.class_names:
            self._fill_class_filter(tuple(event.class_names))
        self.model.set_predictions(tuple(event.class_names), tuple(records))
        correct = sum(1 for record in records if record.is_correct)
        share = f" ({100 * correct / len(records):.0f} %)" if records else ""
        self.summary_label.setText(
            f"After epoch {event.epoch}: {correct} of {len(records)} validation images correct{share}."
        )

    @Slot(object)
    def show_evaluation(self, evaluation: Evaluation) -> None:
        """The evaluated model's answers, with calibrated confidences, replace the last epoch's."""
        names = tuple(evaluation.class_names)
        if names != self.model.class_names:
            self._fill_class_filter(names)
        self.model.set_predictions(names, tuple(evaluation.records))
        self.model_source = ModelSource(evaluation.checkpoint) if evaluation.checkpoint else None
        self._reset_heatmaps()
        self.pair_bar.hide()
        correct = sum(1 for record in evaluation.records if record.is_correct)
        total = len(evaluation.records)
        where = f" ({evaluation.checkpoint.name} model)" if evaluation.checkpoint else ""
        share = f" ({100 * correct / total:.0f} %)" if total else ""
        self.summary_label.setText(
            f"Evaluated{where}: {correct} of {total} validation images correct{share}; "
            "confidences are calibrated."
        )

    def _reset_heatmaps(self) -> None:
        """Other answers, or another model: the drawn heatmaps no longer belong to them."""
        self.model.heatmaps.clear()
        self.heatmap_box.setEnabled(self.model_source is not None)
        if self.heatmap_box.isChecked():
            self._on_heatmaps_toggled(self.model_source is not None)

    @Slot(bool)
    def _on_heatmaps_toggled(self, checked: bool) -> None:
        if checked and self.model_source is None:
            self.heatmap_box.setChecked(False)
            return
        self.model.show_heatmaps = checked
        if checked and self.model_source is not None:
            self.model.heatmaps.draw(self.model_source, self.model.shown_paths())
        else:
            self.model.heatmaps.job.cancel()
        self.grid.viewport().update()

    @Slot(str, str)
    def _on_heatmaps_failed(self, message: str, _details: str) -> None:
        self.heatmap_box.setChecked(False)
        self.summary_label.setText(f"No heatmaps: {message}")

    @Slot(int, int)
    def show_pair(self, true: int, predicted: int) -> None:
        """Exactly the pictures of class ``true`` the model answered ``predicted``."""
        for combo, value in ((self.class_combo, -1), (self.correct_combo, "all")):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(value)))
            combo.blockSignals(False)
        self._on_view_changed()  # the other filters off, so the grid shows the cell exactly
        self.model.set_pair_filter((true, predicted))
        name_of = self.model.name_of
        count = self.model.rowCount()
        what = (
            f"'{name_of(true)}' pictures the model recognised"
            if true == predicted
            else f"'{name_of(true)}' pictures the model took for '{name_of(predicted)}'"
        )
        self.pair_label.setText(f"Showing the {count} {what}.")
        self.pair_bar.show()

    @Slot()
    def clear_pair(self) -> None:
        self.model.set_pair_filter(None)
        self.pair_bar.hide()

    def _fill_class_filter(self, class_names: tuple[str, ...]) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", -1)
        for index, name in enumerate(class_names):
            self.class_combo.addItem(name, index)
        self.class_combo.blockSignals(False)

    @Slot()
    def _on_view_changed(self) -> None:
        self.model.pair_filter = None  # a filter chosen above replaces the matrix cell
        self.pair_bar.hide()
        self.model.set_view(
            class_filter=int(
                self.class_combo.currentData() if self.class_combo.currentData() is not None else -1
            ),
            correctness=self.correct_combo.currentData(),
            sort_key=self.sort_combo.currentData(),
        )
        if self.model.show_heatmaps and self.model_source is not None:
            self.model.heatmaps.draw(self.model_source, self.model.shown_paths())

    @Slot(QModelIndex)
    def _on_clicked(self, index: QModelIndex) -> None:
        record = index.data(RecordRole)
        if record is None:
            return
        self.close_viewer()
        self.viewer = ImageViewer(record, self.model.class_names, self, source=self.model_source)
        self.image_opened.emit(record)
        self.viewer.show()

    def clear(self) -> None:
        self.model.set_predictions((), ())
        self.pair_bar.hide()
        self.summary_label.setText("Predictions appear here after the first epoch.")

    def close_viewer(self) -> None:
        if self.viewer is not None:
            self.viewer.done(0)
            self.viewer = None

    def shutdown(self) -> None:
        self.close_viewer()
        self.model.heatmaps.shutdown()
        self.cache.clear()
        self.cache.wait_for_done()


def _preview() -> None:  # pragma: no cover - manual preview
    import tempfile

    from ptm_studio.gui.panels._preview import fake_predictions, make_sample_images, run_preview

    def build() -> PredictionsPanel:
        folder = Path(tempfile.mkdtemp(prefix="ptm-preview-"))
        panel = PredictionsPanel()
        panel.show_predictions(fake_predictions(make_sample_images(folder, per_class=40, size=96)))
        return panel

    run_preview(build, size=(900, 600))


if __name__ == "__main__":
    _preview()
