"""MetricsPanel: live curves of loss (per step, raw and smoothed; per epoch), accuracy and learning rate.

Events are only buffered when they arrive; a 20 Hz timer pushes what changed to the curves, so
a worker firing thousands of batches per second never floods the painter. A resumed run first
gets its logged history (:meth:`MetricsPanel.show_history`), then its live events continue it.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QGridLayout, QWidget

from ptm_studio.core.engine.events import (
    BatchFinished,
    EpochFinished,
    EvaluationFinished,
    FrozenFeaturesMeasured,
    TrainingStarted,
)
from ptm_studio.gui import theme
from ptm_studio.gui.run_history import RunHistory, logged_number
from ptm_studio.gui.widgets.live_curve import LivePlot

# 10 Hz, one changed plot per tick (see refresh). At 20 Hz the window's run trained at
# 0.74-0.76 of the same run without a window, at 10 Hz 0.81-0.83 (issue 14, B3; 2 cores).
REFRESH_INTERVAL_MS = 100
SMOOTHING = 0.9  # exponential moving average weight of the smoothed loss


class MetricsPanel(QWidget):
    """Four plots: loss per step, loss per epoch, accuracy per epoch, learning rate per step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.step_loss_plot = LivePlot("Training loss per step", "Step", "Loss")
        self.step_loss_plot.add_curve("raw", "loss", theme.TRAIN_COLOUR, width=1.0)
        self.step_loss_plot.add_curve("smoothed", "smoothed", theme.SMOOTH_COLOUR, width=2.0)
        self.epoch_loss_plot = LivePlot("Loss per epoch", "Epoch", "Loss", integer_x=True)
        self.epoch_loss_plot.add_curve("train", "training", theme.TRAIN_COLOUR, with_symbols=True)
        self.epoch_loss_plot.add_curve(
            "val", "validation", theme.VALIDATION_COLOUR, with_symbols=True
        )
        self.accuracy_plot = LivePlot("Accuracy per epoch", "Epoch", "Accuracy (%)", integer_x=True)
        self.accuracy_plot.add_curve("train", "training", theme.TRAIN_COLOUR, with_symbols=True)
        self.accuracy_plot.add_curve(
            "val", "validation", theme.VALIDATION_COLOUR, with_symbols=True
        )
        self.learning_rate_plot = LivePlot("Learning rate", "Step", "Learning rate")
        self.learning_rate_plot.add_curve("lr", "learning rate", theme.LEARNING_RATE_COLOUR)
        for plot, tip in (
            (
                self.step_loss_plot,
                "How wrong the model is on each training batch. Lower is better; "
                "the smoothed line shows the trend through the noise.",
            ),
            (
                self.epoch_loss_plot,
                "Average loss over each pass through the images. If validation "
                "goes up while training goes down, the model is memorising (overfitting).",
            ),
            (self.accuracy_plot, "Share of images classified correctly after each pass."),
            (self.learning_rate_plot, "Size of the learning steps, as the schedule changes it."),
        ):
            plot.setToolTip(tip)
        layout = QGridLayout(self)
        layout.addWidget(self.step_loss_plot, 0, 0)
        layout.addWidget(self.epoch_loss_plot, 0, 1)
        layout.addWidget(self.accuracy_plot, 1, 0)
        layout.addWidget(self.learning_rate_plot, 1, 1)
        self._smoothed_loss = math.nan
        self._next_plot = 0
        self._continued_run_dir: Path | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    @property
    def plots(self) -> tuple[LivePlot, ...]:
        return (
            self.step_loss_plot,
            self.epoch_loss_plot,
            self.accuracy_plot,
            self.learning_rate_plot,
        )

    @Slot(object)
    def start_run(self, event: TrainingStarted) -> None:
        """A new run clears the curves; the run whose history was just shown continues them."""
        continued, self._continued_run_dir = self._continued_run_dir, None
        if continued is None or event.run_dir is None or Path(event.run_dir) != continued:
            self.clear()

    def show_history(self, history: RunHistory, run_dir: Path) -> None:
        """Replace the curves with a run's logged records (``metrics.jsonl``, up to the point it
        resumes from); when that run starts again, its live events continue these curves."""
        self.clear()
        for record in history.batches:
            self._append_batch(
                logged_number(record, "global_step"),
                logged_number(record, "loss"),
                logged_number(record, "learning_rate"),
            )
        checks = [*history.epochs, *history.evaluations]  # validation, in the order it ran
        for record in sorted(checks, key=lambda record: logged_number(record, "global_step")):
            if record.get("type") == "evaluation":
                self._append_evaluation(
                    logged_number(record, "epoch"),
                    logged_number(record, "val_loss"),
                    logged_number(record, "val_accuracy"),
                )
                continue
            self._append_epoch(
                logged_number(record, "epoch"),
                logged_number(record, "train_loss"),
                logged_number(record, "val_loss"),
                logged_number(record, "train_accuracy"),
                logged_number(record, "val_accuracy"),
            )
        if history.frozen_features is not None:
            self._show_probe_level(logged_number(history.frozen_features, "probe_accuracy"))
        self._continued_run_dir = Path(run_dir)
        self.refresh_all()

    @Slot(object)
    def add_batch(self, event: BatchFinished) -> None:
        self._append_batch(event.global_step, float(event.loss), event.learning_rate)

    @Slot(object)
    def add_epoch(self, event: EpochFinished) -> None:
        self._append_epoch(
            event.epoch,
            event.train_loss,
            event.val_loss,
            event.train_accuracy,
            event.val_accuracy,
        )

    @Slot(object)
    def show_frozen_features(self, event: FrozenFeaturesMeasured) -> None:
        """Before a "probe then finetune" run's first step: what its last layer scored alone
        on the frozen starting features, the level the finetuned accuracy should rise above."""
        self._show_probe_level(event.probe_accuracy)

    def _show_probe_level(self, accuracy: float) -> None:
        if math.isfinite(accuracy):
            self.accuracy_plot.show_level(
                "probe",
                f"last layer alone on the starting features: {100 * accuracy:.1f} %",
                theme.BASELINE_COLOUR,
                100.0 * accuracy,
            )

    @Slot(object)
    def add_evaluation(self, event: EvaluationFinished) -> None:
        """A check in the middle of an epoch: a validation point between the epochs' ones."""
        self._append_evaluation(event.epoch, event.val_loss, event.val_accuracy)

    def _append_batch(self, step: float, loss: float, learning_rate: float) -> None:
        if math.isfinite(loss):
            if math.isnan(self._smoothed_loss):
                self._smoothed_loss = loss
            else:
                self._smoothed_loss = SMOOTHING * self._smoothed_loss + (1 - SMOOTHING) * loss
        self.step_loss_plot.append("raw", step, loss)
        self.step_loss_plot.append("smoothed", step, self._smoothed_loss)
        self.learning_rate_plot.append("lr", step, learning_rate)

    def _append_epoch(
        self,
        epoch: float,
        train_loss: float,
        val_loss: float,
        train_accuracy: float,
        val_accuracy: float,
    ) -> None:
        self.epoch_loss_plot.append("train", epoch, train_loss)
        self.epoch_loss_plot.append("val", epoch, val_loss)
        self.accuracy_plot.append("train", epoch, 100.0 * train_accuracy)
        self.accuracy_plot.append("val", epoch, 100.0 * val_accuracy)

    def _append_evaluation(self, epoch: float, val_loss: float, val_accuracy: float) -> None:
        self.epoch_loss_plot.append("val", epoch, val_loss)
        self.accuracy_plot.append("val", epoch, 100.0 * val_accuracy)

    @Slot()
    def refresh(self) -> None:
        """Repaint at most one changed plot per tick, in turn.

        Qt paints everything that changed in one pass; four plots at once block the event loop
        for 50+ ms (much more while training competes for the interpreter lock). One plot per
        tick keeps each pass short; with the usual two changing plots each still gets 5 Hz.
        """
        plots = self.plots
        for offset in range(len(plots)):
            index = (self._next_plot + offset) % len(plots)
            if plots[index].refresh():
                self._next_plot = (index + 1) % len(plots)
                return

    def refresh_all(self) -> None:
        """Bring every plot up to date at once (tests, screenshots)."""
        for plot in self.plots:
            plot.refresh()

    def clear(self) -> None:
        self._smoothed_loss = math.nan
        for plot in self.plots:
            plot.clear_data()


def _preview() -> None:  # pragma: no cover - manual preview
    import random

    from ptm_studio.gui.panels._preview import fake_batch, fake_epoch, run_preview

    def build() -> MetricsPanel:
        panel = MetricsPanel()
        state = {"step": 0}

        def feed() -> None:
            for _ in range(20):
                state["step"] += 1
                step = state["step"]
                loss = 2.0 / (1 + step / 300) + random.random() * 0.3
                panel.add_batch(fake_batch(step, loss=loss))
                if step % 200 == 0:
                    panel.add_epoch(fake_epoch(step // 200))

        feeder = QTimer(panel)
        feeder.timeout.connect(feed)
        feeder.start(20)
        return panel

    run_preview(build, size=(1000, 650))


if __name__ == "__main__":
    _preview()
