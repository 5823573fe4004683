"""LivePlot: a pyqtgraph plot whose curves are created once and refreshed from growable buffers.

Data arrive at any rate through :meth:`LivePlot.append`; nothing is drawn until :meth:`refresh`,
which the owning panel calls from a 10–20 Hz timer. Curves use auto downsampling and
clip-to-view so 100k points stay smooth. Non-finite points are kept in the buffer (so step
numbers stay honest) but never reach pyqtgraph: each curve keeps a second buffer of the points it
draws, grown as they arrive, and hands pyqtgraph views of it, so an update costs the same with a
million points as with ten (issue 14, B4). Hovering shows the nearest values as plain text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget


class PointBuffer:
    """Amortised O(1) append of (x, y) float pairs into numpy arrays."""

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(capacity, dtype=np.float64)
        self._y = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def append(self, x: float, y: float) -> None:
        if self._size == len(self._x):
            self._x = np.resize(self._x, 2 * len(self._x))
            self._y = np.resize(self._y, 2 * len(self._y))
        self._x[self._size] = _as_float(x)
        self._y[self._size] = _as_float(y)
        self._size += 1

    def clear(self) -> None:
        # New arrays, not a reset size: pyqtgraph may still hold views of the old ones.
        self._x = np.empty(len(self._x), dtype=np.float64)
        self._y = np.empty(len(self._y), dtype=np.float64)
        self._size = 0

    @property
    def x(self) -> np.ndarray:
        return self._x[: self._size]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._size]



def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


@dataclass
class _Curve:
    name: str
    item: pg.PlotDataItem
    buffer: PointBuffer = field(default_factory=PointBuffer)  # every point, as it came
    drawn: PointBuffer = field(default_factory=PointBuffer)  # the ones pyqtgraph is given
    is_dirty: bool = False


class IntegerAxis(pg.AxisItem):
    """An axis that only labels whole numbers (epochs): no "1.5" between epoch 1 and 2."""

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        levels = []
        for spacing, values in super().tickValues(minVal, maxVal, size):
            if spacing < 1:
                continue
            levels.append((spacing, [value for value in values if float(value).is_integer()]))
        if not levels:
            first, last = int(np.ceil(minVal)), int(np.floor(maxVal))
            levels.append((1.0, [float(value) for value in range(first, last + 1)]))
        return levels


class LivePlot(QWidget):
    """A titled plot with named curves and a plain-text hover read-out underneath."""

    def __init__(
        self,
        title: str,
        x_label: str,
        y_label: str,
        *,
        log_y: bool = False,
        integer_x: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._curves: dict[str, _Curve] = {}
        self._levels: dict[str, pg.InfiniteLine] = {}
        self._log_y = log_y
        self._x_label = x_label
        axes = {"bottom": IntegerAxis("bottom")} if integer_x else None
        self.plot_widget = pg.PlotWidget(axisItems=axes)
        self.plot_widget.setTitle(title)
        self.plot_widget.setLabel("bottom", x_label)
        self.plot_widget.setLabel("left", y_label)
        self.plot_widget.showGrid(x=True, y=True, alpha=0.2)
        for side in ("bottom", "left"):
            # The automatic "(x0.001)" prefix re-lays out the axis label as HTML on every range
            # change (5 ms each): the single biggest cost while curves grow. Plain ticks instead.
            self.plot_widget.getAxis(side).enableAutoSIPrefix(False)
            # Major ticks only: each tick line and label is a Python → Qt call per paint, and
            # while training runs each such call may wait for the interpreter lock.
            self.plot_widget.getAxis(side).setStyle(maxTickLevel=0)
        self.plot_widget.setMenuEnabled(True)
        self.plot_widget.setMinimumHeight(150)
        # The legend is a line of text under the plot, right of the hover read-out: inside the
        # plot it covered curves, the title or (in narrow plots) the axis label.
        self.legend = QWidget()
        self._legend_layout = QHBoxLayout(self.legend)
        self._legend_layout.setContentsMargins(0, 0, 0, 0)
        self._legend_layout.setSpacing(4)
        if log_y:
            self.plot_widget.setLogMode(y=True)
        self.hover_label = QLabel(" ")
        self.hover_label.setTextFormat(Qt.TextFormat.PlainText)
        self.hover_label.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.plot_widget, 1)
        under_plot = QHBoxLayout()
        under_plot.setContentsMargins(4, 0, 4, 0)
        under_plot.addWidget(self.hover_label, 1)
        under_plot.addWidget(self.legend)
        layout.addLayout(under_plot)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_mouse_moved)

    def add_curve(
        self,
        key: str,
        name: str,
        colour: QColor,
        *,
        width: float = 1.5,
        dashed: bool = False,
        with_symbols: bool = False,
    ) -> None:
        pen = pg.mkPen(
            colour, width=width, style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
        )
        item = self.plot_widget.plot(
            [],
            [],
            pen=pen,
            symbol="o" if with_symbols else None,
            symbolSize=6,
            symbolBrush=colour,
            symbolPen=None,
        )
        item.setDownsampling(auto=True, method="peak")
        item.setClipToView(True)
        self._curves[key] = _Curve(name=name, item=item)
        self._add_legend_entry(name, colour, dashed=dashed, with_symbols=with_symbols)

    def show_level(self, key: str, name: str, colour: QColor, value: float) -> None:
        """A dashed horizontal line at ``value``, labelled ``name``: a baseline the curves are
        read against. Shown again with a new value, it moves; cleared with the curves."""
        line = self._levels.get(key)
        if line is None:
            line = pg.InfiniteLine(
                angle=0,
                movable=False,
                pen=pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine),
                label=name,
                labelOpts={"position": 0.98, "color": colour, "anchors": [(1, 0), (1, 0)]},
            )
            self._levels[key] = line
            self.plot_widget.addItem(line, ignoreBounds=False)
        line.setValue(value)
        line.setVisible(True)

    def level(self, key: str) -> float | None:
        """Where the level ``key`` is drawn, or None when it is not shown."""
        line = self._levels.get(key)
        return float(line.value()) if line is not None and line.isVisible() else None

    def _add_legend_entry(
        self, name: str, colour: QColor, *, dashed: bool, with_symbols: bool
    ) -> None:
        """A coloured line sample and the curve's name, both plain text."""
        if self._legend_layout.count():
            self._legend_layout.addSpacing(8)
        sample = QLabel("╍╍" if dashed else "━●━" if with_symbols else "━━")
        sample.setStyleSheet(f"color: {colour.name()};")
        label = QLabel(name)
        for widget in (sample, label):
            widget.setTextFormat(Qt.TextFormat.PlainText)
            self._legend_layout.addWidget(widget)

    def append(self, key: str, x: float, y: float) -> None:
        curve = self._curves[key]
        curve.buffer.append(x, y)
        x, y = _as_float(x), _as_float(y)
        if math.isfinite(x) and math.isfinite(y) and (y > 0 or not self._log_y):
            curve.drawn.append(x, y)
        curve.is_dirty = True

    def point_count(self, key: str) -> int:
        """Points held (finite or not) for one curve."""
        return len(self._curves[key].buffer)

    def points(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Copies of one curve's x and y values as held (finite or not), in arrival order."""
        buffer = self._curves[key].buffer
        return buffer.x.copy(), buffer.y.copy()

    def drawn_point_count(self, key: str) -> int:
        """Points actually handed to pyqtgraph (the finite ones) at the last refresh."""
        return len(self.curve_data(key)[0])

    def curve_data(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The x and y pyqtgraph was given for one curve at the last refresh (not copies)."""
        x, y = self._curves[key].item.getOriginalDataset()
        return (np.empty(0), np.empty(0)) if x is None or y is None else (x, y)

    @property
    def is_dirty(self) -> bool:
        return any(curve.is_dirty for curve in self._curves.values())

    def refresh(self) -> bool:
        """Push new data to the curves that changed; False (and no repaint) when nothing did."""
        changed = False
        for curve in self._curves.values():
            if not curve.is_dirty:
                continue
            curve.item.setData(curve.drawn.x, curve.drawn.y)
            curve.is_dirty = False
            changed = True
        return changed

    def clear_data(self) -> None:
        """Empty every curve; the plot itself is repainted at the next refresh."""
        for curve in self._curves.values():
            curve.buffer.clear()
            curve.drawn.clear()
            curve.is_dirty = True
        for line in self._levels.values():
            line.setVisible(False)
        self.hover_label.setText(" ")

    @Slot(object)
    def _on_mouse_moved(self, position: QPointF) -> None:
        view_box = self.plot_widget.getPlotItem().getViewBox()
        if not self.plot_widget.sceneBoundingRect().contains(position):
            return
        x_value = view_box.mapSceneToView(position).x()
        parts = []
        for curve in self._curves.values():
            x, y = curve.drawn.x, curve.drawn.y
            if len(x) == 0:
                continue
            index = int(np.clip(np.searchsorted(x, x_value), 0, len(x) - 1))
            if index > 0 and abs(x[index - 1] - x_value) < abs(x[index] - x_value):
                index -= 1
            parts.append(
                f"{curve.name}: {_format_value(y[index])} ({self._x_label.lower()} {_format_value(x[index])})"
            )
        self.hover_label.setText("   ".join(parts) if parts else " ")


def _format_value(value: float) -> str:
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"
