""" "Did pretraining help?": finetune from a pretrained run and from random weights, side by side.

The comparison runs in the same worker/QThread machinery as a training run (the worker's
trainer factory runs both arms one after the other), so Stop, closing and errors behave alike.
Each arm is an ordinary run folder; the dialog plots validation accuracy per epoch for both.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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
    ) -> None:
        self.request, self.callbacks, self.stop_request = request, callbacks, stop_request
        self.pretrained_run, self.seeds = pretrained_run, seeds

    def run(self) -> Any:
        from ptm_studio.core.compare import compare_initialisations
        from ptm_studio.core.transfer_recipe import RECIPE_SETTINGS, TRANSFER_MODE

        # The window's usual modes get the transfer recipe for the pretrained arm (and the
        # random arm learns with every layer); another mode was the user's choice: kept.
        mode = self.request.config.model.training_mode
        keep = () if mode in ("full_finetune", TRANSFER_MODE) else RECIPE_SETTINGS
        result = compare_initialisations(
            self.request.config,
            self.pretrained_run,
            seeds=self.seeds,
            runs_root=self.request.runs_root,
            callbacks_for=lambda _start, _seed: self.callbacks,
            stop_request=self.stop_request,
            keep=keep,
        )
        return result.arms[-1].finished if result.arms else None


class ComparisonDialog(QDialog):
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
        self.status_label = QLabel(
            f"Finetuning from {pretrained_run.name} and from random weights{repeats}…"
        )
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)
        self.status_label.setWordWrap(True)
        self.plot = LivePlot("Validation accuracy", "Epoch", "Accuracy (%)", integer_x=True)
        for start, seed in self.arms:
            name = f"from {start}" + (f" (seed {seed})" if len(self.arms) > 2 else "")
            self.plot.add_curve(f"{start}-{seed}", name, ARM_COLOURS[start], with_symbols=True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Start", "Seed", "Best validation accuracy"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.verdict_label = QLabel(" ")
        self.verdict_label.setTextFormat(Qt.TextFormat.PlainText)
        self.verdict_label.setWordWrap(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; finished runs are kept.")
        self.stop_button.clicked.connect(self.session.stop)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.stop_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.close)
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

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.is_running:
            self.session.stop()
            self.session.wait()
        event.accept()
