"""The Trainer: runs one training run from a RunConfig and reports it as events.

The loop is a few named steps (``train_one_epoch``, ``evaluate``, ``save_checkpoint``), one
event per lifecycle point, and a cooperative stop check right after each batch. ``run`` never
raises for a failed run: it reports ``TrainingFinished(status="failed")`` with the message.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ptm_studio.core.atomic_io import remove_stray_temp_files
from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import DatasetError, ImageLoadError
from ptm_studio.core.data.skipping import DatasetVanished
from ptm_studio.core.devices import (
    autocast_dtype,
    configure_cpu_threads,
    describe_device,
    select_device,
)
from ptm_studio.core.engine import checkpoints
from ptm_studio.core.engine.batches import BatchSource
from ptm_studio.core.engine.callbacks import Callback, CallbackList
from ptm_studio.core.engine.control import StoppedBeforeTraining, StopRequest
from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_STOPPED,
    CheckpointSaved,
    EpochFinished,
    TrainingAdjusted,
    TrainingFinished,
)
from ptm_studio.core.engine.failures import DivergenceGuard, check_same_classes, plain_message
from ptm_studio.core.engine.memory import (
    MicroBatching,
)
from ptm_studio.core.engine.pretrain_task import PretrainTask
from ptm_studio.core.engine.progress import RunProgress
from ptm_studio.core.engine.reporting import (
    batch_event,
    checkpoint_meta,
    epoch_event,
    epoch_log_record,
    started_event,
)
from ptm_studio.core.engine.setup import (
    prepare_split,
    resolve_data_dir,
    seed_everything,
)
from ptm_studio.core.engine.stepping import (
    TrainingStep,
    build_step_context,
    capture_trainer_state,
    restore_trainer_state,
)
from ptm_studio.core.engine.tasks import (
    EpochOutcome,
    SupervisedTask,
    TaskEnvironment,
    TrainingTask,
)
from ptm_studio.core.runs import (
    RUNS_TRAINING_HERE,
    RunDirectory,
    default_runs_root,
    this_process,
)

LOGGER = logging.getLogger(__name__)


class Trainer:
    """Trains one run. Construct on any thread; call :meth:`run` on the training thread."""

    def __init__(
        self,
        config: RunConfig,
        *,
        callbacks: Iterable[Callback] = (),
        stop_request: StopRequest | None = None,
        runs_root: Path | None = None,
        resume_from: Path | None = None,
        download_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.resume_from = Path(resume_from) if resume_from else None
        self.config = RunDirectory(self.resume_from).read_config() if self.resume_from else config
        self.config.validate()
        self.callbacks = CallbackList(callbacks)
        self.stop_request = stop_request or StopRequest()
        self.runs_root = Path(runs_root) if runs_root else None
        self.run_dir: RunDirectory | None = None
        self.progress = RunProgress()
        self.download_progress = download_progress
        self.last_outcome: EpochOutcome | None = None
        self.divergence_guard = DivergenceGuard()
        self.stop_message = ""
        self.last_checkpoint_time = time.monotonic()
        self.adjustments: list[str] = []  # what the run changed to keep going, for the user

    # ----------------------------------------------------------------- public API
    def run(self) -> TrainingFinished:
        started = time.perf_counter()
        status, message, details, error_type = STATUS_FAILED, "", "", ""
        try:
            self._set_up()
            status = self._fit()
        except StoppedBeforeTraining:
            status = STATUS_STOPPED
            self.stop_message = "Stopped before training began; nothing was downloaded or saved."
        except Exception as error:  # every failure becomes a readable TrainingFinished
            LOGGER.exception("training failed")
            message, details = plain_message(error), traceback.format_exc()
            error_type = type(error).__name__
        finished = TrainingFinished(
            status=status,
            run_dir=self.run_dir.path if self.run_dir else None,
            epochs_completed=self.progress.epochs_completed,
            best_val_accuracy=self.progress.best_val_accuracy,
            final_val_accuracy=self.progress.final_val_accuracy,
            elapsed_seconds=time.perf_counter() - started,
            error_message=message or self.stop_message,
            error_details=details,
            error_type=error_type,
            skipped_files=tuple(self._skipped_files()),
        )
        self._record_final_status(finished)
        if self.run_dir is not None:
            RUNS_TRAINING_HERE.discard(self.run_dir.path.resolve())
        self._release_device()
        self.callbacks.emit(finished)
        return finished

    def _download_progress(self, done_bytes: int, total_bytes: int) -> None:
        """Passes download progress on, and lets Stop cancel a download (the partial file is
        removed by the downloader's atomic writer)."""
        if self.stop_request.is_requested:
            raise StoppedBeforeTraining
        if self.download_progress is not None:
            self.download_progress(done_bytes, total_bytes)

    # ----------------------------------------------------------------- setting up
    def _set_up(self) -> None:
        config = self.config
        seed_everything(config.seed)
        self.device = select_device(config.device.device)
        self.device_info = describe_device(config.device.device)
        if self.device.type == "cpu":
            configure_cpu_threads(config.device.cpu_threads)
        self.autocast_dtype = autocast_dtype(self.device, config.device.precision)
        # channels_last speeds convolutions up on CUDA and on the CPU (~17 % for the small CNN
        # here); Apple's MPS backend handles it poorly.
        self.channels_last = self.device.type in ("cuda", "cpu")
        task_type = PretrainTask if config.objective.task == "pretrain" else SupervisedTask
        self.micro_batching = MicroBatching(self.device, self._on_out_of_memory)
        environment = TaskEnvironment(
            config,
            self.device,
            self.channels_last,
            self.autocast_dtype,
            self.micro_batching,
            self._download_progress,
        )
        split = prepare_split(config)
        self.left_out_by_scan = {str(path): reason for path, reason in split.left_out}
        self.task: TrainingTask = task_type(environment, split)
        self.steps_per_epoch = len(self.task.train_loader)
        if self.steps_per_epoch == 0:
            raise DatasetError(
                "There are fewer training pictures than one batch needs.",
                advice="Lower the batch size or add pictures.",
            )
        self.context = build_step_context(
            config, self.task, self.device, self.autocast_dtype, self.steps_per_epoch
        )
        self.training_step = TrainingStep(self.context, self.task, self.micro_batching)
        self.batch_source = BatchSource(
            self.task, config.data.batch_size, config.data.num_workers, self._report_adjustment
        )
        self._open_run_dir()

    def _open_run_dir(self) -> None:
        if self.resume_from:
            self.run_dir = RunDirectory(self.resume_from)
            remove_stray_temp_files(self.run_dir.path)  # left by a write that was killed
            checkpoints.recover_checkpoint(self.run_dir.best_checkpoint_dir)
            loaded = checkpoints.load_checkpoint(self.run_dir.last_checkpoint_dir)
            check_same_classes(
                tuple(loaded.meta.get("class_names", ())),
                self.task.class_names,
                resolve_data_dir(self.config),
            )
            self._restore(loaded)
        else:
            self.run_dir = RunDirectory.create(
                self.runs_root or default_runs_root(), self.config.run_name
            )
            self.run_dir.write_config(self.config)
        self.run_dir.write_status(
            status="running",
            class_names=list(self.task.class_names),
            data_dir=str(resolve_data_dir(self.config)),
            weights=self.task.weights_note,
            **this_process(),  # so another window does not take this live run for a crashed one
        )
        RUNS_TRAINING_HERE.add(self.run_dir.path.resolve())

    # ----------------------------------------------------------------- the loop
    def _fit(self) -> str:
        try:
            return self._fit_epochs()
        except checkpoints.CheckpointWriteError as error:
            # Disk full or read-only: the last good checkpoint is intact; pause, do not fail.
            self.stop_message = str(error)
            return STATUS_STOPPED
        except (DatasetVanished, ImageLoadError) as error:
            root = resolve_data_dir(self.config)
            if root.exists():
                raise  # a single unreadable validation picture: fail, naming the file
            # The folder is gone (an unplugged drive): keep the work done so far and pause.
            self.save_checkpoint(reason="stopped")
            self.stop_message = str(
                error if isinstance(error, DatasetVanished) else DatasetVanished(root)
            )
            return STATUS_STOPPED

    def _fit_epochs(self) -> str:
        assert self.run_dir is not None
        self.callbacks.emit(
            started_event(
                self.run_dir.path,
                self.config,
                self.task,
                self.progress,
                self.steps_per_epoch,
                self.device_info,
            )
        )
        for epoch_index in range(self.progress.epoch_index, self.config.optim.num_epochs):
            if not self.train_one_epoch(epoch_index):
                self.save_checkpoint(reason="stopped")
                return STATUS_STOPPED
            self.end_epoch(epoch_index)
            if self.stop_request.is_requested:
                return STATUS_STOPPED  # the epoch's checkpoint was just saved
            if self.progress.should_stop_early(self.config.optim.early_stopping_patience):
                LOGGER.info("early stopping after epoch %d", epoch_index + 1)
                break
        if self.last_outcome is not None and self.last_outcome.prediction_rows:
            assert self.run_dir is not None
            self.run_dir.write_predictions(self.last_outcome.prediction_rows)
        return STATUS_COMPLETED

    def train_one_epoch(self, epoch_index: int) -> bool:
        """Train until the epoch ends (True) or a stop is requested (False)."""
        self.task.prepare_epoch(epoch_index)
        start_batch = self.progress.batch_index
        self.progress.start_epoch(epoch_index, self.steps_per_epoch)
        batches = self.batch_source.epoch(epoch_index, start_batch)
        for batch_index, batch in enumerate(batches, start=start_batch):
            step = self.training_step(batch)
            self.progress.add_batch(step.loss, step.correct, step.count)
            self._report_batch(epoch_index, batch_index, step.loss)
            self.divergence_guard.check(step.loss, self.progress.global_step)
            if self.stop_request.is_requested:
                return False
            if self._periodic_checkpoint_due(batch_index):
                self.save_checkpoint(reason="periodic")
        self.progress.finish_training_part()
        return True

    def _report_batch(self, epoch_index: int, batch_index: int, loss: float) -> None:
        learning_rate = self.context.optimizer.param_groups[0]["lr"]
        self.progress.log_batch(epoch_index, loss, learning_rate)
        num_epochs = self.config.optim.num_epochs
        self.callbacks.emit(
            batch_event(
                self.progress, num_epochs, self.steps_per_epoch, batch_index, loss, learning_rate
            )
        )

    def _on_out_of_memory(self, message: str) -> None:
        """The batch is retried in smaller pieces (only gradients were being computed: the
        optimiser and the scaler have not been touched yet)."""
        self._report_adjustment("out_of_memory", message)

    def _report_adjustment(self, kind: str, message: str) -> None:
        self.adjustments.append(message)
        self.callbacks.emit(TrainingAdjusted(kind, message, self.progress.global_step))

    def _periodic_checkpoint_due(self, batch_index: int) -> bool:
        """Every N steps or T minutes, but not on an epoch's last batch (the epoch end saves)."""
        if batch_index + 1 >= self.steps_per_epoch:
            return False
        saving = self.config.saving
        every_steps = saving.checkpoint_every_steps
        if every_steps and self.progress.global_step % every_steps == 0:
            return True
        minutes = (time.monotonic() - self.last_checkpoint_time) / 60
        return 0 < saving.checkpoint_every_minutes <= minutes

    def end_epoch(self, epoch_index: int) -> EpochOutcome:
        """Validate (or measure pretraining health), report, and save the epoch's checkpoints."""
        train_loss = self.progress.epoch_train_loss()
        outcome = self.batch_source.with_loader_retry(
            lambda: self.task.end_epoch(epoch_index, train_loss),
            f"the check at the end of epoch {epoch_index + 1}",
        )
        self.last_outcome = outcome
        # Pretraining has no validation loss: the best epoch is the best k-NN accuracy, or
        # without labels to measure with, the lowest training loss.
        ranking_loss = outcome.val_loss if math.isfinite(outcome.val_loss) else train_loss
        is_best = self.progress.finish_epoch(outcome.val_accuracy, ranking_loss)
        learning_rate = self.context.optimizer.param_groups[0]["lr"]
        num_epochs = self.config.optim.num_epochs
        event = epoch_event(self.progress, num_epochs, epoch_index, outcome, is_best, learning_rate)
        self._log_epoch(event)
        skipped = self._skipped_files()
        if skipped:
            LOGGER.warning("skipped %d unreadable pictures: %s", len(skipped), list(skipped)[:5])
            assert self.run_dir is not None
            self.run_dir.write_status(skipped_files=skipped)
        self.callbacks.emit(event)
        for extra_event in outcome.events:
            self.callbacks.emit(extra_event)
        self.save_checkpoint(reason="epoch")
        if is_best and self.task.keeps_best_checkpoint:
            self.save_checkpoint(reason="best")
        return outcome

    # ----------------------------------------------------------------- checkpoints
    def save_checkpoint(self, reason: str) -> None:
        assert self.run_dir is not None
        folder = (
            self.run_dir.best_checkpoint_dir
            if reason == "best"
            else self.run_dir.last_checkpoint_dir
        )
        trainer_state = (
            None
            if reason == "best"
            else capture_trainer_state(self.context, self.progress, self.task)
        )
        try:
            self._flush_batch_log()
        except OSError as error:  # the metrics log could not be appended to
            raise checkpoints.CheckpointWriteError.from_os_error(folder, error) from error
        checkpoints.save_checkpoint(
            folder,
            self.task.shareable_weights(),
            checkpoint_meta(self.config, self.task, self.progress),
            trainer_state,
            keep_previous=reason != "best",  # a fallback if "last" is ever damaged
        )
        self.last_checkpoint_time = time.monotonic()
        self.callbacks.emit(
            CheckpointSaved(
                self.progress.epoch_index + 1, self.progress.global_step, folder, reason
            )
        )

    def _restore(self, loaded: checkpoints.LoadedCheckpoint) -> None:
        rng_state = restore_trainer_state(loaded, self.context, self.progress, self.task)
        self.batch_source.pending_rng_state = rng_state  # restored when the batches start
        assert self.run_dir is not None
        self.run_dir.truncate_metrics_after(self.progress.global_step)

    # ----------------------------------------------------------------- logs
    def _log_epoch(self, event: EpochFinished) -> None:
        assert self.run_dir is not None
        self._flush_batch_log()
        self.run_dir.append_metrics([epoch_log_record(event, self.progress.global_step)])
        self.run_dir.write_status(
            epochs_completed=self.progress.epochs_completed,
            best_val_accuracy=self.progress.best_val_accuracy,
            final_val_accuracy=self.progress.final_val_accuracy,
        )

    def _flush_batch_log(self) -> None:
        assert self.run_dir is not None
        self.run_dir.append_metrics(self.progress.take_batch_log())

    def _skipped_files(self) -> dict[str, str]:
        """Files left out: by the scan before training, and those unreadable during it."""
        task = getattr(self, "task", None)
        during_run = task.skipped_files() if task is not None else {}
        batch_source = getattr(self, "batch_source", None)
        if batch_source is not None:
            during_run.update(batch_source.skipped)
        return {**getattr(self, "left_out_by_scan", {}), **during_run}

    def _record_final_status(self, finished: TrainingFinished) -> None:
        if self.run_dir is None:
            return
        try:
            self.run_dir.write_status(
                status=finished.status,
                error_message=finished.error_message,
                skipped_files=self._skipped_files(),
            )
        except OSError:
            LOGGER.exception("could not record the final status of %s", self.run_dir.path)

    def _release_device(self) -> None:
        device = getattr(self, "device", None)
        if device is not None and device.type == "cuda":
            self.__dict__.pop("task", None)
            self.__dict__.pop("context", None)
            torch.cuda.empty_cache()
