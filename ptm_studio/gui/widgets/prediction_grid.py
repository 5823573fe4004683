"""The validation gallery's model and painting: every record of the last validation pass (or
of an evaluation), filtered and sorted as the user chose, each drawn with a green or red frame
and its predicted and true class."""

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
    Slot,
)
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ptm_studio.gui import theme
from ptm_studio.gui.plain_text import plain_tooltip
from ptm_studio.gui.widgets.gallery_heatmaps import GalleryHeatmaps
from ptm_studio.gui.widgets.thumbnail_grid import ThumbnailCache

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
