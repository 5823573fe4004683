"""The New pictures grid's model: the answers in the order the files were given, each shown as
"daisy 84 %", "not sure (daisy?)" below the user's threshold, or "could not be read"; with
heatmap thumbnails when they are switched on."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    Slot,
)
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent

from ptm_studio.core.config import NOT_SURE
from ptm_studio.gui import theme
from ptm_studio.gui.plain_text import plain_tooltip
from ptm_studio.gui.widgets.gallery_heatmaps import GalleryHeatmaps
from ptm_studio.gui.widgets.thumbnail_grid import ThumbnailCache

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.inference import Prediction

THUMBNAIL_SIZE = 112
CELL = QSize(THUMBNAIL_SIZE + 24, THUMBNAIL_SIZE + 40)
NOT_SURE_COLOUR = QColor("#8a8a8a")


def dropped_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    """The local files and folders being dragged (nothing else: web links are not pictures)."""
    mime = event.mimeData()
    urls = mime.urls() if mime.hasUrls() else []
    return [Path(url.toLocalFile()) for url in urls if url.isLocalFile()]


class PredictedPicturesModel(QAbstractListModel):
    """The answers in the order the files were given; the threshold decides "not sure"."""

    def __init__(self, cache: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self.predictions: tuple[Prediction, ...] = ()
        self.threshold = 0.0
        self._row_of: dict[str, int] = {}
        cache.thumbnail_ready.connect(self._on_thumbnail_ready)
        self.heatmaps = GalleryHeatmaps(THUMBNAIL_SIZE, self)
        self.heatmaps.overlay_ready.connect(self._on_thumbnail_ready)
        self.show_heatmaps = False

    def set_predictions(self, predictions: Sequence[Prediction]) -> None:
        self.beginResetModel()
        self.predictions = tuple(predictions)
        self._row_of = {str(p.path): row for row, p in enumerate(self.predictions)}
        self.endResetModel()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = threshold
        if self.predictions:
            self.dataChanged.emit(self.index(0), self.index(len(self.predictions) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.predictions)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid() or index.row() >= len(self.predictions):
            return None
        prediction = self.predictions[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.caption(prediction)
        if role == Qt.ItemDataRole.DecorationRole:
            path = str(prediction.path)
            drawn = self.heatmaps.pixmap(path) if self.show_heatmaps else None
            return drawn or self._cache.pixmap(path) or self._cache.placeholder
        if role == Qt.ItemDataRole.ForegroundRole:
            if prediction.error:
                return theme.INCORRECT_COLOUR
            return NOT_SURE_COLOUR if prediction.answer(self.threshold) == NOT_SURE else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(self._describe(prediction))
        return None

    def caption(self, prediction: Prediction) -> str:
        if prediction.error:
            return "could not be read"
        answer = prediction.answer(self.threshold)
        if answer == NOT_SURE:
            return f"{NOT_SURE} ({prediction.predicted_class}?)"
        return f"{answer} {100 * prediction.confidence:.0f} %"

    def _describe(self, prediction: Prediction) -> str:
        if prediction.error:
            return f"{prediction.path}\nCould not be read: {prediction.error}"
        guesses = "\n".join(
            f"{name}: {100 * probability:.1f} %"
            for name, probability in zip(
                prediction.top_classes, prediction.top_probabilities, strict=True
            )
        )
        return f"{prediction.path}\n{guesses}"

    @Slot(str)
    def _on_thumbnail_ready(self, path: str) -> None:
        row = self._row_of.get(path)
        if row is not None:
            model_index = self.index(row)
            self.dataChanged.emit(model_index, model_index, [Qt.ItemDataRole.DecorationRole])
