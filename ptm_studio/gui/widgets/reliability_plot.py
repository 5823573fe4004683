"""ReliabilityPlot: how often the model is right at each confidence, before and after
calibration; an honest model's bars reach the diagonal."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QWidget

from ptm_studio.core.calibration import ReliabilityBin
from ptm_studio.gui import theme

BEFORE_COLOUR = QColor("#999999")


class ReliabilityPlot(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(200)
        item = self.getPlotItem()
        item.setLabel("bottom", "Confidence the model gave (%)")
        item.setLabel("left", "How often it was right (%)")
        item.setXRange(0, 100, padding=0.02)
        item.setYRange(0, 100, padding=0.02)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.addLegend(offset=(10, 10))
        diagonal = pg.PlotDataItem(
            [0, 100], [0, 100], pen=pg.mkPen(theme.SMOOTH_COLOUR, style=Qt.PenStyle.DashLine)
        )
        item.addItem(diagonal)
        item.legend.addItem(diagonal, "honest")
        self._bars: list[pg.BarGraphItem] = []
        self.setToolTip(
            "Each bar: the pictures given about that confidence, and how many of them the model "
            "got right. Bars on the dashed line mean the confidence can be taken at its word."
        )

    def show_bins(
        self, before: Sequence[ReliabilityBin], after: Sequence[ReliabilityBin] | None
    ) -> None:
        """Bars before and after calibration; ``after`` None when none was fitted."""
        item = self.getPlotItem()
        for bars in self._bars:
            item.removeItem(bars)
            item.legend.removeItem(bars)
        if after is None:
            self._bars = [self._bar_item(before, 0, theme.TRAIN_COLOUR, "the model's confidence")]
            return
        self._bars = [
            self._bar_item(before, -1, BEFORE_COLOUR, "before calibration"),
            self._bar_item(after, +1, theme.TRAIN_COLOUR, "after calibration"),
        ]

    def _bar_item(
        self, bins: Sequence[ReliabilityBin], side: int, colour: QColor, name: str
    ) -> pg.BarGraphItem:
        filled = [b for b in bins if b.count and math.isfinite(b.accuracy)]
        width = (100 * (bins[0].upper - bins[0].lower) if bins else 10) * (0.42 if side else 0.8)
        centres = [100 * (b.lower + b.upper) / 2 + side * width / 2 for b in filled]
        bars = pg.BarGraphItem(
            x=centres,
            height=[100 * b.accuracy for b in filled],
            width=width,
            brush=pg.mkBrush(colour),
            pen=QPen(colour.darker(130)),
            name=name,
        )
        self.getPlotItem().addItem(bars)
        return bars
