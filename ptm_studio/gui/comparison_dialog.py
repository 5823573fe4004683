""" "Did pretraining help?": finetune from a pretrained run and from random weights, side by side.

The comparison runs in the same worker/QThread machinery as a training run (the worker's
trainer factory runs both arms one after the other), so Stop, closing and errors behave alike.
Each arm is an ordinary run folder; the dialog plots validation accuracy per epoch for both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QColor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import EpochFinished, TrainingFinished, TrainingStarted
from ptm_studio.core.run_catalog import run_title
from ptm_studio.gui import theme
from ptm_studio.gui.jobs.training import TrainingRequest, TrainingSession
from ptm_studio.gui.widgets.live_curve import LivePlot

ARM_COLOURS = {"pretrained": QColor("#0072b2"), "random": QColor("#d55e00")}
REFRESH_MS = 100
WINDOW_SEEDS = (0, 1, 2)  # the window repeats the pair: one seed's difference can be chance


class ComparisonRunner:
    """Looks like a Trainer to the training job; runs every arm of the comparison when run."""

    def __init__(
        self,
        request: TrainingRequest,
        callbacks: list[Callback],
        stop_request: StopRequest,
        *,
        pretrained_run: Path,
        seeds: tuple[int, ...],
        fractions: tuple[float, ...] = (),
    ) -> None:
        """``fractions``: shares of the labels to compare at (the label-fraction curve);
        none: once, at the config's own."""
        self.request, self.callbacks, self.stop_request = request, callbacks, stop_request
        self.pretrained_run, self.seeds, self.fractions = pretrained_run, seeds, fractions

    def options(self) -> dict[str, Any]:
        """What compare_initialisations needs besides the config and the pretraining run."""
        from ptm_studio.core.transfer_recipe import RECIPE_SETTINGS, TRANSFER_MODE

        # The window's usual modes get the transfer recipe for the pretrained arm (and the
        # random arm learns with every layer); another mode was the user's choice: kept.
        mode = self.request.config.model.training_mode
        return {
            "seeds": self.seeds,
            "runs_root": self.request.runs_root,
            "callbacks_for": lambda _start, _seed: self.callbacks,
            "stop_request": self.stop_request,
            "keep": () if mode in ("full_finetune", TRANSFER_MODE) else RECIPE_SETTINGS,
        }

    def run(self) -> Any:
        from ptm_studio.core.compare import compare_initialisations, compare_label_fractions

        config, run = self.request.config, self.pretrained_run
        if self.fractions:
            curve = compare_label_fractions(config, run, self.fractions, **self.options())
            arms = [arm for point in curve.points for arm in point.result.arms]
        else:
            arms = list(compare_initialisations(config, run, **self.options()).arms)
        return arms[-1].finished if arms else None


class _RunsDialog(QDialog):
    """What both comparison dialogs share: a training session, Stop and Close, and closing
    stops the runs (finished ones are kept)."""

    session: TrainingSession
    stop_button: QPushButton

    def _stop_and_close_buttons(self) -> QDialogButtonBox:
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; finished runs are kept.")
        self.stop_button.clicked.connect(self.session.stop)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.stop_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
        return buttons

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.is_running:
            self.session.stop()
            self.session.wait()
        event.accept()


def _wrapping_label(text: str) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


class ComparisonDialog(_RunsDialog):
    """Runs the comparison and shows both arms' validation accuracy per epoch and at the end."""

    def __init__(
        self,
        config: RunConfig,
        pretrained_run: Path,
        *,
        runs_root: Path | None = None,
        seeds: tuple[int, ...] = WINDOW_SEEDS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Did pretraining help?")
        self.arms = [(start, seed) for seed in seeds for start in ("pretrained", "random")]
        self.finals: list[tuple[str, int, TrainingFinished]] = []
        self._arm_index = -1
        self.session = TrainingSession(
            self,
            runs_root=runs_root,
            trainer_factory=lambda request, callbacks, stop_request: ComparisonRunner(
                request, callbacks, stop_request, pretrained_run=pretrained_run, seeds=seeds
            ),
        )
        self.session.connect_event(TrainingStarted, self._on_arm_started)
        self.session.connect_event(EpochFinished, self._on_epoch_finished)
        self.session.connect_event(TrainingFinished, self._on_arm_finished)
        self.session.running_changed.connect(self._on_running_changed)
        self._build(pretrained_run)
        self.config = config
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self.plot.refresh)

    def _build(self, pretrained_run: Path) -> None:
        seeds = len({seed for _start, seed in self.arms})
        repeats = (
            f", {seeds} times with different seeds ({len(self.arms)} runs)" if seeds > 1 else ""
        )
        self.status_label = _wrapping_label(
            f"Finetuning from “{run_title(pretrained_run)}” and from random weights{repeats}…"
        )
        self.plot = LivePlot("Validation accuracy", "Epoch", "Accuracy (%)", integer_x=True)
        for start, seed in self.arms:
            name = f"from {start}" + (f" (seed {seed})" if len(self.arms) > 2 else "")
            self.plot.add_curve(f"{start}-{seed}", name, ARM_COLOURS[start], with_symbols=True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Start", "Seed", "Best validation accuracy"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.verdict_label = _wrapping_label(" ")
        buttons = self._stop_and_close_buttons()
        layout = QVBoxLayout(self)
        for widget in (self.status_label, self.plot, self.table, self.verdict_label, buttons):
            layout.addWidget(widget)
        self.resize(720, 620)

    def start(self) -> None:
        self._timer.start()
        self.session.start(self.config)

    @Slot(object)
    def _on_arm_started(self, event: TrainingStarted) -> None:
        self._arm_index += 1
        start, seed = self.arms[min(self._arm_index, len(self.arms) - 1)]
        self.status_label.setText(
            f"Run {self._arm_index + 1} of {len(self.arms)}: finetuning from {start} weights "
            f"(seed {seed})…"
        )

    @Slot(object)
    def _on_epoch_finished(self, event: EpochFinished) -> None:
        start, seed = self.arms[min(self._arm_index, len(self.arms) - 1)]
        if math.isfinite(event.val_accuracy):
            self.plot.append(f"{start}-{seed}", event.epoch, 100 * event.val_accuracy)

    @Slot(object)
    def _on_arm_finished(self, event: TrainingFinished) -> None:
        start, seed = self.arms[min(max(self._arm_index, 0), len(self.arms) - 1)]
        self.finals.append((start, seed, event))
        row = self.table.rowCount()
        self.table.insertRow(row)
        accuracy = event.best_val_accuracy  # both starts judged by their best epoch
        text = f"{100 * accuracy:.1f} %" if math.isfinite(accuracy) else event.status
        for column, value in enumerate((f"from {start}", str(seed), text)):
            self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.resizeColumnsToContents()

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        self.stop_button.setEnabled(is_running)
        if not is_running:
            self._timer.stop()
            self.plot.refresh()
            verdict = self.verdict()
            if len({seed for _start, seed, _event in self.finals}) == 1:
                verdict += " With one seed, a difference of a few points can be chance."
            self.verdict_label.setText(verdict)
            self.status_label.setText("Done. Each run is kept in your runs folder.")

    def verdict(self) -> str:
        from ptm_studio.core.compare import ComparisonArm, ComparisonResult

        arms = tuple(
            ComparisonArm(start, seed, event, (), ()) for start, seed, event in self.finals
        )
        return ComparisonResult(arms).verdict("random")


LABEL_FRACTIONS = (0.01, 0.1, 1.0)  # as the curve: a few labels, some, all


class LabelFractionDialog(_RunsDialog):
    """The label-fraction curve: finetuned accuracy against the labelled pictures used, from the
    pretraining run and from random weights, each point the mean of the seeds with their range."""

    def __init__(
        self,
        config: RunConfig,
        pretrained_run: Path,
        *,
        runs_root: Path | None = None,
        fractions: tuple[float, ...] = LABEL_FRACTIONS,
        seeds: tuple[int, ...] = WINDOW_SEEDS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Did pretraining help? By the number of labels")
        self.arms = [
            (fraction, start, seed)
            for fraction in sorted(fractions)
            for seed in seeds
            for start in ("pretrained", "random")
        ]
        self.finals: list[tuple[float, str, int, TrainingFinished, int, int]] = []
        self._arm_index = -1
        self._started: TrainingStarted | None = None
        self.config = config
        self.session = TrainingSession(
            self,
            runs_root=runs_root,
            trainer_factory=lambda request, callbacks, stop_request: ComparisonRunner(
                request,
                callbacks,
                stop_request,
                pretrained_run=pretrained_run,
                fractions=tuple(sorted(fractions)),
                seeds=seeds,
            ),
        )
        self.session.connect_event(TrainingStarted, self._on_arm_started)
        self.session.connect_event(TrainingFinished, self._on_arm_finished)
        self.session.running_changed.connect(self._on_running_changed)
        self._build(pretrained_run, fractions, seeds)

    def _build(
        self, pretrained_run: Path, fractions: tuple[float, ...], seeds: tuple[int, ...]
    ) -> None:
        shares = ", ".join(f"{100 * fraction:g} %" for fraction in sorted(fractions))
        self.status_label = _wrapping_label(
            f"Finetuning from “{run_title(pretrained_run)}” and from random weights with {shares} of "
            f"the labels, {len(seeds)} seeds each ({len(self.arms)} runs)…"
        )
        pg = theme.plotting()  # loaded after the window is up (issue 14, B5)

        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setTitle("Validation accuracy against the labels used")
        self.plot_widget.setLabel("bottom", "Labelled pictures per class (log scale)")
        self.plot_widget.setLabel("left", "Best validation accuracy (%)")
        self.plot_widget.setLogMode(x=True)
        self.plot_widget.showGrid(x=True, y=True, alpha=0.2)
        self.plot_widget.addLegend(offset=(-10, -10))  # bottom right: below both curves
        self.curves: dict[str, Any] = {}
        self.error_bars: dict[str, Any] = {}
        for start in ("pretrained", "random"):
            colour = ARM_COLOURS[start]
            self.curves[start] = self.plot_widget.plot(
                [],
                [],
                name=f"from {start} (mean of the seeds; bars: lowest to highest)",
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolBrush=colour,
                symbolPen=None,
            )
            self.error_bars[start] = pg.ErrorBarItem(beam=0.05, pen=pg.mkPen(colour, width=1.5))
            self.plot_widget.addItem(self.error_bars[start])
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(
            ["Labels", "Labelled pictures", "From pretrained", "From random"]
        )
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        rows = len(fractions) + 1  # a row per share and the header
        self.table.setMaximumHeight(rows * self.table.verticalHeader().defaultSectionSize() + 8)
        self.verdict_label = _wrapping_label(" ")
        buttons = self._stop_and_close_buttons()
        layout = QVBoxLayout(self)
        layout.addWidget(self.status_label)
        layout.addWidget(self.plot_widget, 1)
        for widget in (self.table, self.verdict_label, buttons):
            layout.addWidget(widget)
        self.resize(760, 700)

    def start(self) -> None:
        self.session.start(self.config)

    @Slot(object)
    def _on_arm_started(self, event: TrainingStarted) -> None:
        self._arm_index += 1
        self._started = event
        fraction, start, seed = self.arms[min(self._arm_index, len(self.arms) - 1)]
        self.status_label.setText(
            f"Run {self._arm_index + 1} of {len(self.arms)}: {100 * fraction:g} % of the labels "
            f"({event.num_train_images} pictures), from {start} weights, seed {seed}…"
        )

    @Slot(object)
    def _on_arm_finished(self, event: TrainingFinished) -> None:
        fraction, start, seed = self.arms[min(max(self._arm_index, 0), len(self.arms) - 1)]
        started = self._started
        pictures = started.num_train_images if started is not None else 0
        classes = len(started.class_names) if started is not None else 0
        self.finals.append((fraction, start, seed, event, pictures, classes))
        self._started = None
        self._show_curve()

    def curve(self) -> Any:
        """The finished runs as the core's LabelFractionCurve (its numbers are the runs')."""
        from ptm_studio.core.compare import (
            ComparisonArm,
            ComparisonResult,
            LabelFractionCurve,
            LabelFractionPoint,
        )

        points = []
        for fraction in sorted({fraction for fraction, *_ in self.finals}):
            arms = tuple(
                ComparisonArm(start, seed, event, (), (), pictures, classes)
                for share, start, seed, event, pictures, classes in self.finals
                if share == fraction
            )
            points.append(LabelFractionPoint(fraction, ComparisonResult(arms)))
        return LabelFractionCurve(tuple(points))

    def _show_curve(self) -> None:
        curve = self.curve()
        self.table.setRowCount(0)
        for point in curve.points:
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = [
                f"{100 * point.fraction:g} %",
                f"{point.labelled_pictures} ({point.per_class} per class)",
                *(_spread_text(point.spread(start)) for start in ("pretrained", "random")),
            ]
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        for start in ("pretrained", "random"):
            shown = [
                (point.per_class, *point.spread(start))
                for point in curve.points
                if point.per_class > 0 and math.isfinite(point.spread(start)[1])
            ]
            x = np.log10([max(1, per_class) for per_class, *_ in shown])
            low, mean, high = (np.array([values[i] for values in shown]) for i in (1, 2, 3))
            self.curves[start].setData(10**x, 100 * mean)
            self.error_bars[start].setData(
                x=x, y=100 * mean, top=100 * (high - mean), bottom=100 * (mean - low)
            )
        # Ticks at the counts measured, in plain numbers (not 2·10¹).
        counts = sorted({point.per_class for point in curve.points if point.per_class > 0})
        ticks = [(float(np.log10(count)), str(count)) for count in counts]
        self.plot_widget.getAxis("bottom").setTicks([ticks, []] if ticks else None)

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        self.stop_button.setEnabled(is_running)
        if not is_running:
            self._show_curve()
            self.verdict_label.setText(self.curve().verdict())
            self.status_label.setText("Done. Each run is kept in your runs folder.")


def _spread_text(spread: tuple[float, float, float]) -> str:
    low, mean, high = spread
    if not math.isfinite(mean):
        return "–"
    return f"{100 * mean:.1f} % ({100 * low:.1f}–{100 * high:.1f})"
