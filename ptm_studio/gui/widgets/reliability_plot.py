"""ReliabilityPlot: how often the model is right at each confidence, before and after
calibration; an honest model's bars reach the diagonal. The pyqtgraph plot is made once the
window is on screen (see PlotSlot); bins given before are drawn then."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ptm_studio.core.calibration import ReliabilityBin
from ptm_studio.gui import theme
from ptm_studio.gui.widgets.plot_slot import PlotSlot

BEFORE_COLOUR = QColor("#999999")
Bins = Sequence[ReliabilityBin]


class ReliabilityPlot(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(200)
        self._slot = PlotSlot(self._make_plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._slot)
        self._bars: list[Any] = []  # pyqtgraph BarGraphItems
        self._bins: tuple[Bins, Bins | None] | None = None
        self.setToolTip(
            "Each bar: the pictures given about that confidence, and how many of them the model "
            "got right. Bars on the dashed line mean the confidence can be taken at its word."
        )

    def _make_plot(self) -> QWidget:
        pg = theme.plotting()

        plot_widget = pg.PlotWidget()
        item = plot_widget.getPlotItem()
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
        self._plot_item = item
        if self._bins is not None:
            self._draw(*self._bins)
        return plot_widget

    def show_bins(self, before: Bins, after: Bins | None) -> None:
        """Bars before and after calibration; ``after`` None when none was fitted."""
        self._bins = (before, after)
        if self._slot.is_made:
            self._draw(before, after)

    def _draw(self, before: Bins, after: Bins | None) -> None:
        for bars in self._bars:
            self._plot_item.removeItem(bars)
            self._plot_item.legend.removeItem(bars)
        if after is None:
            self._bars = [self._bar_item(before, 0, theme.TRAIN_COLOUR, "the model's confidence")]
            return
        self._bars = [
            self._bar_item(before, -1, BEFORE_COLOUR, "before calibration"),
            self._bar_item(after, +1, theme.TRAIN_COLOUR, "after calibration"),
        ]

    def _bar_item(self, bins: Bins, side: int, colour: QColor, name: str) -> Any:
        pg = theme.plotting()

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
        self._plot_item.addItem(bars)
        return bars

    @property
    def bar_items(self) -> list[Any]:
        """The bars drawn (the plot is made now if it was not yet)."""
        self._slot.widget()
        return self._bars
