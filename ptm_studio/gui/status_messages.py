"""What the status bar says as a run goes: where it trains, how it adjusted itself, how it
ended; and the "Ready" line for a folder just looked at."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QStatusBar

from ptm_studio.core.data.manifest import DatasetError
from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_STOPPED,
    TrainingAdjusted,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.gui.dataset_summary import DatasetSummary

LOGGER = logging.getLogger(__name__)
FINISHED_TEXT = {
    STATUS_COMPLETED: "Training finished.",
    STATUS_STOPPED: "Training stopped and saved. Press Resume to continue it.",
    STATUS_FAILED: "Training failed; see the message for what to do.",
}


def ready_text(summary: DatasetSummary, is_demo: bool) -> str:
    """The training panel's line once a folder has been looked at."""
    where = "the demo images" if is_demo else "your images"
    if summary.is_labeled:
        ready = (
            f"Ready: {where} ({summary.num_images} in {len(summary.classes)} classes). Press Start"
        )
    else:
        ready = f"Ready: {where} ({summary.num_images}, no classes) for pretraining. Press Start"
    return ready + (", or choose your own folder (Ctrl+O)." if is_demo else ".")


def start_text(
    summary: DatasetSummary | None,
    blocker: DatasetError | None,
    *,
    is_checking: bool,
    folder: str,
    is_demo: bool,
) -> str:
    """The training panel's idle line: ready, or why Start waits (the images panel says more)."""
    if is_checking:
        return f"Looking at {folder} … Start is possible once its pictures have been checked."
    if summary is None:
        return "Choose a folder of images (step 1), then press Start."
    if blocker is not None:
        return f"Cannot start yet: {blocker.message} Step 1 says what to do."
    return ready_text(summary, is_demo)


class StatusMessages(QObject):
    """Connect the session's events to these slots (see MainWindow)."""

    def __init__(self, status_bar: QStatusBar) -> None:
        super().__init__(status_bar)
        self.status_bar = status_bar

    def show(self, text: str, timeout_ms: int = 0) -> None:
        self.status_bar.showMessage(text, timeout_ms)

    @Slot(object)
    def training_started(self, event: TrainingStarted) -> None:
        self.show(f"Training on {event.device_name}… Results go to {event.run_dir}")

    @Slot(object)
    def training_adjusted(self, event: TrainingAdjusted) -> None:
        """Not an error, but the user should know: also in the training panel and the log."""
        LOGGER.warning(
            "training adjusted (%s) at step %d: %s", event.kind, event.global_step, event.message
        )
        self.show(f"Adjusted to keep going: {event.message}")

    @Slot(object)
    def training_finished(self, event: TrainingFinished) -> None:
        self.show(FINISHED_TEXT.get(event.status, event.status))

    @Slot(object)
    def dataset_changed(self, summary: DatasetSummary | None) -> None:
        if summary is not None:
            self.show(f"{summary.num_images} images found in {summary.root}.", 5000)
