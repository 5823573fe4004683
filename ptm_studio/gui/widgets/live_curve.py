"""LivePlot: a pyqtgraph plot whose curves are created once and refreshed from growable buffers.

Data arrive at any rate through :meth:`LivePlot.append`; nothing is drawn until :meth:`refresh`,
which the owning panel calls from a 10–20 Hz timer. Curves use auto downsampling and
clip-to-view so 100k points stay smooth. Non-finite points are kept in the buffer (so step
numbers stay honest) but never reach pyqtgraph: each curve keeps a second buffer of the points it
draws, grown as they arrive, and hands pyqtgraph views of it, so an update costs the same with a
million points as with ten (issue 14, B4). Hovering shows the nearest values as plain text.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ptm_studio.gui import theme
from ptm_studio.gui.widgets.plot_slot import PlotSlot

# Curves of more points are drawn without antialiasing: downsampled to the plot's width they
# are a dense band either way, and an antialiased one took 80 ms a paint at 1,000,000 points
# (10x the same without), the interpreter lock held throughout (issue 14, B4).
SMOOTH_LINES_UP_TO = 20_000


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
    pen_colour: QColor
    width: float
    dashed: bool
    with_symbols: bool
    item: Any = None  # the pyqtgraph PlotDataItem, once the plot is made
    buffer: PointBuffer = field(default_factory=PointBuffer)  # every point, as it came
    drawn: PointBuffer = field(default_factory=PointBuffer)  # the ones pyqtgraph is given
    is_dirty: bool = False


@dataclass
class _Level:
    name: str
    colour: QColor
    value: float
    is_visible: bool = True
    line: Any = None  # the pyqtgraph InfiniteLine, once the plot is made


@functools.cache
def integer_axis_type() -> type:
    """An axis that only labels whole numbers (epochs): no "1.5" between epoch 1 and 2. Made on
    first use: pyqtgraph loads after the window is up."""
    pg = theme.plotting()  # configured: the plots made from this class need it

    class IntegerAxis(pg.AxisItem):  # type: ignore[name-defined]  # pg: a module value
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

    return IntegerAxis


class LivePlot(QWidget):
    """A titled plot with named curves and a plain-text hover read-out underneath. The
    pyqtgraph plot itself is made once the window is on screen (see PlotSlot); curves, levels
    and points given before are kept and drawn then."""

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
        self._levels: dict[str, _Level] = {}
        self._title, self._x_label, self._y_label = title, x_label, y_label
        self._log_y = log_y
        self._integer_x = integer_x
        self._slot = PlotSlot(self._make_plot)
        self._slot.setMinimumHeight(150)
        # The legend is a line of text under the plot, right of the hover read-out: inside the
        # plot it covered curves, the title or (in narrow plots) the axis label.
        self.legend = QWidget()
        self._legend_layout = QHBoxLayout(self.legend)
        self._legend_layout.setContentsMargins(0, 0, 0, 0)
        self._legend_layout.setSpacing(4)
        self.hover_label = QLabel(" ")
        self.hover_label.setTextFormat(Qt.TextFormat.PlainText)
        self.hover_label.setObjectName("hint")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self._slot, 1)
        under_plot = QHBoxLayout()
        under_plot.setContentsMargins(4, 0, 4, 0)
        under_plot.addWidget(self.hover_label, 1)
        under_plot.addWidget(self.legend)
        layout.addLayout(under_plot)

    @property
    def plot_is_made(self) -> bool:
        """Whether the pyqtgraph plot exists yet (it is made once the window shows it)."""
        return self._slot.is_made

    @property
    def plot_widget(self) -> Any:
        """The pyqtgraph PlotWidget (made now if it was not yet)."""
        return self._slot.widget()

    def _make_plot(self) -> QWidget:
        pg = theme.plotting()

        axes = {"bottom": integer_axis_type()("bottom")} if self._integer_x else None
        plot_widget = pg.PlotWidget(axisItems=axes)
        plot_widget.setTitle(self._title)
        plot_widget.setLabel("bottom", self._x_label)
        plot_widget.setLabel("left", self._y_label)
        plot_widget.showGrid(x=True, y=True, alpha=0.2)
        for side in ("bottom", "left"):
            # The automatic "(x0.001)" prefix re-lays out the axis label as HTML on every range
            # change (5 ms each): the single biggest cost while curves grow. Plain ticks instead.
            plot_widget.getAxis(side).enableAutoSIPrefix(False)
            # Major ticks only: each tick line and label is a Python → Qt call per paint, and
            # while training runs each such call may wait for the interpreter lock.
            plot_widget.getAxis(side).setStyle(maxTickLevel=0)
        plot_widget.setMenuEnabled(True)
        if self._log_y:
            plot_widget.setLogMode(y=True)
        plot_widget.scene().sigMouseMoved.connect(self._on_mouse_moved)
        for curve in self._curves.values():
            self._make_curve_item(plot_widget, curve)
        for level in self._levels.values():
            self._make_level_line(plot_widget, level)
        if any(curve.with_symbols for curve in self._curves.values()):
            _warm_up_symbols(plot_widget)
        return plot_widget

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
        curve = _Curve(name, QColor(colour), width, dashed, with_symbols)
        self._curves[key] = curve
        if self._slot.is_made:
            self._make_curve_item(self.plot_widget, curve)
        self._add_legend_entry(name, colour, dashed=dashed, with_symbols=with_symbols)

    @staticmethod
    def _make_curve_item(plot_widget: Any, curve: _Curve) -> None:
        pg = theme.plotting()

        style = Qt.PenStyle.DashLine if curve.dashed else Qt.PenStyle.SolidLine
        curve.item = plot_widget.plot(
            [],
            [],
            pen=pg.mkPen(curve.pen_colour, width=curve.width, style=style),
            symbol="o" if curve.with_symbols else None,
            symbolSize=6,
            symbolBrush=curve.pen_colour,
            symbolPen=None,
        )
        curve.item.setDownsampling(auto=True, method="peak")
        curve.item.setClipToView(True)
        curve.item.setData(curve.drawn.x, curve.drawn.y)
        curve.is_dirty = False

    def show_level(self, key: str, name: str, colour: QColor, value: float) -> None:
        """A dashed horizontal line at ``value``, labelled ``name``: a baseline the curves are
        read against. Shown again with a new value, it moves; cleared with the curves."""
        level = self._levels.get(key)
        if level is None:
            level = self._levels[key] = _Level(name, QColor(colour), value)
            if self._slot.is_made:
                self._make_level_line(self.plot_widget, level)
        level.value, level.is_visible = value, True
        if level.line is not None:
            level.line.setValue(value)
            level.line.setVisible(True)

    @staticmethod
    def _make_level_line(plot_widget: Any, level: _Level) -> None:
        pg = theme.plotting()

        level.line = pg.InfiniteLine(
            angle=0,
            movable=False,
            pen=pg.mkPen(level.colour, width=1, style=Qt.PenStyle.DashLine),
            label=level.name,
            labelOpts={"position": 0.98, "color": level.colour, "anchors": [(1, 0), (1, 0)]},
        )
        plot_widget.addItem(level.line, ignoreBounds=False)
        level.line.setValue(level.value)
        level.line.setVisible(level.is_visible)

    def level(self, key: str) -> float | None:
        """Where the level ``key`` is drawn, or None when it is not shown."""
        level = self._levels.get(key)
        return float(level.value) if level is not None and level.is_visible else None

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
        """The x and y pyqtgraph was given for one curve at the last refresh (not copies); the
        plot is made now if it was not yet (it is then given every point so far)."""
        self.plot_widget  # noqa: B018 - made on first ask
        x, y = self._curves[key].item.getOriginalDataset()
        return (np.empty(0), np.empty(0)) if x is None or y is None else (x, y)

    @property
    def is_dirty(self) -> bool:
        return any(curve.is_dirty for curve in self._curves.values())

    def refresh(self) -> bool:
        """Push new data to the curves that changed; False (and no repaint) when nothing did.
        Before the plot is made nothing is pushed: it takes every point when it is made."""
        if not self._slot.is_made:
            return False
        changed = False
        for curve in self._curves.values():
            if not curve.is_dirty:
                continue
            smooth = len(curve.drawn.x) <= SMOOTH_LINES_UP_TO
            curve.item.setData(curve.drawn.x, curve.drawn.y, antialias=smooth)
            curve.is_dirty = False
            changed = True
        if changed:
            # The new range now, not as the paint begins: pyqtgraph fits the range to the data
            # just before painting, which changes the axes and paints the plot a second time
            # (every update painted twice, each paint holding the interpreter lock that the
            # training thread waits for; issue 14, B3).
            self.plot_widget.getPlotItem().getViewBox().prepareForPaint()
        return changed

    def clear_data(self) -> None:
        """Empty every curve; the plot itself is repainted at the next refresh."""
        for curve in self._curves.values():
            curve.buffer.clear()
            curve.drawn.clear()
            curve.is_dirty = True
        for level in self._levels.values():
            level.is_visible = False
            if level.line is not None:
                level.line.setVisible(False)
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


def _warm_up_symbols(plot_widget: Any) -> None:
    """Paint a point once as the plot is made: the first paint of point symbols builds
    pyqtgraph's symbol atlas (~50 ms, far more while training holds the interpreter lock),
    which would otherwise freeze the window right after the first epoch."""
    item = plot_widget.plot([1.0], [1.0], symbol="o", symbolSize=6, pen=None)
    plot_widget.grab()
    plot_widget.removeItem(item)
