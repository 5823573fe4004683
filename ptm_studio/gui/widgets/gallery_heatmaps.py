"""GalleryHeatmaps: heatmap thumbnails for a whole gallery, drawn by core (Grad-CAM) in a
background Job a few pictures at a time, so they appear while the rest are still drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QPixmap

from ptm_studio.gui.jobs.job import Job, JobContext
from ptm_studio.gui.widgets.heatmap_controls import rgb_image

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.inference import ModelSource

CHUNK = 16  # pictures per delivery: the grid fills in steadily, and a cancel is quick
OPACITY = 0.5


def draw_overlays(
    source: ModelSource, paths: Sequence[str], side: int, context: JobContext
) -> None:
    """The work: each picture's crop with its heatmap over it, ``side`` pixels square,
    delivered as {path: uint8 RGB array} a chunk at a time (plain values only)."""
    from ptm_studio.core.explain import (  # torch: loaded after the window is up
        heatmaps_for_paths,
        overlay,
    )

    def should_stop() -> bool:
        return context.is_cancelled

    for start in range(0, len(paths), CHUNK):
        context.check_cancelled()
        chunk = [Path(path) for path in paths[start : start + CHUNK]]
        with source.use(should_stop) as predictor:  # a turn per chunk: the large view may draw
            drawn = heatmaps_for_paths(predictor, chunk)
        pictures = {}
        for found in drawn.heatmaps:
            if found.path is not None and found.picture is not None:
                mixed = Image.fromarray(overlay(found.picture, found, OPACITY))
                pictures[str(found.path)] = np.asarray(mixed.resize((side, side)))
        context.emit(pictures)
        context.progress(min(start + CHUNK, len(paths)), len(paths))


class GalleryHeatmaps(QObject):
    overlay_ready = Signal(str)
    """The heatmap thumbnail of this path can now be shown."""

    def __init__(self, side: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.job = Job("ptm-gallery-heatmaps", self)
        self.job.emitted.connect(self._on_drawn)
        self._pixmaps: dict[str, QPixmap] = {}
        self._accepting = False  # off after clear(): a cancelled run's last chunk is dropped

    def draw(self, source: ModelSource, paths: Sequence[str]) -> None:
        """Draw the heatmaps of ``paths`` not drawn yet, in this order."""
        missing = [path for path in paths if path not in self._pixmaps]
        self._accepting = True
        if missing:
            side = self.side
            self.job.restart(lambda context: draw_overlays(source, missing, side, context))

    def pixmap(self, path: str) -> QPixmap | None:
        return self._pixmaps.get(path)

    def clear(self) -> None:
        """Forget every heatmap (another model, or other pictures)."""
        self.job.cancel()
        self._accepting = False
        self._pixmaps.clear()

    def shutdown(self) -> None:
        self.job.cancel()
        self.job.wait()

    @Slot(object)
    def _on_drawn(self, pictures: dict[str, np.ndarray]) -> None:
        if not self._accepting:
            return
        for path, pixels in pictures.items():
            self._pixmaps[path] = QPixmap.fromImage(rgb_image(pixels))
            self.overlay_ready.emit(path)
