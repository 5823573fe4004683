"""TrainingWorker: runs the core Trainer on a QThread and re-emits its events as Qt signals.

Signal names are the event names in snake case (``BatchFinished`` → ``batch_finished``); the
payload is the immutable event object; ``download_progressed(done_bytes, total_bytes)`` reports
an ImageNet weights download (at most 10 times a second, plus the final report). Signals are
emitted on the training thread; connect them to ``@Slot`` methods of QObjects living in the GUI
thread so Qt queues them (a lambda or a free function would run on the training thread). Stop is
:meth:`request_stop`, a plain thread-safe call made directly from the GUI thread: the worker's
own event loop is busy inside ``Trainer.run``.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import STATUS_FAILED, TrainingFinished

TrainerFactory = Callable[..., Any]
DOWNLOAD_REPORT_INTERVAL_S = 0.1


def default_trainer_factory(config: RunConfig, **kwargs: Any) -> Any:
    """Build the core Trainer (imported lazily: the import is heavy and happens off the GUI thread)."""
    from ptm_studio.core.engine.trainer import Trainer

    return Trainer(config, **kwargs)


class _SignalForwarder(Callback):
    """Core callback that turns each event into the worker's signal of the same name."""

    def __init__(self, worker: TrainingWorker) -> None:
        self._worker = worker

    def on_training_started(self, event: Any) -> None:
        self._worker.training_started.emit(event)

    def on_batch_finished(self, event: Any) -> None:
        self._worker.batch_finished.emit(event)

    def on_epoch_finished(self, event: Any) -> None:
        self._worker.epoch_finished.emit(event)

    def on_predictions_ready(self, event: Any) -> None:
        self._worker.predictions_ready.emit(event)

    def on_pretrain_samples_ready(self, event: Any) -> None:
        self._worker.pretrain_samples_ready.emit(event)

    def on_checkpoint_saved(self, event: Any) -> None:
        self._worker.checkpoint_saved.emit(event)

    def on_training_adjusted(self, event: Any) -> None:
        self._worker.training_adjusted.emit(event)

    def on_training_finished(self, event: Any) -> None:
        self._worker.has_emitted_finished = True
        self._worker.training_finished.emit(event)


class ProgressThrottle:
    """Passes ``(done, total)`` reports on at most once per ``interval_s``; the first and the final
    one (``done >= total`` with a known total) always. Called on the training thread."""

    def __init__(
        self,
        report: Callable[[int, int], None],
        interval_s: float = DOWNLOAD_REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._interval_s = interval_s
        self._clock = clock
        self._last_report_at: float | None = None

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        is_final = total > 0 and done >= total
        is_due = self._last_report_at is None or now - self._last_report_at >= self._interval_s
        if is_final or is_due:
            self._last_report_at = now
            self._report(int(done), int(total))


class TrainingWorker(QObject):
    """Runs one training run. Always ends with exactly one ``training_finished`` then ``finished``."""

    training_started = Signal(object)
    batch_finished = Signal(object)
    epoch_finished = Signal(object)
    predictions_ready = Signal(object)
    pretrain_samples_ready = Signal(object)
    checkpoint_saved = Signal(object)
    training_adjusted = Signal(object)
    training_finished = Signal(object)
    download_progressed = Signal("qint64", "qint64")
    """(done_bytes, total_bytes; 0 when unknown) while ImageNet weights download."""
    finished = Signal()

    def __init__(
        self,
        config: RunConfig,
        *,
        runs_root: Path | None = None,
        resume_from: Path | None = None,
        trainer_factory: TrainerFactory | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.runs_root = runs_root
        self.resume_from = resume_from
        self.stop_request = StopRequest()
        self.has_emitted_finished = False
        self._trainer_factory = trainer_factory or default_trainer_factory

    def request_stop(self) -> None:
        """Thread-safe: call directly from the GUI thread (never through a queued connection)."""
        self.stop_request.request()

    @Slot()
    def run(self) -> None:
        started_at = time.monotonic()
        try:
            trainer = self._trainer_factory(
                self.config,
                callbacks=[_SignalForwarder(self)],
                stop_request=self.stop_request,
                runs_root=self.runs_root,
                resume_from=self.resume_from,
                download_progress=ProgressThrottle(self.download_progressed.emit),
            )
            trainer.run()
        except BaseException as error:  # the GUI must always get an ending, whatever broke
            if not self.has_emitted_finished:
                self.has_emitted_finished = True
                self.training_finished.emit(_failure_event(error, time.monotonic() - started_at))
        finally:
            if not self.has_emitted_finished:
                error = RuntimeError("training ended without reporting a result")
                self.training_finished.emit(_failure_event(error, time.monotonic() - started_at))
            self.finished.emit()


def _failure_event(error: BaseException, elapsed_seconds: float) -> TrainingFinished:
    message = str(error) or type(error).__name__
    return TrainingFinished(
        status=STATUS_FAILED,
        run_dir=None,
        epochs_completed=0,
        best_val_accuracy=float("nan"),
        final_val_accuracy=float("nan"),
        elapsed_seconds=elapsed_seconds,
        error_message=message,
        error_details="".join(traceback.format_exception(error)),
    )
