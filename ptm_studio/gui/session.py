"""TrainingSession: owns the QThread + TrainingWorker of the current run and its lifecycle.

Lifecycle (superqt style): thread.started → worker.run; worker.finished → thread.quit (called
directly in the worker thread) and worker.deleteLater; thread.finished → the session waits out
the thread's last moments, drops its references (Python owns the QThread) and goes idle. The
session re-emits the worker's signals from the GUI thread, so panels connect to one stable object.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QObject, QThread, Signal, Slot

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.gui.workers.threads import move_to_new_thread
from ptm_studio.gui.workers.training_worker import TrainerFactory, TrainingWorker

# While training runs, its thread and the GUI thread share the interpreter lock. Python hands the
# lock over every 5 ms by default, and each paint needs it many times (every Python override),
# so a 10 ms paint can stretch past 100 ms. A shorter interval keeps the window responsive.
TRAINING_SWITCH_INTERVAL_S = 0.0005


# The worker's signals the session passes on as they are (training_finished is handled).
FORWARDED_SIGNALS = (
    "training_started",
    "batch_finished",
    "epoch_finished",
    "predictions_ready",
    "pretrain_samples_ready",
    "checkpoint_saved",
    "training_adjusted",
    "download_progressed",
)


class TrainingSession(QObject):
    """Start, stop and wait for training runs; at most one at a time."""

    training_started = Signal(object)
    batch_finished = Signal(object)
    epoch_finished = Signal(object)
    predictions_ready = Signal(object)
    pretrain_samples_ready = Signal(object)
    checkpoint_saved = Signal(object)
    training_adjusted = Signal(object)
    """The run changed how it works to keep going (TrainingAdjusted: kind, message, step)."""
    training_finished = Signal(object)
    download_progressed = Signal("qint64", "qint64")
    """ImageNet weights downloading: (done_bytes, total_bytes; 0 when unknown)."""
    running_changed = Signal(bool)
    """True when a run starts, False once its thread has fully ended (safe to start again)."""

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        runs_root: Path | None = None,
        trainer_factory: TrainerFactory | None = None,
    ) -> None:
        super().__init__(parent)
        self.runs_root = runs_root
        self.trainer_factory = trainer_factory
        self._thread: QThread | None = None
        self._worker: TrainingWorker | None = None
        self._stop_request: StopRequest | None = None
        self._normal_switch_interval: float | None = None
        self.last_finished: Any = None
        self.last_config: RunConfig | None = None

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    @property
    def is_stopping(self) -> bool:
        return self._stop_request is not None and self._stop_request.is_requested

    def start(self, config: RunConfig, *, resume_from: Path | None = None) -> None:
        if self.is_running:
            raise RuntimeError("a training run is already active")
        worker = TrainingWorker(
            config,
            runs_root=self.runs_root,
            resume_from=resume_from,
            trainer_factory=self.trainer_factory,
        )
        thread = move_to_new_thread(worker, "ptm-training", self._on_thread_finished)
        # Signal to signal: queued into this (GUI) thread, re-emitted there unchanged.
        for name in FORWARDED_SIGNALS:
            getattr(worker, name).connect(getattr(self, name))
        worker.training_finished.connect(self._on_training_finished)
        self._thread, self._worker, self._stop_request = thread, worker, worker.stop_request
        self.last_config = config
        # A full (generation 2) garbage collection scans every object of torch, Qt and
        # pyqtgraph: 300 ms on a laptop, holding the interpreter lock, so the window freezes.
        # Everything alive now lives for the whole session; freezing it keeps it out of
        # those scans (cheap: no collection happens here).
        gc.freeze()
        if self._normal_switch_interval is None:
            self._normal_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._normal_switch_interval, TRAINING_SWITCH_INTERVAL_S))
        self.running_changed.emit(True)
        thread.start()

    def stop(self) -> None:
        """Ask the run to stop at the next batch boundary (direct, thread-safe call)."""
        if self._stop_request is not None:
            self._stop_request.request()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until the thread has ended (for shutdown); True when it did."""
        thread = self._thread
        if thread is None:
            return True
        ended = thread.wait(QDeadlineTimer(timeout_ms))
        if ended:
            # Deliver what the worker queued for us (its last events, then thread.finished) now,
            # in order, instead of faking the ending: a late delivery could end a newer run.
            QCoreApplication.sendPostedEvents(self, 0)
        return ended

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop and wait: used when the application quits while a run is active."""
        self.stop()
        return self.wait(timeout_ms)

    @Slot(object)
    def _on_training_finished(self, event: Any) -> None:
        self.last_finished = event
        self.training_finished.emit(event)

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
        self._stop_request = None
        if self._normal_switch_interval is not None:
            sys.setswitchinterval(self._normal_switch_interval)
            self._normal_switch_interval = None
        self.running_changed.emit(False)
