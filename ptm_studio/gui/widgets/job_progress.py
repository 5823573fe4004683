"""JobProgress: a bar, "120 of 693 pictures, about 8 s left", and Cancel, for any Job."""

from __future__ import annotations

import time

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from ptm_studio.gui.jobs.job import Job
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.wording import format_duration

# The first reports are too few to predict from: no estimate before this much work and time.
ESTIMATE_AFTER_SHARE = 0.05
ESTIMATE_AFTER_SECONDS = 1.0


class JobProgress(QWidget):
    """Hidden while its job is idle; shows the job's progress with an estimate, and cancels it."""

    def __init__(
        self,
        job: Job,
        unit: str = "pictures",
        *,
        starting_text: str = "Starting…",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.job, self.unit, self.starting_text = job, unit, starting_text
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(14)
        self.label = plain_label(word_wrap=False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this; nothing is changed or saved.")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.label)
        layout.addWidget(self.cancel_button)
        self._started = time.monotonic()
        job.running_changed.connect(self._on_running_changed)
        job.progressed.connect(self.show_progress)
        self.setVisible(job.is_running)

    @Slot()
    def cancel(self) -> None:
        self.job.cancel()
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling…")

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        self.setVisible(is_running)
        if is_running:
            self._started = time.monotonic()
            self.bar.setRange(0, 0)  # busy until the first report says how much there is
            self.label.setText(self.starting_text)
            self.cancel_button.setEnabled(True)

    @Slot(int, int)
    def show_progress(self, done: int, total: int) -> None:
        if self.job.is_cancelling:
            return
        if total <= 0:
            self.bar.setRange(0, 0)
            self.label.setText(f"{done} {self.unit}")
            return
        self.bar.setRange(0, total)
        self.bar.setValue(min(done, total))
        self.label.setText(f"{done} of {total} {self.unit}{self._estimate(done, total)}")

    def _estimate(self, done: int, total: int) -> str:
        elapsed = time.monotonic() - self._started
        if done >= total or done < ESTIMATE_AFTER_SHARE * total or elapsed < ESTIMATE_AFTER_SECONDS:
            return ""
        left = elapsed / done * (total - done)
        return f", about {format_duration(left)} left"
