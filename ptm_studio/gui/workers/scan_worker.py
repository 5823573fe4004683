"""ScanWorker: scans a dataset folder on a QThread with progress and Cancel."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from ptm_studio.gui.dataset_summary import DatasetSummary, scan_dataset
from ptm_studio.gui.workers.threads import move_to_new_thread

PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress signals per second, whatever the file rate

ScanFunction = Callable[..., DatasetSummary]


class ScanCancelled(Exception):
    """Raised inside the scan when the user pressed Cancel."""


class ScanWorker(QObject):
    # Each signal carries the job number first, so a replaced scan's late results are ignored.
    progress = Signal(int, int, int)  # job, files looked at, total (0 while unknown)
    scan_finished = Signal(int, object)  # job, DatasetSummary
    scan_failed = Signal(int, str, str)  # job, message, details
    scan_cancelled = Signal(int)
    finished = Signal()

    def __init__(self, root: Path, scan_function: ScanFunction | None = None, job: int = 0) -> None:
        super().__init__()
        self.job = job
        self.root = Path(root)
        self._scan_function = scan_function or scan_dataset
        self._is_cancelled = False
        self._last_progress = 0.0

    def cancel(self) -> None:
        """Thread-safe (a bool write): called directly from the GUI thread."""
        self._is_cancelled = True

    def _should_stop(self) -> bool:
        return self._is_cancelled

    def _report(self, done: int, total: int | None = 0) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.progress.emit(self.job, int(done), int(total or 0))
        if self._is_cancelled:
            raise ScanCancelled

    @Slot()
    def run(self) -> None:
        try:
            summary = self._scan_function(
                self.root, progress=self._report, should_stop=self._should_stop
            )
            if self._is_cancelled:
                self.scan_cancelled.emit(self.job)
            else:
                self.scan_finished.emit(self.job, summary)
        except ScanCancelled:
            self.scan_cancelled.emit(self.job)
        except Exception as error:
            if type(error).__name__ == "ScanCancelled":  # the core's own cancel exception
                self.scan_cancelled.emit(self.job)
                return
            message = f"Could not read the folder {self.root}: {error}"
            self.scan_failed.emit(self.job, message, "".join(traceback.format_exception(error)))
        finally:
            self.finished.emit()


class ScanJob(QObject):
    """Owns one ScanWorker and its QThread (finished → quit → deleteLater), like TrainingSession."""

    progress = Signal(int, int)
    scan_finished = Signal(object)
    scan_failed = Signal(str, str)
    scan_cancelled = Signal()
    running_changed = Signal(bool)

    def __init__(
        self, parent: QObject | None = None, *, scan_function: ScanFunction | None = None
    ) -> None:
        super().__init__(parent)
        self.scan_function = scan_function
        self._thread: QThread | None = None
        self._worker: ScanWorker | None = None
        self._job = 0

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    def start(self, root: Path) -> None:
        self.cancel()
        self.wait()
        self._job += 1
        worker = ScanWorker(root, self.scan_function, self._job)
        thread = move_to_new_thread(worker, "ptm-scan", self._on_thread_finished)
        worker.progress.connect(self._on_progress)
        worker.scan_finished.connect(self._on_finished)
        worker.scan_failed.connect(self._on_failed)
        worker.scan_cancelled.connect(self._on_cancelled)
        self._thread, self._worker = thread, worker
        self.running_changed.emit(True)
        thread.start()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        thread = self._thread
        if thread is None:
            return True
        ended = thread.wait(timeout_ms)
        if ended:
            # Deliver what the worker queued for us (its last events, then thread.finished) now,
            # in order, instead of faking the ending: a late delivery could end a newer run.
            QCoreApplication.sendPostedEvents(self, 0)
        return ended

    @Slot(int, int, int)
    def _on_progress(self, job: int, done: int, total: int) -> None:
        if job != self._job:  # a cancelled, replaced scan
            return
        self.progress.emit(done, total)

    @Slot(int, object)
    def _on_finished(self, job: int, summary: Any) -> None:
        if job != self._job:  # a cancelled, replaced scan
            return
        self.scan_finished.emit(summary)

    @Slot(int, str, str)
    def _on_failed(self, job: int, message: str, details: str) -> None:
        if job != self._job:  # a cancelled, replaced scan
            return
        self.scan_failed.emit(message, details)

    @Slot(int)
    def _on_cancelled(self, job: int) -> None:
        if job != self._job:  # a cancelled, replaced scan
            return
        self.scan_cancelled.emit()

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if thread is None:
            return
        # finished is emitted before the thread has fully ended (it still runs the worker's
        # deleteLater); wait out those last microseconds before dropping the Python references,
        # or the objects could be freed while the thread still uses them.
        thread.wait()
        self._thread = None
        self._worker = None
        self.running_changed.emit(False)
