"""T3/T5: a training process killed with SIGKILL at random moments, over and over.

After every kill: the final checkpoint path is never partial (any interrupted swap is recovered),
stray temp files are cleaned on resume, the user's images are byte-for-byte unchanged and the
run resumes from the saved step. CI kills 5 times; `PTM_STUDIO_KILL_REPEATS=30` for the slow run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptm_studio.core.checkpoints import (
    is_complete_checkpoint,
    load_checkpoint,
    recover_checkpoint,
)
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.events import BatchFinished, TrainingStarted
from ptm_studio.core.engine.trainer import Trainer

from .conftest import folder_digest

KILL_REPEATS = int(os.environ.get("PTM_STUDIO_KILL_REPEATS", "5"))
TARGET = Path(__file__).with_name("kill_target.py")


def wait_for_first_checkpoint(process: subprocess.Popen[bytes], run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last" / "meta.json").exists():
        if process.poll() is not None:
            raise AssertionError(
                f"the training process ended early: {process.stderr.read().decode()}"
            )  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.05)


class StopAfterFirstBatch(Callback):
    def __init__(self, stop_request: StopRequest) -> None:
        self.stop_request = stop_request

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        self.stop_request.request()


def test_sigkill_at_random_moments_never_leaves_a_partial_checkpoint(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    images_before = folder_digest(tiny_dataset)
    chooser = random.Random(1234)
    interrupted_writes = 0
    for attempt in range(KILL_REPEATS):
        run_dir = tmp_path / f"run{attempt}"
        environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
        process = subprocess.Popen(
            [sys.executable, str(TARGET), str(tiny_dataset), str(run_dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
        )
        try:
            wait_for_first_checkpoint(process, run_dir)
            time.sleep(chooser.uniform(0.0, 0.6))  # a step (with its checkpoint) takes ~0.1 s here
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            process.stderr.close()  # type: ignore[union-attr]

        interrupted_writes += any(run_dir.rglob("*.partial")) or any(run_dir.rglob(".last.old"))
        last = recover_checkpoint(run_dir / "checkpoints" / "last")
        assert is_complete_checkpoint(last), (
            f"attempt {attempt}: the last checkpoint is not complete"
        )
        saved_step = load_checkpoint(last).trainer_state["progress"]["global_step"]  # type: ignore[index]

        stop = StopRequest()
        recorder = EventRecorder()
        finished = Trainer.resume(
            run_dir, callbacks=[recorder, StopAfterFirstBatch(stop)], stop_request=stop
        ).run()
        assert finished.status == "stopped", finished.error_details
        first_batch = recorder.of_type(BatchFinished)[0]
        assert first_batch.global_step == saved_step + 1, (
            f"attempt {attempt}: resumed at the wrong step"
        )
        assert recorder.of_type(TrainingStarted)[0].start_epoch >= 1
        leftovers = [
            p.name
            for p in run_dir.rglob("*")
            if p.name.endswith(".partial") or p.name.endswith(".old")
        ]
        assert leftovers == [], f"attempt {attempt}: stray files {leftovers}"
    assert folder_digest(tiny_dataset) == images_before, "the user's image folder was modified"
    print(f"{interrupted_writes} of {KILL_REPEATS} kills landed while a file was being written")


@pytest.mark.parametrize("every_steps", [2])
def test_periodic_checkpoints_are_saved_between_epoch_ends(
    tiny_config, tmp_path: Path, every_steps: int
) -> None:  # type: ignore[no-untyped-def]
    from ptm_studio.core.config import SavingConfig, replace_field
    from ptm_studio.core.engine.events import CheckpointSaved

    config = replace_field(
        tiny_config(num_epochs=1), "saving", SavingConfig(checkpoint_every_steps=every_steps)
    )
    recorder = EventRecorder()
    Trainer.new_run(config, callbacks=[recorder], runs_root=tmp_path).run()
    steps = recorder.of_type(TrainingStarted)[0].steps_per_epoch
    periodic = [
        event.global_step
        for event in recorder.of_type(CheckpointSaved)
        if event.reason == "periodic"
    ]
    assert periodic == [step for step in range(every_steps, steps, every_steps)]
