"""TrainingSession: the training job, with every engine event re-emitted as a Qt signal.

The core Trainer runs on the job's thread; its events cross to the GUI thread in order (one
queue) and come out of the session as signals named like the events (``batch_finished``), so
panels connect to one stable object whatever run is going on. Stop is the job's thread-safe
flag, which the Trainer polls between batches.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal, Slot

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import DatasetScan
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import STATUS_FAILED, EngineEvent, TrainingFinished
from ptm_studio.gui.jobs.event_signals import EventForwarder, EventSignals
from ptm_studio.gui.jobs.job import Job, JobContext

# While training runs, its thread and the GUI thread share the interpreter lock. Python hands the
# lock over every 5 ms by default, and each paint needs it many times (every Python override),
# so a 10 ms paint can stretch past 100 ms. A shorter interval keeps the window responsive.
TRAINING_SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class TrainingRequest:
    """A new run with ``config``, or the run in ``resume_from`` continued with its own settings.

    ``scan`` is the scan of the picture folder the user saw: the run uses it unless the folder
    changed since.
    """

    config: RunConfig
    resume_from: Path | None = None
    scan: DatasetScan | None = None
    runs_root: Path | None = None


class RunsTraining(Protocol):
    def run(self) -> object: ...


TrainerFactory = Callable[[TrainingRequest, list[Callback], StopRequest], RunsTraining]


def make_trainer(
    request: TrainingRequest, callbacks: list[Callback], stop_request: StopRequest
) -> RunsTraining:
    """The core Trainer (imported here, on the training thread: the import is heavy)."""
    from ptm_studio.core.engine.trainer import Trainer

    if request.resume_from is not None:
        return Trainer.resume(
            request.resume_from, scan=request.scan, callbacks=callbacks, stop_request=stop_request
        )
    return Trainer.new_run(
        request.config,
        runs_root=request.runs_root,
        scan=request.scan,
        callbacks=callbacks,
        stop_request=stop_request,
    )


def train(request: TrainingRequest, factory: TrainerFactory, context: JobContext) -> object:
    """The training job's work. Never raises, and always ends with a TrainingFinished: a failed
    one when the trainer raised or ended without reporting (a comparison reports one per run)."""
    started_at = time.monotonic()
    finished: list[TrainingFinished] = []
    sent: list[EngineEvent] = []

    def send(event: EngineEvent) -> None:
        if isinstance(event, TrainingFinished):
            finished.append(event)
        sent[:] = [event]  # the last one
        context.emit(event)

    try:
        factory(request, [EventForwarder(send)], context.stop_request).run()
    except BaseException as error:  # the GUI must always get an ending
        if not (sent and isinstance(sent[0], TrainingFinished)):  # not one raised after its end
            send(_failure_event(error, time.monotonic() - started_at))
    if not finished:
        silent = RuntimeError("training ended without reporting a result")
        send(_failure_event(silent, time.monotonic() - started_at))
    return finished[-1]


def _failure_event(error: BaseException, elapsed_seconds: float) -> TrainingFinished:
    from ptm_studio.core.engine.failures import ending_for, plain_message

    return TrainingFinished(
        status=STATUS_FAILED,
        kind=ending_for(error),
        run_dir=None,
        epochs_completed=0,
        best_val_accuracy=float("nan"),
        final_val_accuracy=float("nan"),
        elapsed_seconds=elapsed_seconds,
        error_message=plain_message(error),
        error_details="".join(traceback.format_exception(error)),
    )


class TrainingSession(EventSignals):
    """Start, stop and wait for training runs; at most one at a time."""

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
        self.trainer_factory = trainer_factory or make_trainer
        self.job = Job("ptm-training", self)
        self.job.emitted.connect(self._on_event)
        self.job.running_changed.connect(self._on_running_changed)
        self.last_finished: TrainingFinished | None = None
        self.last_request: TrainingRequest | None = None
        self._normal_switch_interval: float | None = None

    @property
    def is_running(self) -> bool:
        return self.job.is_running

    @property
    def is_stopping(self) -> bool:
        return self.job.is_cancelling

    def start(
        self,
        config: RunConfig,
        *,
        resume_from: Path | None = None,
        scan: DatasetScan | None = None,
    ) -> None:
        """Train a new run with ``config``, or continue ``resume_from`` with its own settings."""
        if self.is_running:
            raise RuntimeError("a training run is already active")
        request = TrainingRequest(config, resume_from, scan, self.runs_root)
        self.last_request = request
        factory = self.trainer_factory
        # A full (generation 2) garbage collection scans every object of torch, Qt and
        # pyqtgraph: 300 ms on a laptop, holding the interpreter lock, so the window freezes.
        # Everything alive now lives for the whole session; freezing it keeps it out of
        # those scans (cheap: no collection happens here).
        gc.freeze()
        if self._normal_switch_interval is None:
            self._normal_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._normal_switch_interval, TRAINING_SWITCH_INTERVAL_S))
        self.job.start(lambda context: train(request, factory, context))

    def stop(self) -> None:
        """Ask the run to stop at the next batch boundary (direct, thread-safe call)."""
        self.job.cancel()

    def wait(self, timeout_ms: int = 60_000) -> bool:
        """Block until the run's thread has ended, its last events delivered; True if it did."""
        return self.job.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop and wait: used when the application quits while a run is active."""
        self.stop()
        return self.wait(timeout_ms)

    @Slot(object)
    def _on_event(self, event: EngineEvent) -> None:
        if isinstance(event, TrainingFinished):
            self.last_finished = event
        self.emit_event(event)

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        if not is_running and self._normal_switch_interval is not None:
            sys.setswitchinterval(self._normal_switch_interval)
            self._normal_switch_interval = None
        self.running_changed.emit(is_running)
