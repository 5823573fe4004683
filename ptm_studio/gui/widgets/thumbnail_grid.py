"""Lazy thumbnails: a cache filled off the GUI thread, and a QListView in icon mode that asks for them.

The view only asks its model for the items it paints, and the model only asks the cache; the cache
decodes in a QThreadPool (``QImage`` is safe off the GUI thread, ``QPixmap`` is not) and converts
to ``QPixmap`` on arrival in the GUI thread. So 10k images scroll smoothly: nothing is decoded
until it is about to be seen, and each file is decoded once.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from ptm_studio.core.data import ImageLoadError, load_image
from ptm_studio.gui.plain_text import plain_tooltip

MAX_CACHED = 4000


def load_thumbnail(path: str, size: int) -> QImage:
    """Decode ``path`` scaled to fit ``size``; a null QImage if unreadable.

    It uses the same loader as training and prediction (EXIF orientation, transparency,
    16/32-bit and CMYK conversions, format allow-list), so the preview shows the pixels the
    model sees: Qt's own readers differ on several of those (RELIABILITY I4, I6).
    """
    try:
        picture = load_image(path, max_side=size)
    except ImageLoadError:
        return QImage()
    pixels = np.ascontiguousarray(np.asarray(picture, dtype=np.uint8))
    height, width = pixels.shape[:2]
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class _Emitter(QObject):
    loaded = Signal(str, QImage)


class _LoadJob(QRunnable):
    def __init__(self, path: str, size: int, emitter: _Emitter) -> None:
        super().__init__()
        self._path, self._size, self._emitter = path, size, emitter

    def run(self) -> None:
        try:
            image = load_thumbnail(self._path, self._size)
        except Exception:  # a broken file shows the placeholder, never kills the pool
            image = QImage()
        self._emitter.loaded.emit(self._path, image)


class ThumbnailCache(QObject):
    """``pixmap(path)`` returns the thumbnail or None (then loads it and emits ``thumbnail_ready``)."""

    thumbnail_ready = Signal(str)

    def __init__(self, size: int = 112, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._emitter = _Emitter(self)
        self._emitter.loaded.connect(self._on_loaded)
        self.placeholder = _placeholder(size)

    def pixmap(self, path: str) -> QPixmap | None:
        pixmap = self._pixmaps.get(path)
        if pixmap is not None:
            self._pixmaps.move_to_end(path)
            return pixmap
        if path not in self._pending:
            self._pending.add(path)
            self._pool.start(_LoadJob(path, self.size, self._emitter))
        return None

    @Slot(str, QImage)
    def _on_loaded(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        self._pixmaps[path] = self.placeholder if image.isNull() else QPixmap.fromImage(image)
        while len(self._pixmaps) > MAX_CACHED:
            self._pixmaps.popitem(last=False)
        self.thumbnail_ready.emit(path)

    def wait_for_done(self, timeout_ms: int = 5000) -> bool:
        """Wait for pending decodes (used at shutdown and in tests)."""
        return self._pool.waitForDone(timeout_ms)

    def clear(self) -> None:
        self._pool.clear()
        self._pixmaps.clear()
        self._pending.clear()


def _placeholder(size: int) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(128, 128, 128, 60))
    painter = QPainter(pixmap)
    painter.setPen(QColor(128, 128, 128))
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, "?")
    painter.end()
    return pixmap


class PathListModel(QAbstractListModel):
    """A list of image files: file name as text, thumbnail as decoration (loaded on demand)."""

    def __init__(self, cache: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self._paths: list[str] = []
        self._row_of: dict[str, int] = {}
        cache.thumbnail_ready.connect(self._on_thumbnail_ready)

    def set_paths(self, paths: list[str]) -> None:
        self.beginResetModel()
        self._paths = [str(path) for path in paths]
        self._row_of = {path: row for row, path in enumerate(self._paths)}
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._paths)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid():
            return None
        path = self._paths[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(path).name
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(path)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._cache.pixmap(path) or self._cache.placeholder
        return None

    @Slot(str)
    def _on_thumbnail_ready(self, path: str) -> None:
        row = self._row_of.get(path)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ThumbnailGrid(QListView):
    """An icon-mode list view tuned for many uniform thumbnails."""

    def __init__(
        self, cell_size: QSize, parent: QWidget | None = None, *, single_row: bool = False
    ) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setGridSize(cell_size)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        if single_row:
            self.setFlow(QListView.Flow.LeftToRight)
            self.setWrapping(False)
            self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
            self.setFixedHeight(cell_size.height() + 24)
