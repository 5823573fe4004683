"""A run trained for a test, with every event it fired (core tests import it by name, as
models/model_test_helpers.py is imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.events import BatchFinished, EpochFinished, TrainingFinished
from ptm_studio.core.engine.trainer import Trainer


def train_and_record(
    config: RunConfig,
    runs_root: Path,
    *callbacks: Callback,
    resume_from: Path | None = None,
    **options: Any,
) -> tuple[TrainingFinished, EventRecorder]:
    """A new run of ``config`` under ``runs_root``, or ``resume_from`` a run with its own
    settings (then ``config`` is that run's config, for the reader)."""
    recorder = EventRecorder()
    every = [recorder, *callbacks]
    if resume_from is not None:
        trainer = Trainer.resume(resume_from, callbacks=every, **options)
    else:
        trainer = Trainer.new_run(config, callbacks=every, runs_root=runs_root, **options)
    return trainer.run(), recorder


class StopAt(Callback):
    """Requests a stop after the given global step (or at the end of an epoch)."""

    def __init__(
        self, stop_request: StopRequest, *, step: int | None = None, epoch: int | None = None
    ) -> None:
        self.stop_request, self.step, self.epoch = stop_request, step, epoch

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        if event.global_step == self.step:
            self.stop_request.request()

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        if event.epoch == self.epoch:
            self.stop_request.request()


TINY_CLI_TRAINING = (
    "--epochs",
    "1",
    "--image-size",
    "16",
    "--batch-size",
    "4",
    "--cpu-threads",
    "1",
)


def train_with_the_cli(dataset: Path, run: Path) -> Path:
    """A one-epoch run of ``dataset`` into the new folder ``run``, as a user types it."""
    from ptm_studio.cli import EXIT_OK, main

    assert (
        main(["train", "--data", str(dataset), "--output", str(run), *TINY_CLI_TRAINING]) == EXIT_OK
    )
    return run
