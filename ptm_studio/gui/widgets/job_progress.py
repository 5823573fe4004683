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
        counting_text: str = "{done} {unit}",
        parent: QWidget | None = None,
    ) -> None:
        """``counting_text`` is shown while the job does not know its total yet (``{done}``,
        ``{unit}``): a folder being listed before its pictures are checked, say."""
        super().__init__(parent)
        self.job, self.unit, self.starting_text = job, unit, starting_text
        self.counting_text = counting_text
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
        self._total_known_at: tuple[float, int] | None = None  # (when, done) of the first total
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
            self._total_known_at = None
            self.bar.setRange(0, 0)  # busy until the first report says how much there is
            self.label.setText(self.starting_text)
            self.cancel_button.setEnabled(True)

    @Slot(int, int)
    def show_progress(self, done: int, total: int) -> None:
        if self.job.is_cancelling:
            return
        if total <= 0:
            self.bar.setRange(0, 0)
            self.label.setText(self.counting_text.format(done=done, unit=self.unit))
            return
        if self._total_known_at is None:
            self._total_known_at = (time.monotonic(), done)
        self.bar.setRange(0, total)
        self.bar.setValue(min(done, total))
        self.label.setText(f"{done} of {total} {self.unit}{self._estimate(done, total)}")

    def _estimate(self, done: int, total: int) -> str:
        """Time left at the pace since the total became known (what came before, such as
        loading a model or listing a folder, says nothing about the pace of the rest)."""
        assert self._total_known_at is not None
        since, done_then = self._total_known_at
        elapsed, progressed = time.monotonic() - since, done - done_then
        if done >= total or progressed <= 0 or elapsed < ESTIMATE_AFTER_SECONDS:
            return ""
        if done < ESTIMATE_AFTER_SHARE * total:
            return ""
        left = elapsed / progressed * (total - done)
        return f", about {format_duration(left)} left"
