"""RunRecorder: keeps a run in its folder, as a callback of the run it records.

It writes ``run.json`` (status, classes, progress, skipped files), ``metrics.jsonl`` (a line per
step, per epoch and per evaluation), ``predictions.csv`` at the end and, when the Trainer asks,
the checkpoints (see :mod:`ptm_studio.core.checkpoints`). The Trainer knows nothing of folders:
a run without a recorder (a learning-rate test, a benchmark) leaves nothing on disk.

Its writes are serialised by one lock, so :func:`abandon_runs_in_progress` (a second Ctrl-C, on
the main thread, while the training thread is busy inside a batch) can wait for a checkpoint
being written to be complete, mark the run stopped, and keep the training thread from writing
anything after that.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from ptm_studio.core import checkpoints
from ptm_studio.core.atomic_io import json_safe, remove_stray_temp_files, write_json_atomic
from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_STOPPED,
    BatchFinished,
    EarlyStopRequested,
    Ending,
    EpochFinished,
    EvaluationFinished,
    FrozenFeaturesMeasured,
    LearningAdvice,
    PicturesSkipped,
    PredictionsReady,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.core.engine.setup import resolve_data_dir
from ptm_studio.core.locations import default_runs_root
from ptm_studio.core.runs import RUNS_TRAINING_HERE, RunDirectory, load_run, this_process

LOGGER = logging.getLogger(__name__)
Written = TypeVar("Written")
# How long abandoning a run waits for a checkpoint being written to be complete.
ABANDON_WAIT_SECONDS = 120.0

_EPOCH_LOG_FIELDS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "val_top5_accuracy",
    "val_balanced_accuracy",
    "val_macro_f1",
    "learning_rate",
    "epoch_seconds",
    "is_best",
    "embedding_spread",
    "probe_accuracy",
)
_EVALUATION_LOG_FIELDS = ("epoch", "val_loss", "val_accuracy", "val_top5_accuracy")


@dataclass(frozen=True)
class CheckpointContent:
    """What one checkpoint holds: the weights to share, meta.json's fields and, for the
    resumable ``last`` checkpoint, the trainer state (optimiser, schedule, RNG, counters)."""

    weights: dict[str, torch.Tensor] | checkpoints.SerializedWeights
    meta: dict[str, Any]
    trainer_state: dict[str, Any] | None


class RecordingAbandoned(Exception):
    """The run was marked stopped from another thread (a second Ctrl-C): nothing more is kept."""


def _while_recording(write: Callable[..., Written]) -> Callable[..., Written | None]:
    """A write of the recorder: one at a time, and none once the run was abandoned."""

    @functools.wraps(write)
    def guarded(self: RunRecorder, *arguments: Any, **options: Any) -> Written | None:
        with self._writing:
            if self.is_abandoned:
                return None
            return write(self, *arguments, **options)

    return guarded


class RunRecorder(Callback):
    """Records one run in its folder. Make it with :meth:`create` (a new run) or :meth:`open`."""

    def __init__(self, run: RunDirectory, config: RunConfig) -> None:
        self.run = run
        self.config = config
        self._batch_lines: list[dict[str, Any]] = []
        self._prediction_rows: list[dict[str, Any]] = []
        self._skipped: dict[str, str] | None = None  # None: nothing to say (keep run.json's)
        self._writing = threading.RLock()
        self.is_abandoned = False

    @classmethod
    def create(cls, runs_root: Path | None, config: RunConfig) -> RunRecorder:
        """A new, uniquely named run folder holding the run's config.json."""
        run = RunDirectory.create(runs_root or default_runs_root(), config.run_name)
        return cls.start_in(run, config)

    @classmethod
    def start_in(cls, run: RunDirectory, config: RunConfig) -> RunRecorder:
        """A new run in the empty folder ``run`` (whose lock the caller holds)."""
        run.write_config(config)
        return cls(run, config)

    @classmethod
    def open(cls, run_dir: Path, config: RunConfig | None = None) -> RunRecorder:
        """An existing run folder (to resume it), swept of what a killed write left behind."""
        run = load_run(run_dir)
        remove_stray_temp_files(run.path)
        checkpoints.recover_checkpoint(run.best_checkpoint_dir)
        return cls(run, config or run.read_config())

    @property
    def path(self) -> Path:
        return self.run.path

    def record_data(self, description: dict[str, Any]) -> None:
        """What the run trains on (see same_data.py), checked when it is resumed."""
        self.run.write_status(data=description)

    def abandon(self, note: str) -> bool:
        """Mark the run stopped now, from any thread, and keep nothing more of it.

        Waits for a write in progress (a checkpoint being saved) to end, so the last checkpoint
        is complete; the training thread's later writes are skipped. True when it was marked."""
        is_writing_ours = self._writing.acquire(timeout=ABANDON_WAIT_SECONDS)
        if not is_writing_ours:
            LOGGER.error("a write to %s did not end; marking it stopped anyway", self.path)
        try:
            if self.is_abandoned:
                return False
            self.is_abandoned = True
            self._write_final_status(
                {
                    "status": STATUS_STOPPED,
                    "ending": Ending.STOPPED,
                    "error_message": "",
                    "note": note,
                }
            )
            return True
        finally:
            _forget_active(self)
            if is_writing_ours:
                self._writing.release()

    # ------------------------------------------------------------------ the run's events
    @_while_recording
    def on_training_started(self, event: TrainingStarted, control: TrainingControl) -> None:
        self.run.write_status(
            status="running",
            class_names=list(event.class_names),
            data_dir=str(resolve_data_dir(self.config)),
            weights=event.weights_note,
            **this_process(),  # so another window does not take this live run for a crashed one
        )
        RUNS_TRAINING_HERE.add(self.path.resolve())
        with _ACTIVE_GUARD:
            _ACTIVE.add(self)

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        self._batch_lines.append(
            {
                "type": "batch",
                "epoch": event.epoch,
                "global_step": event.global_step,
                "loss": event.loss,
                "learning_rate": event.learning_rate,
            }
        )

    @_while_recording
    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        matrix = event.confusion_matrix
        record = {
            "type": "epoch",
            "global_step": event.global_step,
            **{name: getattr(event, name) for name in _EPOCH_LOG_FIELDS},
            "confusion_matrix": matrix.tolist() if matrix is not None else None,
            "per_class": list(event.per_class),
        }
        self._append_metrics(record)
        spent = self.run.read_status().get("training_seconds")  # kept across resumes
        spent = spent if isinstance(spent, int | float) and spent >= 0 else 0.0
        self.run.write_status(
            epochs_completed=event.epoch,
            best_val_accuracy=event.best_val_accuracy,
            final_val_accuracy=event.val_accuracy,
            training_seconds=round(spent + max(event.epoch_seconds, 0.0), 3),
        )

    @_while_recording
    def on_evaluation_finished(self, event: EvaluationFinished, control: TrainingControl) -> None:
        record = {
            "type": "evaluation",
            "global_step": event.global_step,
            **{name: getattr(event, name) for name in _EVALUATION_LOG_FIELDS},
        }
        self._append_metrics(record)

    def on_predictions_ready(self, event: PredictionsReady, control: TrainingControl) -> None:
        names = event.class_names
        self._prediction_rows = [
            {
                "path": record.path,
                "true_class": names[record.true_index],
                "predicted_class": names[record.predicted_index],
                "confidence": f"{record.confidence:.6f}",
                "loss": f"{record.loss:.6f}",
                "is_correct": record.is_correct,
            }
            for record in event.records
        ]

    @_while_recording
    def on_frozen_features_measured(
        self, event: FrozenFeaturesMeasured, control: TrainingControl
    ) -> None:
        measured = {
            "knn_accuracy": event.knn_accuracy,
            "probe_accuracy": event.probe_accuracy,
            "penalty": event.penalty,
        }
        self._append_metrics({"type": "frozen_features", "global_step": 0, **measured})
        self.run.write_status(frozen_features=measured)

    @_while_recording
    def on_early_stop_requested(self, event: EarlyStopRequested, control: TrainingControl) -> None:
        self.run.write_status(ended_early_because=event.reason)

    @_while_recording
    def on_learning_advice(self, event: LearningAdvice, control: TrainingControl) -> None:
        advice = self.run.read_status().get("advice")
        kept = advice if isinstance(advice, list) else []
        self.run.write_status(advice=[*kept, {"kind": event.kind, "message": event.message}])

    @_while_recording
    def on_pictures_skipped(self, event: PicturesSkipped, control: TrainingControl) -> None:
        self._skipped = dict(event.files)
        LOGGER.warning("skipped %d unreadable pictures: %s", len(event.files), event.files[:5])
        self.run.write_status(skipped_files=self._skipped)

    @_while_recording
    def on_training_finished(self, event: TrainingFinished, control: TrainingControl) -> None:
        """Never raises: the run's ending must reach every callback, even with a full disk. The
        final status is written whatever else fails, so a finished run is never left marked
        "running" (it would be offered as interrupted)."""
        problems = []
        for what, write in (
            ("the metrics log", self._flush_batch_lines),
            ("predictions.csv", lambda: self._write_predictions(event)),
        ):
            try:
                write()
            except Exception as error:  # the status below is written whatever fails
                LOGGER.exception("could not write %s of %s", what, self.path)
                problems.append(f"{what} could not be written ({error})")
        status: dict[str, Any] = {
            "status": event.status,
            "ending": event.kind,
            "error_message": event.error_message,
        }
        if self._skipped is not None:
            status["skipped_files"] = self._skipped
        if problems:
            status["note"] = "; ".join(problems)
        try:
            self._write_final_status(status)
        finally:
            _forget_active(self)

    def _write_final_status(self, status: dict[str, Any]) -> None:
        """run.json's last word; when the whole file cannot be rewritten (a field that will not
        turn into JSON, a damaged file), the ending alone, so it never stays "running"."""
        try:
            self.run.write_status(**status)
            return
        except Exception:  # fall back to the fields that matter
            LOGGER.exception("could not record the end of %s; writing its ending alone", self.path)
        try:
            write_json_atomic(self.run.status_path, json_safe({**status, "note": "see the log"}))
        except Exception:  # a full disk: the log says it; nothing more to try
            LOGGER.exception("could not record the end of %s", self.path)

    def _write_predictions(self, event: TrainingFinished) -> None:
        if event.status == STATUS_COMPLETED and self._prediction_rows:
            self.run.write_predictions(self._prediction_rows)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, role: str, content: CheckpointContent) -> Path:
        saved = self._save_checkpoint(role, content)
        if saved is None:
            raise RecordingAbandoned(f"{self.path} was marked stopped; this save was not kept")
        return saved

    @_while_recording
    def _save_checkpoint(self, role: str, content: CheckpointContent) -> Path:
        """Write checkpoint ``role`` ("last" or "best") completely, then put it in place.

        The metrics log is brought up to date first, so a run resumed from this checkpoint
        finds every line up to it. Raises CheckpointWriteError (disk full, read-only folder);
        the previous checkpoint is kept then.
        """
        folder = self.run.best_checkpoint_dir if role == "best" else self.run.last_checkpoint_dir
        try:
            self._flush_batch_lines()
        except OSError as error:  # the metrics log could not be appended to
            raise checkpoints.CheckpointWriteError.from_os_error(folder, error) from error
        return checkpoints.save_checkpoint(
            folder,
            content.weights,
            content.meta,
            content.trainer_state,
            keep_previous=role == "last",  # a fallback if "last" is ever damaged
        )

    def load_last_checkpoint(self) -> checkpoints.LoadedCheckpoint:
        """The resumable checkpoint; DamagedCheckpointError names an intact earlier one."""
        return checkpoints.load_checkpoint(self.run.last_checkpoint_dir)

    @_while_recording
    def forget_after(self, global_step: int) -> None:
        """Drop log lines written after the checkpoint a resumed run continues from."""
        self.run.truncate_metrics_after(global_step)

    @_while_recording
    def write_config(self, config: RunConfig) -> None:
        self.config = config
        self.run.write_config(config)

    # ------------------------------------------------------------------ the metrics log
    def _append_metrics(self, record: dict[str, Any]) -> None:  # called under _while_recording
        self._flush_batch_lines()
        self.run.append_metrics([record])

    def _flush_batch_lines(self) -> None:
        lines, self._batch_lines = self._batch_lines, []
        try:
            self.run.append_metrics(lines)
        except OSError:
            self._batch_lines = lines + self._batch_lines  # kept for the next attempt
            raise


# Recorders of runs training in this process now, for abandon_runs_in_progress.
_ACTIVE: set[RunRecorder] = set()
_ACTIVE_GUARD = threading.Lock()


def _forget_active(recorder: RunRecorder) -> None:
    RUNS_TRAINING_HERE.discard(recorder.path.resolve())
    with _ACTIVE_GUARD:
        _ACTIVE.discard(recorder)


def abandon_runs_in_progress(note: str) -> list[Path]:
    """Mark every run training in this process stopped, now (a second Ctrl-C): each keeps its
    last complete checkpoint and can be resumed from it; nothing more is written. Returns the
    runs' folders."""
    with _ACTIVE_GUARD:
        recorders = list(_ACTIVE)
    return [recorder.path for recorder in recorders if recorder.abandon(note)]
