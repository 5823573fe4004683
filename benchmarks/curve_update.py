"""B4, long runs: one update of a curve that holds 1,000,000 points, the app's LivePlot against
a bare pyqtgraph item with the same pen, peak downsampling and clip-to-view.

Both plots are the same size, with the app's pyqtgraph options (antialiasing on), offscreen
unless QT_QPA_PLATFORM says otherwise, in this one process. An update is what a training step costs the window: one new point appended, the data
handed to pyqtgraph, and the plot repainted (``repaint()`` paints at once), then the events
that paint left behind (pyqtgraph fits the range to new data as a paint begins, which asks
for a second paint: a figure without it leaves out half the work). The two alternate,
``--updates`` each, and the medians are compared. Target (issue 14): ours ≤ 1.2× the bare item.

    python -m benchmarks.curve_update [--points 1000000] [--updates 60] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from benchmarks.table import Row, add_table_flags, report

TARGET_RATIO = 1.2
SIZE = (600, 300)
COLOUR = QColor("#1f77b4")
PEN_WIDTH = 1.5  # LivePlot's default pen


class BarePlot:
    """What pyqtgraph's documentation shows for a long curve: arrays grown by the caller, the
    item given views of them."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        import pyqtgraph as pg

        self.widget = pg.PlotWidget()
        self.widget.resize(*SIZE)
        self.item = self.widget.plot(pen=pg.mkPen(COLOUR, width=PEN_WIDTH))
        self.item.setDownsampling(auto=True, method="peak")
        self.item.setClipToView(True)
        capacity = 2 * len(x)
        self.x, self.y = np.empty(capacity), np.empty(capacity)
        self.x[: len(x)], self.y[: len(y)] = x, y
        self.size = len(x)
        self.item.setData(self.x[: self.size], self.y[: self.size])

    def update(self, x: float, y: float) -> None:
        self.x[self.size], self.y[self.size] = x, y
        self.size += 1
        self.item.setData(self.x[: self.size], self.y[: self.size])
        self.widget.repaint()
        QApplication.processEvents()


class OurPlot:
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        from ptm_studio.gui.widgets.live_curve import LivePlot

        self.widget = LivePlot("loss", "step", "loss")
        self.widget.resize(*SIZE)
        self.widget.add_curve("loss", "loss", COLOUR, width=PEN_WIDTH)
        for x_value, y_value in zip(x.tolist(), y.tolist(), strict=True):
            self.widget.append("loss", x_value, y_value)
        self.widget.refresh()

    def update(self, x: float, y: float) -> None:
        self.widget.append("loss", x, y)
        self.widget.refresh()
        self.widget.plot_widget.repaint()
        QApplication.processEvents()


def update_milliseconds(plot: BarePlot | OurPlot, start: float, count: int) -> list[float]:
    times = []
    for index in range(count):
        started = time.perf_counter()
        plot.update(start + index, 1.0 / (start + index))
        times.append(1000 * (time.perf_counter() - started))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=60)
    add_table_flags(parser)
    arguments = parser.parse_args()
    updates = 20 if arguments.quick else arguments.updates
    _app = QApplication.instance() or QApplication([])
    x = np.arange(arguments.points, dtype=np.float64)
    y = 1.0 / (1.0 + x) + 0.01 * np.random.default_rng(0).standard_normal(arguments.points)
    from ptm_studio.gui import theme

    theme.plotting()  # both with the app's pyqtgraph options (antialiasing on)
    bare, ours = BarePlot(x, y), OurPlot(x, y)
    for plot in (bare, ours):
        plot.widget.show()
        update_milliseconds(plot, float(arguments.points), 3)  # first paints: not counted
    bare_times, our_times = [], []
    step = float(arguments.points + 10)
    for _ in range(updates // 5):  # alternated in fives
        bare_times += update_milliseconds(bare, step, 5)
        our_times += update_milliseconds(ours, step, 5)
        step += 5
    bare_ms, our_ms = statistics.median(bare_times), statistics.median(our_times)
    ratio = our_ms / bare_ms
    print(f"{arguments.points:,} points, {len(our_times)} updates each, {SIZE[0]}×{SIZE[1]} px")
    print(f"bare pyqtgraph item: {bare_ms:.1f} ms per update; LivePlot: {our_ms:.1f} ms")
    row = Row.ratio_at_most(
        f"B4 update of a {arguments.points:,}-point curve",
        f"{our_ms:.1f} ms",
        f"{bare_ms:.1f} ms",
        ratio,
        TARGET_RATIO,
    )
    report([row], arguments)


if __name__ == "__main__":
    main()
