"""Job: runs one core function on its own QThread, and tells the GUI thread what happened.

The function gets a :class:`JobContext` (report progress, see whether it was cancelled, send
intermediate results such as training events, in order) and its return value is the result.
The Job lives in the GUI thread; every signal it emits is emitted there, so connected panels
need no care about threads. What it owns, so no caller writes it again:

- the thread (superqt's ``new_worker_qthread`` lifecycle: started → run; finished → quit; the
  thread's end → the job is idle again), never terminated; the worker goes back to the GUI
  thread before it finishes and is freed there (never a wrapped QObject destroyed off it);
- progress throttling on the working thread, before anything is queued: at most ten reports a
  second (the first and the last always), whatever the rate of the work;
- cancelling through a thread-safe flag (a queued call would wait for the busy worker);
- stale results: each start has a number, and what a replaced run sends late is dropped;
- teardown: :meth:`wait` delivers what the finished worker queued, in order, then returns.

Every background task of the window is a Job but one: the device check at launch, which may
hang in a graphics driver with no point to stop at and must never hold up quitting (a daemon
thread, see device_probe.py).

Why not superqt's ``thread_worker``: its workers run on a QThreadPool (or a thread per worker
without these guarantees); the window needs a named QThread per job that tests can see end, a
stop that reaches a busy loop directly, ordered delivery of thousands of events a second, and
a wait that flushes them at shutdown. Its ``qthrottled`` needs a running event loop on the
throttled side, and the working thread's loop is busy inside the work.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QObject, Qt, QThread, Signal, Slot

from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.progress import ProgressThrottle

LOGGER = logging.getLogger(__name__)

Work = Callable[["JobContext"], Any]


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check_cancelled` to end a cancelled job early."""


class JobContext:
    """What the work function gets; every method may be called from the job's thread."""

    def __init__(self, worker: _Worker) -> None:
        self._worker = worker
        self.stop_request = StopRequest()  # cancel() sets it; the Trainer polls it directly
        self.progress = ProgressThrottle(self._send_progress)
        """``progress(done, total)``: total 0 while unknown; throttled."""

    @property
    def is_cancelled(self) -> bool:
        return self.stop_request.is_requested

    def check_cancelled(self) -> None:
        """Raise JobCancelled when the user cancelled (for work with natural check points)."""
        if self.is_cancelled:
            raise JobCancelled

    def emit(self, item: object) -> None:
        """Send an intermediate result to the GUI thread (``Job.emitted``), in order."""
        self._worker.emitted.emit(self._worker.generation, item)

    def _send_progress(self, done: int, total: int) -> None:
        self._worker.progressed.emit(self._worker.generation, done, total)


class _Worker(QObject):
    """Lives on the job's thread; each signal carries the start number it belongs to."""

    progressed = Signal(int, int, int)
    emitted = Signal(int, object)
    succeeded = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)
    finished = Signal()

    def __init__(self, work: Work, generation: int) -> None:
        super().__init__()
        self.work, self.generation = work, generation
        self.context = JobContext(self)

    @Slot()
    def run(self) -> None:
        try:
            result = self.work(self.context)
        except JobCancelled:
            self.cancelled.emit(self.generation)
        except Exception as error:
            if self.context.is_cancelled:  # a cancelled core function ends with its own error
                self.cancelled.emit(self.generation)
            else:
                LOGGER.exception("a background job failed")
                details = "".join(traceback.format_exception(error))
                self.failed.emit(self.generation, str(error) or type(error).__name__, details)
        else:
            if self.context.is_cancelled:
                self.cancelled.emit(self.generation)
            else:
                self.succeeded.emit(self.generation, result)
        finally:
            # Back to the GUI thread before the end: the worker is then destroyed there, when
            # the job drops it. Destroyed on this thread (deleteLater), its Python wrapper
            # waited for the interpreter lock while Qt's connection lock was held, and a GUI
            # thread connecting signals at that moment (making a plot) deadlocked on it.
            application = QCoreApplication.instance()
            if application is not None:
                self.moveToThread(application.thread())
            self.finished.emit()


class Job(QObject):
    """One kind of background work, at most one run at a time (see the module docstring)."""

    progressed = Signal(int, int)
    """(done, total; 0 while unknown), throttled."""
    emitted = Signal(object)
    """An intermediate result the work sent (e.g. an engine event)."""
    succeeded = Signal(object)
    failed = Signal(str, str)
    """(message, details): the work raised; the details hold the traceback."""
    cancelled = Signal()
    running_changed = Signal(bool)
    """True when a run starts; False once its thread has fully ended (safe to start again)."""

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._thread: QThread | None = None
        self._worker: _Worker | None = None
        self._generation = 0
        self._next_work: Work | None = None  # to start once the run being replaced has ended

    @property
    def is_running(self) -> bool:
        return self._thread is not None

    @property
    def is_cancelling(self) -> bool:
        return self._worker is not None and self._worker.context.is_cancelled

    @property
    def stop_request(self) -> StopRequest | None:
        """The running work's stop flag (thread-safe), for work that polls it directly."""
        return self._worker.context.stop_request if self._worker is not None else None

    def start(self, work: Work) -> None:
        """Run ``work(context)`` on a new thread. Raises RuntimeError while a run is active:
        callers that replace a run use :meth:`restart`."""
        if self.is_running:
            raise RuntimeError(f"the {self.name} job is already running")
        self._generation += 1
        worker = _Worker(work, self._generation)
        thread = QThread()
        thread.setObjectName(self.name)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # Direct: quit from the worker thread itself, so a GUI thread blocked in wait() cannot
        # deadlock. The worker is freed on the GUI thread when the job drops it (see run).
        worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        thread.finished.connect(self._on_thread_finished)
        worker.progressed.connect(self._on_progressed)
        worker.emitted.connect(self._on_emitted)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._thread, self._worker = thread, worker
        self.running_changed.emit(True)
        thread.start()

    def restart(self, work: Work) -> None:
        """Run ``work`` instead of the run in progress: that one is cancelled (whatever it still
        sends is dropped) and ``work`` starts as soon as its thread has ended, without the
        window waiting for it. Restarting again before then replaces ``work``."""
        if not self.is_running:
            self.start(work)
            return
        self.cancel()
        self._generation += 1  # the replaced run's late results are stale from now on
        self._next_work = work

    def cancel(self) -> None:
        """Ask the run to stop (thread-safe flag, direct call); a replacement waiting to start
        is dropped, and reported as cancelled (it is what the user sees as running)."""
        replacement_dropped = self._next_work is not None
        self._next_work = None
        if self._worker is not None:
            self._worker.context.stop_request.request()
        if replacement_dropped:
            self.cancelled.emit()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until the thread has ended (shutdown, tests); True when it did."""
        thread = self._thread
        if thread is None:
            return True
        ended = thread.wait(QDeadlineTimer(timeout_ms))
        if ended:
            # Deliver what the worker queued for us (its last results, then thread.finished)
            # now, in order, instead of faking the ending: a late delivery could end a newer run.
            QCoreApplication.sendPostedEvents(self, 0)
        return ended

    def _is_current(self, generation: int) -> bool:
        return generation == self._generation  # else a replaced run's late result

    @Slot(int, int, int)
    def _on_progressed(self, generation: int, done: int, total: int) -> None:
        if self._is_current(generation):
            self.progressed.emit(done, total)

    @Slot(int, object)
    def _on_emitted(self, generation: int, item: object) -> None:
        if self._is_current(generation):
            self.emitted.emit(item)

    @Slot(int, object)
    def _on_succeeded(self, generation: int, result: object) -> None:
        if self._is_current(generation):
            self.succeeded.emit(result)

    @Slot(int, str, str)
    def _on_failed(self, generation: int, message: str, details: str) -> None:
        if self._is_current(generation):
            self.failed.emit(message, details)

    @Slot(int)
    def _on_cancelled(self, generation: int) -> None:
        if self._is_current(generation):
            self.cancelled.emit()

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self._thread
        if thread is None:
            return
        # finished is emitted before the thread has fully ended; wait out those last
        # microseconds before dropping the references, or the objects could be freed while
        # the thread still uses them.
        thread.wait()
        self._thread = None
        self._worker = None
        next_work, self._next_work = self._next_work, None
        self.running_changed.emit(False)
        if next_work is not None:
            self.start(next_work)  # the replacement restart() asked for
