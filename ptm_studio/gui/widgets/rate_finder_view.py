"""RateFinderView: the learning-rate test in the window, and the rate it suggests.

The test is the core's ``find_learning_rate`` on ``build_training(config)`` parts, run as a
background Job (progress, Cancel) on the settings shown. Nothing is saved: the core puts the
model back and makes no run folder. The view shows the smoothed loss against the rates tried
(a log scale), marks the suggestion, and says the rule that chose it; "Use it" hands the rate to
whoever owns the learning-rate box (:attr:`rate_chosen`), which writes it into the settings.

While training runs the settings panel holding this view is frozen (disabled); a test still
running then is cancelled, since it would share the device with the run and its buttons could
no longer be reached.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal, Slot
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from ptm_studio.core.config import ConfigError, RunConfig
from ptm_studio.gui import theme
from ptm_studio.gui.jobs.job import Job, JobContext, Work
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.widgets.job_progress import JobProgress

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.engine.rate_finder import RateTest

FIND_TEXT = "Find a learning rate…"
FIND_TIP = (
    "Tries rising learning rates for a few dozen steps on your pictures and suggests one; "
    "nothing is saved."
)
WORKING_TEXT = "Trying learning rates…"
PREPARING_TEXT = "Preparing the network and the pictures…"
PLOT_POSITION = 2  # in the view's column: after the status line and the progress bar


class SettingProblem(Exception):
    """A setting the test cannot use, said with the setting's name in words."""


def rounded_rate(rate: float) -> float:
    """Two significant digits: what the user reads is what "Use it" sets."""
    return float(f"{rate:.2g}")


def format_rate(rate: float) -> str:
    """0.000143 → "0.00014": as a decimal, like the learning-rate box (never 1.4e-04)."""
    return str(np.format_float_positional(rounded_rate(rate), trim="-"))


def rate_test_work(config: RunConfig, max_steps: int) -> Work:
    """The test on ``config`` as a Job's work; a cancel reaches the test's own stop check (it
    then returns early, and the Job reports "cancelled")."""

    def work(context: JobContext) -> RateTest:
        # Imported here: the engine pulls in torch, which the window loads only when needed.
        from ptm_studio.core.engine.parts import build_training
        from ptm_studio.core.engine.rate_finder import find_learning_rate

        try:
            parts = build_training(config)
        except ConfigError as error:
            name = error.field_path.rsplit(".", 1)[-1].replace("_", " ").capitalize()
            raise SettingProblem(f"{name}: {error.message}") from error
        context.check_cancelled()  # building can take a while; the user may have given up
        return find_learning_rate(
            parts,
            max_steps=max_steps,
            should_stop=lambda: context.is_cancelled,
            on_step=context.progress,
        )

    return work


@functools.cache
def still_plot_type() -> type:
    """A plot that neither zooms nor pans; the wheel goes on to the settings column around it
    (a plot with its mouse turned off would swallow the wheel and stall the scrolling). Made
    on first use: pyqtgraph loads after the window is up (issue 14, B5)."""
    pg = theme.plotting()  # configured: the plots made from this class need it

    class StillPlot(pg.PlotWidget):  # type: ignore[name-defined]  # pg: a module value
        def wheelEvent(self, event: QWheelEvent) -> None:
            # Handed to the scroll area around the plot by hand: the plot is a scroll area
            # itself, and Qt does not pass on a wheel event its view ignored when forwarded.
            around = self.parentWidget()
            while around is not None and not isinstance(around, QAbstractScrollArea):
                around = around.parentWidget()
            if around is not None:
                QCoreApplication.sendEvent(around.viewport(), event)
            event.accept()

    return StillPlot


class RateFinderView(QWidget):
    """Progress while the test runs; then the curve, the suggestion and "Use it".

    :attr:`find_button` belongs next to the learning-rate box; the owner puts it there and
    calls :meth:`start_test` with the settings when it is clicked.
    """

    rate_chosen = Signal(float)
    """The suggested rate (rounded as shown): the user clicked "Use it"."""
    tested = Signal(object)
    """A RateTest: the test ended and is shown."""

    def __init__(self, parent: QWidget | None = None, *, max_steps: int = 100) -> None:
        super().__init__(parent)
        self.max_steps = max_steps
        self.test: RateTest | None = None
        self._current_rate: float | None = None  # what the learning-rate box holds
        self.job = Job("ptm-rate-finder", self)
        self.job.succeeded.connect(self.show_test)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.running_changed.connect(self._on_running_changed)
        self.find_button = QPushButton(FIND_TEXT)
        self.find_button.setToolTip(FIND_TIP)
        self.status_label = plain_label()
        self.progress = JobProgress(self.job, "steps", starting_text=PREPARING_TEXT)
        self._plot: Any = None  # made when a test is first shown (or asked for)
        self.result_label = plain_label()
        self.details_label = plain_label()
        self.details_label.setObjectName("hint")
        self.use_button = QPushButton("Use it")
        self.use_button.setToolTip("Put the suggested rate into the learning-rate box.")
        self.use_button.clicked.connect(self.use_suggestion)
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Hide the test's result (the learning rate stays as it is).")
        self.close_button.clicked.connect(self.clear)
        self._lay_out()
        self.clear()

    @property
    def plot(self) -> Any:
        """The curve's plot (a pyqtgraph PlotWidget), made on first use."""
        if self._plot is None:
            self._plot = self._build_plot()
            self._plot.setVisible(self.test is not None and bool(self.test.rates))
            self._layout.insertWidget(PLOT_POSITION, self._plot)
        return self._plot

    def _build_plot(self) -> Any:
        pg = theme.plotting()

        plot = still_plot_type()()
        # Tall enough to read the curve, short enough to keep the settings below in reach.
        plot.setMinimumHeight(200)
        plot.setMaximumHeight(260)
        item = plot.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setLabel("bottom", "Learning rate")
        item.setLabel("left", "Loss (smoothed)")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        plot.setToolTip(
            "The loss after one step at each rate, smoothed. It falls while the rate is useful "
            "and shoots up once the rate is too high; the dashed line is the suggestion."
        )
        self.curve = item.plot([], [], pen=pg.mkPen(theme.TRAIN_COLOUR, width=2))
        self.marker = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen(theme.SMOOTH_COLOUR, width=2, style=Qt.PenStyle.DashLine),
            label="suggested",
            labelOpts={"position": 0.92, "color": theme.SMOOTH_COLOUR, "anchors": [(0, 1), (0, 1)]},
        )
        item.addItem(self.marker, ignoreBounds=True)
        return plot

    def _lay_out(self) -> None:
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = self._layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addWidget(self.status_label)
        layout.addWidget(self.progress)  # the plot goes below, at PLOT_POSITION
        layout.addWidget(self.result_label)
        layout.addWidget(self.details_label)
        layout.addLayout(buttons)

    # ----------------------------------------------------------------------- verbs
    def start_test(self, config: RunConfig) -> None:
        """Start the test on ``config``; nothing happens while one runs, or while the view is
        frozen with its panel (training runs)."""
        if self.job.is_running or not self.isEnabled():
            return
        self._show_result_widgets(False)
        if not config.data.data_dir:
            self._show_problem("Choose a folder of pictures first (step 1), then try again.")
            return
        self.setVisible(True)
        self._show_status(WORKING_TEXT)
        self.job.start(rate_test_work(config, self.max_steps))

    def show_learning_rate(self, rate: float) -> None:
        """The rate the settings hold now: "Use it" is off while it is the suggestion."""
        self._current_rate = rate
        self._update_use_button()

    @Slot()
    def use_suggestion(self) -> None:
        if self.test is not None and self.test.suggestion is not None:
            self.rate_chosen.emit(rounded_rate(self.test.suggestion))

    @Slot()
    def clear(self) -> None:
        """Hide the result (a test still running goes on)."""
        self.test = None
        self._show_result_widgets(False)
        self.setVisible(self.job.is_running)

    def shutdown(self) -> None:
        self.job.cancel()
        self.job.wait()

    # ----------------------------------------------------------------------- showing
    @Slot(object)
    def show_test(self, test: RateTest) -> None:
        self.test = test
        self.setVisible(True)
        self._show_status("")
        self.plot  # noqa: B018 - made with the first test shown (the curve and the marker too)
        self.curve.setData(np.asarray(test.rates), np.asarray(test.losses))
        if test.losses:
            self.plot.getPlotItem().setYRange(*_loss_range(test.losses), padding=0.05)
        has_suggestion = test.suggestion is not None
        if test.suggestion is not None:
            self.marker.setValue(math.log10(rounded_rate(test.suggestion)))
            self.result_label.setText(f"Suggested: {format_rate(test.suggestion)} — {test.rule}.")
        else:
            self.result_label.setText(f"No suggestion: {test.rule}.")
        self._show_result_widgets(True)
        self.plot.setVisible(bool(test.rates))
        self.marker.setVisible(has_suggestion)
        self.use_button.setVisible(has_suggestion)
        self._update_use_button()
        self.details_label.setText(_describe_ending(test))
        self.tested.emit(test)

    def _update_use_button(self) -> None:
        suggestion = self.test.suggestion if self.test is not None else None
        is_in_use = suggestion is not None and self._current_rate == rounded_rate(suggestion)
        self.use_button.setEnabled(not is_in_use)
        self.use_button.setText("In use" if is_in_use else "Use it")

    def _show_result_widgets(self, visible: bool) -> None:
        for widget in (self._plot, self.result_label, self.details_label, self.use_button):
            if widget is not None:
                widget.setVisible(visible)
        self.close_button.setVisible(visible)

    def _show_problem(self, message: str) -> None:
        self.setVisible(True)
        self._show_status(message)
        self.close_button.setVisible(True)

    def _show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setVisible(bool(text))  # an empty line would leave a gap

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self._show_problem(f"The learning-rate test could not run: {message}")

    @Slot()
    def _on_cancelled(self) -> None:
        self._show_problem("The learning-rate test was cancelled; nothing was changed.")

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        self.find_button.setEnabled(not is_running)

    def changeEvent(self, event: QEvent) -> None:
        # Frozen with its panel while training runs: a test still running is stopped.
        if event.type() == QEvent.Type.EnabledChange and not self.isEnabled():
            self.job.cancel()
        super().changeEvent(event)


def _loss_range(losses: tuple[float, ...]) -> tuple[float, float]:
    """The losses shown: up to twice the first one, so the final blow-up (up to four times the
    lowest, or more) does not squash the part of the curve the choice is made from."""
    low, high = min(losses), max(losses)
    top = min(high, max(2 * losses[0], low))
    return low, top if top > low else low + 1.0


def _describe_ending(test: RateTest) -> str:
    if not test.rates:
        return f"No rate could be tried: {test.ended_because}. Nothing was saved."
    return (
        f"Tried {len(test.rates)} rates from {test.rates[0]:.2g} to {test.rates[-1]:.2g}; "
        f"the test ended because {test.ended_because}. Nothing was saved."
    )
