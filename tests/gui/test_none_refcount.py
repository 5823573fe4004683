"""Guard for PySide6 6.12.0 on CPython 3.11: every void QPainter call (setPen, drawLine…) dropped
a reference to None, and pyqtgraph then died with "Fatal Python error: none_dealloc". pyproject
pins PySide6-Essentials < 6.12 on 3.11; this test repaints a plot 10,000 times and checks that
None's reference count does not fall (on 3.12+ None is immortal, so it holds trivially there)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication

REPAINTS = 10_000


class _CountingItem(pg.GraphicsObject):
    """Makes void QPainter calls from Python on every paint, and counts the paints."""

    def __init__(self) -> None:
        super().__init__()
        self.paint_count = 0

    def boundingRect(self) -> QRectF:
        return QRectF(0, -1, 50, 2)

    def paint(self, painter: QPainter, *args: Any) -> None:
        self.paint_count += 1
        painter.setPen(pg.mkPen("r"))
        painter.drawLine(0, 0, 50, 0)


def test_repainting_a_plot_does_not_leak_references_to_none(qtbot: Any) -> None:
    widget = pg.PlotWidget()
    qtbot.addWidget(widget)
    widget.resize(160, 120)
    widget.plot(np.arange(50.0), np.sin(np.arange(50.0)), pen="b")
    item = _CountingItem()
    widget.addItem(item)
    widget.show()
    qtbot.waitExposed(widget)
    QApplication.processEvents()
    before = sys.getrefcount(None)
    for _ in range(REPAINTS):
        widget.viewport().repaint()
    QApplication.processEvents()
    after = sys.getrefcount(None)
    assert item.paint_count >= REPAINTS, "the plot was not actually repainted"
    assert after >= before - 100, (
        f"references to None fell by {before - after} over {REPAINTS} repaints"
    )
