"""The Trainer: runs the epoch loop over a run's parts and reports it as events.

The loop is a few named steps (``_train_one_epoch``, ``_end_epoch``, ``_save_checkpoint``),
one event per lifecycle point, and after each batch the checks a cooperative loop needs: the
user's stop, then what callbacks asked through the TrainingControl (stop, save, evaluate).
``run`` never raises for a failed run: it reports ``TrainingFinished`` with a structured kind,
and whatever fails (building, a callback, a save, even an exception that is not an Exception)
the run's folder records how it ended, so it is never left marked "running", and its lock is
freed.

Three ways to get one::

    Trainer.new_run(config, runs_root=…).run()        # a new run folder
    Trainer.resume(run_dir, changes={…}).run()        # go on from a run's last checkpoint
    Trainer(build_training(config)).run()             # parts of your own; nothing written
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ptm_studio.core.checkpoints import SerializedWeights
from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import DatasetScan, ImageLoadError
from ptm_studio.core.data.skipping import DatasetVanished
from ptm_studio.core.devices import describe_thread_change
from ptm_studio.core.engine.callbacks import Callback, CallbackList
from ptm_studio.core.engine.checkpoint_pacing import CheckpointPacing, WeightsSnapshot
from ptm_studio.core.engine.control import StoppedBeforeTraining, StopRequest, TrainingControl
from ptm_studio.core.engine.distributed import DistributedContext
from ptm_studio.core.engine.events import (
    STATUS_STOPPED,
    CheckpointSaved,
    DownloadProgressed,
    EarlyStopRequested,
    Ending,
    EngineEvent,
    LearningAdvice,
    PicturesSkipped,
    TrainingAdjusted,
    TrainingFinished,
)
from ptm_studio.core.engine.failures import (
    DivergenceGuard,
    ending_for,
    plain_message,
    previous_checkpoint_of,
)
from ptm_studio.core.engine.loops import kept_as_it_was
from ptm_studio.core.engine.parts import TrainingParts
from ptm_studio.core.engine.policies import standard_callbacks
from ptm_studio.core.engine.progress import ProgressThrottle
from ptm_studio.core.engine.recorder import CheckpointContent, RecordingAbandoned, RunRecorder
from ptm_studio.core.engine.reporting import (
    batch_event,
    checkpoint_meta,
    epoch_event,
    evaluation_event,
    started_event,
)
from ptm_studio.core.engine.run_setup import NewRun, ReadyParts, ResumedRun, RunSetup, plan_resume
from ptm_studio.core.engine.setup import resolve_data_dir
from ptm_studio.core.engine.stepping import capture_trainer_state
from ptm_studio.core.engine.tensorboard_log import FOLDER_NAME as TENSORBOARD_FOLDER
from ptm_studio.core.engine.tensorboard_log import MISSING_MESSAGE as TENSORBOARD_MISSING
from ptm_studio.core.engine.tensorboard_log import TensorBoardLog, tensorboard_writer_available
from ptm_studio.core.run_lock import RunInUseError, RunLock

LOGGER = logging.getLogger(__name__)
STOPPED_BEFORE_TRAINING = "Stopped before training began; nothing was downloaded or saved."


@dataclass(frozen=True)
class Failure:
    """Why a run did not complete, in words (never the exception itself: see Trainer.run)."""

    message: str = ""
    details: str = ""  # the traceback, for a failure (not for a pause)
    previous_checkpoint: Path | None = None

    @classmethod
    def of(cls, error: BaseException, ending: Ending) -> Failure:
        details = "".join(traceback.format_exception(error))
        return cls(
            message=plain_message(error),
            details="" if ending.status == STATUS_STOPPED else details,  # a pause: words do
            previous_checkpoint=previous_checkpoint_of(error),
        )


@dataclass(frozen=True)
class _CheckpointNow:
    """A checkpoint's content and the moment it is of (as CheckpointSaved tells it)."""

    content: CheckpointContent
    epoch: int
    global_step: int


class Trainer:
    """Trains one run. Construct on any thread; call :meth:`run` on the training thread."""

    def __init__(
        self,
        parts: TrainingParts | RunSetup,
        *,
        callbacks: Iterable[Callback] = (),
        stop_request: StopRequest | None = None,
    ) -> None:
        self.setup: RunSetup = ReadyParts(parts) if isinstance(parts, TrainingParts) else parts
        self.stop_request = stop_request or StopRequest()
        self.control = TrainingControl()
        self.user_callbacks = list(callbacks)
        self.callbacks = CallbackList(self.user_callbacks, self.control)
        self.parts: TrainingParts | None = None
        self.divergence_guard = DivergenceGuard()
        self._reported_skips: dict[str, str] = {}
        self._download_throttle = ProgressThrottle(self._report_download)
        self._joined_process_group: DistributedContext | None = None
        self.checkpoint_pacing = CheckpointPacing()
        # An epoch's end whose checkpoints waited (see CheckpointPacing): the best epoch's, to
        # be written with the next resumable one, and whether the last epoch's is unwritten.
        self._held_best: _CheckpointNow | None = None
        self._last_epoch_unsaved = False
        self._best_snapshot = WeightsSnapshot()

    @classmethod
    def new_run(
        cls,
        config: RunConfig,
        *,
        runs_root: Path | None = None,
        scan: DatasetScan | None = None,
        callbacks: Iterable[Callback] = (),
        stop_request: StopRequest | None = None,
    ) -> Trainer:
        """A new run in a new folder under ``runs_root`` (default: the user's runs folder).

        ``scan`` is a scan of the picture folder already made; it is used unless the folder
        changed since. Nothing is built or written until :meth:`run`."""
        return cls(NewRun(config, runs_root, scan), callbacks=callbacks, stop_request=stop_request)

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        *,
        changes: Mapping[str, Any] | None = None,
        scan: DatasetScan | None = None,
        callbacks: Iterable[Callback] = (),
        stop_request: StopRequest | None = None,
        run_lock: RunLock | None = None,
    ) -> Trainer:
        """Go on with the run in ``run_dir`` from its last checkpoint, with its own settings.

        ``changes`` (dotted names → values, e.g. ``{"optim.num_epochs": 20}``) are applied when
        the run can go on with them; any other raises ConfigError naming the setting, here,
        before anything runs (see run_setup.apply_resume_changes). ``run_lock``: the run's lock
        when the caller took it already (and frees it); otherwise :meth:`run` takes it first
        and ends with kind ``run_busy`` when another trainer holds it."""
        setup = plan_resume(Path(run_dir), changes, scan, lock=run_lock)
        return cls(setup, callbacks=callbacks, stop_request=stop_request)

    @property
    def recorder(self) -> RunRecorder | None:
        return self.setup.recorder

    # ----------------------------------------------------------------- the whole run
    def run(self) -> TrainingFinished:
        started = time.perf_counter()
        not_an_exception: BaseException | None = None
        ended_as_agreed = False  # every process ended the same way (a failure may be one's)
        try:
            try:
                ending, failure = self._train_and_describe()
            except BaseException as caught:  # SystemExit from a callback: record, then raise
                not_an_exception = caught
                ending = Ending.UNEXPECTED
                failure = Failure.of(caught, ending)
            finished = self._finished(ending, failure, time.perf_counter() - started)
            self._emit_finished(finished)
            self._release_device()
            ended_as_agreed = ending in (Ending.COMPLETED, Ending.STOPPED, Ending.ENDED_EARLY)
        finally:
            self.setup.release()  # after the last write: the next trainer may start now
            self._leave_process_group(together=ended_as_agreed)
        if not_an_exception is not None:
            raise not_an_exception
        return finished

    def _train_and_describe(self) -> tuple[Ending, Failure]:
        """Prepare and train; how it ended, and why in words when it did not complete."""
        try:
            self._prepare()
            return self._train(), Failure()
        except StoppedBeforeTraining:
            return Ending.STOPPED_BEFORE_TRAINING, Failure(STOPPED_BEFORE_TRAINING)
        except RunInUseError as busy:  # nothing was done: the other trainer's run is its own
            LOGGER.warning("%s", busy)
            return Ending.RUN_BUSY, Failure(str(busy))
        except RecordingAbandoned as abandoned:  # stopped at once: run.json already says so
            LOGGER.info("%s", abandoned)
            return Ending.STOPPED, Failure(str(abandoned))
        except Exception as caught:  # every failure becomes a readable TrainingFinished
            ending = ending_for(caught)
            # Described here, kept as words: the exception's frames hold the model and the
            # optimiser, which must be freed before the device memory is given back.
            failure = Failure.of(caught, ending)
            if ending.status == STATUS_STOPPED:
                LOGGER.warning("training paused: %s", caught)
            else:
                LOGGER.exception("training failed")
            return ending, failure

    def _prepare(self) -> None:
        if isinstance(self.setup, NewRun):
            self.setup.stop_requested = lambda: self.stop_request.is_requested
        self.parts = self.setup.prepare(self._download_progress)
        self._joined_process_group = self.parts.distributed
        self.parts.adjustments.listen(self._on_adjusted)
        standard = standard_callbacks(self.parts.config)
        recorder = [self.recorder] if self.recorder is not None else []
        # The recorder first: what a callback sees has already been written down.
        self.callbacks.callbacks = [
            *recorder,
            *self._tensorboard_log(),
            *standard,
            *self.user_callbacks,
        ]

    def _tensorboard_log(self) -> list[Callback]:
        """TensorBoard event files in the run folder, when asked for and tensorboardX is there."""
        parts = self._parts()
        if not parts.config.saving.tensorboard or self.recorder is None:
            return []
        if not tensorboard_writer_available():
            parts.adjustments.report("tensorboard", TENSORBOARD_MISSING)
            return []
        return [TensorBoardLog(self.recorder.path / TENSORBOARD_FOLDER)]

    def _finished(
        self, ending: Ending, failure: Failure, elapsed_seconds: float
    ) -> TrainingFinished:
        progress = self.parts.progress if self.parts is not None else None
        try:
            skipped_files = tuple(self._skipped_files())
        except Exception:  # the ending matters more than this list
            LOGGER.exception("could not list the pictures left out")
            skipped_files = ()
        return TrainingFinished(
            status=ending.status,
            kind=ending,
            run_dir=self.recorder.path if self.recorder is not None else None,
            epochs_completed=progress.epochs_completed if progress else 0,
            best_val_accuracy=progress.best_val_accuracy if progress else math.nan,
            final_val_accuracy=progress.final_val_accuracy if progress else math.nan,
            elapsed_seconds=elapsed_seconds,
            error_message=failure.message,
            error_details=failure.details,
            skipped_files=skipped_files,
            previous_checkpoint=failure.previous_checkpoint,
        )

    def _emit_finished(self, finished: TrainingFinished) -> None:
        """Every callback hears how the run ended, even when one of them fails on it."""
        if self.recorder is not None and self.recorder not in self.callbacks.callbacks:
            self.callbacks.callbacks.insert(0, self.recorder)  # a resume that failed early
        last_events: list[EngineEvent] = [finished]
        try:
            skipped = self._skipped_files()
            if skipped != self._reported_skips:
                last_events.insert(0, PicturesSkipped(tuple(skipped.items())))
        except Exception:  # the ending still goes out
            LOGGER.exception("could not report the pictures left out")
        for event in last_events:
            for callback in self.callbacks.callbacks:
                try:
                    callback.on_event(event, self.control)
                except Exception:
                    LOGGER.exception("%s failed on the end of the run", type(callback).__name__)

    # ----------------------------------------------------------------- the loop
    def _train(self) -> Ending:
        parts = self._parts()
        changes = self.setup.changes.words if isinstance(self.setup, ResumedRun) else ()
        run_dir = self.recorder.path if self.recorder is not None else None
        self._emit(started_event(run_dir, parts, changes))
        self._report_skipped_files()
        try:
            if parts.progress.global_step == 0:
                for event in parts.batches.with_loader_retry(
                    parts.task.before_training, "the preparation before the first step"
                ):
                    self._emit(event)
            return self._train_epochs()
        except (DatasetVanished, ImageLoadError) as error:
            root = resolve_data_dir(parts.config)
            if root.exists():
                self._keep_held_best_after_failure()
                raise  # a single unreadable validation picture: fail, naming the file
            # The folder is gone (an unplugged drive): keep the work done so far and pause.
            self._save_checkpoint("stopped")
            if isinstance(error, DatasetVanished):
                raise
            raise DatasetVanished(root) from error
        except Exception:
            self._keep_held_best_after_failure()
            raise

    def _train_epochs(self) -> Ending:
        parts = self._parts()
        first = parts.progress.epoch_index
        for epoch_index in range(first, parts.config.optim.num_epochs):
            if epoch_index > first:
                self._look_at_cpu_threads()
            if not self._train_one_epoch(epoch_index):
                self._save_checkpoint("stopped")
                return Ending.STOPPED if self.stop_request.is_requested else self._ended_early()
            self._end_epoch(epoch_index)
            if self._agreed_stop(self.stop_request.is_requested):
                self._write_waiting_checkpoints()
                return Ending.STOPPED
            is_last = epoch_index + 1 >= parts.config.optim.num_epochs
            if self._agreed_stop(self.control.should_stop) and not is_last:
                self._write_waiting_checkpoints()
                return self._ended_early()
        self._write_waiting_checkpoints()
        return Ending.COMPLETED

    def _agreed_stop(self, wanted: bool) -> bool:
        """Whether to stop here. Under torchrun all processes stop at the same step when any
        of them is asked to (Ctrl-C reaches one, a time budget runs out on one clock first):
        one going on alone would wait for the others' gradients for ever."""
        agreed = self._parts().distributed.any_rank(wanted)
        if agreed and not wanted:
            self.stop_request.request()  # stopped with the others, as if asked too
        return agreed

    def _leave_process_group(self, *, together: bool) -> None:
        """A torchrun process leaves the group its run joined (a later run joins again)."""
        if self._joined_process_group is not None:
            self._joined_process_group.leave(together=together)

    def _look_at_cpu_threads(self) -> None:
        """Another program started or ended during the last epoch: every core, or all but one."""
        watch = self._parts().device.thread_watch
        changed = watch.next_epoch() if watch is not None else None
        if changed is not None:
            LOGGER.info("CPU threads now %d", changed)
            self._parts().adjustments.report("cpu_threads", describe_thread_change(changed))

    def _ended_early(self) -> Ending:
        progress = self._parts().progress
        reason = self.control.stop_reason
        LOGGER.info("the run ended early: %s", reason)
        self._emit(EarlyStopRequested(reason, progress.epochs_completed, progress.global_step))
        return Ending.ENDED_EARLY

    def _train_one_epoch(self, epoch_index: int) -> bool:
        """Train until the epoch ends (True) or a stop is requested (False)."""
        parts = self._parts()
        progress, steps_per_epoch = parts.progress, parts.steps_per_epoch
        parts.task.prepare_epoch(epoch_index)
        start_batch = progress.batch_index
        progress.start_epoch(epoch_index, steps_per_epoch)
        batches = parts.batches.epoch(epoch_index, start_batch)
        for batch_index, batch in enumerate(batches, start=start_batch):
            step = parts.step(batch)
            progress.add_batch(step.loss, step.correct, step.count)
            self._emit(
                batch_event(
                    progress,
                    parts.config.optim.num_epochs,
                    steps_per_epoch,
                    batch_index,
                    step.loss,
                    self._learning_rate(),
                )
            )
            self.divergence_guard.check(step.loss, progress.global_step)
            if self._agreed_stop(self.stop_request.is_requested or self.control.should_stop):
                return False
            if parts.distributed.any_rank(self.control.take_evaluation()):
                self._evaluate_now(epoch_index)
            if self.control.take_save():
                self._save_checkpoint("periodic")
        self._add_up_the_processes_epoch()
        progress.finish_training_part()
        return True

    def _add_up_the_processes_epoch(self) -> None:
        """Under torchrun the epoch's training loss and accuracy are over every process's
        share of the pictures (each process counted only its own)."""
        parts = self._parts()
        distributed, progress = parts.distributed, parts.progress
        if not distributed.is_distributed:
            return
        progress.loss_sum = distributed.total(progress.loss_sum)
        progress.finite_batches, progress.correct, progress.seen = distributed.sum_counts(
            progress.finite_batches, progress.correct, progress.seen
        )

    def _end_epoch(self, epoch_index: int) -> None:
        """Validate (or measure pretraining health), report, and save the epoch's checkpoints."""
        parts = self._parts()
        progress, task = parts.progress, parts.task
        train_loss = progress.epoch_train_loss()
        outcome = parts.batches.with_loader_retry(
            lambda: task.end_epoch(epoch_index, train_loss),
            f"the check at the end of epoch {epoch_index + 1}",
        )
        # Pretraining has no validation loss: the best epoch is the best linear probe (see
        # PretrainTask.ranking_accuracy), or without labels to measure with, the lowest
        # training loss.
        ranking_loss = outcome.val_loss if math.isfinite(outcome.val_loss) else train_loss
        is_best = progress.finish_epoch(task.ranking_accuracy(outcome), ranking_loss)
        num_epochs = parts.config.optim.num_epochs
        self._emit(
            epoch_event(progress, num_epochs, epoch_index, outcome, is_best, self._learning_rate())
        )
        for extra_event in outcome.events:
            self._emit(extra_event)
        for kind, message in self.control.take_advice():
            self._emit(
                LearningAdvice(kind, message, progress.epochs_completed, progress.global_step)
            )
        self._report_skipped_files()
        self._save_epoch_checkpoints(is_best and task.keeps_best_checkpoint)

    def _evaluate_now(self, epoch_index: int) -> None:
        """A validation pass a callback asked for; the training goes on as if none happened."""
        parts = self._parts()
        with kept_as_it_was(parts.task.trained_module()):
            outcome = parts.batches.with_loader_retry(
                parts.task.evaluate, f"a check during epoch {epoch_index + 1}"
            )
        self._emit(evaluation_event(parts.progress, parts.steps_per_epoch, outcome))

    # ----------------------------------------------------------------- checkpoints
    def _save_epoch_checkpoints(self, is_best: bool) -> None:
        """The epoch's resumable checkpoint and, when it is the best so far, the best one; or,
        while writing them would cost more than the training they keep (CheckpointPacing),
        nothing yet but the best epoch's weights held in memory."""
        if self.recorder is None:
            return  # a run without a folder keeps nothing
        if not self.checkpoint_pacing.is_due():
            if is_best:
                self._held_best = self._checkpoint_now(resumable=False, copied=True)
            self._last_epoch_unsaved = True
            return
        started = self.checkpoint_pacing.now()
        # Both checkpoints of an improving epoch hold the same weights: turned into bytes once.
        weights = SerializedWeights.of(self._parts().task.shareable_weights()) if is_best else None
        if is_best:
            self._held_best = None  # this epoch's is better
        self._save_checkpoint("epoch", weights)
        if is_best:
            self._save_checkpoint("best", weights)
        self.checkpoint_pacing.written(started)

    def _write_waiting_checkpoints(self) -> None:
        """The run ends after an epoch whose checkpoints waited: written now."""
        if self._last_epoch_unsaved:
            self._save_checkpoint("epoch")

    def _save_checkpoint(self, reason: str, weights: SerializedWeights | None = None) -> None:
        """``reason`` "best" writes checkpoints/best; every other one the resumable last (and
        the best epoch's held back, if any). ``weights``: the task's weights already
        serialized (else they are, here)."""
        if self.recorder is None:
            return  # a run without a folder keeps nothing
        is_best = reason == "best"
        checkpoint = self._checkpoint_now(resumable=not is_best, weights=weights)
        self._write_checkpoint("best" if is_best else "last", checkpoint, reason)
        if not is_best:
            self._last_epoch_unsaved = False
            self._keep_held_best()

    def _keep_held_best(self) -> None:
        """Write the best epoch's checkpoint held in memory, if one waits."""
        held, self._held_best = self._held_best, None
        if held is not None:
            self._write_checkpoint("best", held, "best")

    def _keep_held_best_after_failure(self) -> None:
        """A failed run still keeps its best epoch's weights held in memory, if any (the
        failure is what the run reports, not a second one on writing them)."""
        try:
            self._keep_held_best()
        except Exception:
            LOGGER.exception("could not write the best checkpoint held in memory")

    def _checkpoint_now(
        self, *, resumable: bool, weights: SerializedWeights | None = None, copied: bool = False
    ) -> _CheckpointNow:
        """What a checkpoint of this moment holds. ``copied``: the weights copied, to be
        written later while the training goes on changing the model's own (a copy in memory
        takes a few milliseconds, turning it into bytes several times that); the copy
        replaces the best epoch's held before, which this one supersedes."""
        parts = self._parts()
        config, task, progress = parts.config, parts.task, parts.progress
        state: dict[str, torch.Tensor] | SerializedWeights
        if weights is not None:
            state = weights
        elif copied:
            state = self._best_snapshot.take(task.shareable_weights())
        else:
            state = task.shareable_weights()
        trainer_state = (
            capture_trainer_state(parts.step.context, progress, task) if resumable else None
        )
        content = CheckpointContent(state, checkpoint_meta(config, task, progress), trainer_state)
        # The epoch just completed, or the one under way for a save in the middle of one.
        epoch = progress.epoch_index + 1 if progress.batch_index > 0 else progress.epochs_completed
        return _CheckpointNow(content, epoch, progress.global_step)

    def _write_checkpoint(self, which: str, checkpoint: _CheckpointNow, reason: str) -> None:
        assert self.recorder is not None
        folder = self.recorder.save_checkpoint(which, checkpoint.content)
        self._emit(CheckpointSaved(checkpoint.epoch, checkpoint.global_step, folder, reason))

    # ----------------------------------------------------------------- reports
    def _emit(self, event: EngineEvent) -> None:
        self.callbacks.emit(event)

    def _download_progress(self, done_bytes: int, total_bytes: int) -> None:
        """Passes download progress on, and lets Stop cancel a download (the partial file is
        removed by the downloader's atomic writer)."""
        if self.stop_request.is_requested:
            raise StoppedBeforeTraining
        self._download_throttle(done_bytes, total_bytes)

    def _report_download(self, done_bytes: int, total_bytes: int) -> None:
        self._emit(DownloadProgressed(done_bytes, total_bytes))

    def _on_adjusted(self, kind: str, message: str) -> None:
        """The run changed how it works to keep going (e.g. smaller pieces after running out
        of memory; the optimiser and the scaler have not been touched yet)."""
        self._emit(TrainingAdjusted(kind, message, self._parts().progress.global_step))

    def _report_skipped_files(self) -> None:
        skipped = self._skipped_files()
        if skipped != self._reported_skips:
            self._reported_skips = dict(skipped)
            self._emit(PicturesSkipped(tuple(skipped.items())))

    def _skipped_files(self) -> dict[str, str]:
        return self.parts.skipped_files() if self.parts is not None else {}

    def _learning_rate(self) -> float:
        return float(self._parts().step.context.optimizer.param_groups[0]["lr"])

    def _parts(self) -> TrainingParts:
        assert self.parts is not None, "the run has not been prepared"
        return self.parts

    def _release_device(self) -> None:
        parts = self.parts
        if parts is not None:
            parts.task.release_memory()
        if parts is not None and parts.device.device.type == "cuda":
            self.parts = None
            try:
                torch.cuda.empty_cache()
            except Exception:  # a broken device: the run has ended anyway
                LOGGER.exception("could not give the device memory back")
