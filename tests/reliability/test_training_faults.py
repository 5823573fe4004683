"""Training faults T1–T10 of docs/fault-catalogue.md, each through a real tiny run on the CPU.

Each test asserts what the user is told, and (through the ``nothing_lost`` fixture) that the
picture folder is byte-for-byte unchanged and the last good checkpoint still loads. T3 (hard
kills) is in test_kill_during_training.py, T4 (disk full) in test_disk_full.py, the GUI halves
of T5 and T7 in tests/gui and test_app_shell.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import get_worker_info

from ptm_studio.core.checkpoints import load_checkpoint
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data import ImageDataset
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.events import (
    BatchFinished,
    CheckpointSaved,
    TrainingAdjusted,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.core.engine.tasks import SupervisedTask
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory, find_interrupted_runs

from .conftest import NothingLost, assert_checkpoint_loads

CUDA_OOM = "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)"


def with_settings(config: RunConfig, **fields: Any) -> RunConfig:
    for path, value in fields.items():
        config = replace_field(config, path.replace("__", "."), value)
    return config.validate()


def train(
    config: RunConfig, tmp_path: Path, *, in_thread: bool = False, **kwargs: Any
) -> tuple[TrainingFinished, EventRecorder]:
    """A run into ``tmp_path / "runs"``; ``in_thread`` trains on another thread, as the app and
    the CLI do (on the main thread PyTorch reports a dead loading process through a signal
    handler, at whatever line is running)."""
    recorder = EventRecorder()
    callbacks = [recorder, *kwargs.pop("callbacks", [])]
    trainer = Trainer.new_run(config, callbacks=callbacks, runs_root=tmp_path / "runs", **kwargs)
    if not in_thread:
        return trainer.run(), recorder
    results: list[TrainingFinished] = []
    thread = threading.Thread(target=lambda: results.append(trainer.run()))
    thread.start()
    thread.join(timeout=120)
    assert results, "the run did not end"
    return results[0], recorder


def extend(nothing_lost: NothingLost, num_epochs: int) -> Path:
    """Let the fixture's finished one-epoch run go on to ``num_epochs`` when resumed."""
    nothing_lost.run_dir.write_config(
        with_settings(nothing_lost.config, optim__num_epochs=num_epochs)
    )
    return nothing_lost.run_dir.path


# --------------------------------------------------------------------------- T1 out of memory
def fits_at_most(pictures: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the training step raise CUDA's real out-of-memory error above ``pictures`` at once."""
    real_compute_loss = SupervisedTask.compute_loss
    sizes: list[int] = []

    def compute_loss(self: SupervisedTask, batch: tuple[torch.Tensor, torch.Tensor]) -> Any:
        sizes.append(len(batch[1]))
        if len(batch[1]) > pictures:
            raise torch.OutOfMemoryError(CUDA_OOM)
        return real_compute_loss(self, batch)

    monkeypatch.setattr(SupervisedTask, "compute_loss", compute_loss)
    return sizes


def test_t1_out_of_memory_halves_the_pieces_and_keeps_the_batch_size(
    nothing_lost: NothingLost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = fits_at_most(2, monkeypatch)
    config = with_settings(nothing_lost.config, optim__num_epochs=2)  # batch size 4
    finished, events = train(config, tmp_path)

    assert finished.status == "completed", finished.error_details
    adjusted = events.of_type(TrainingAdjusted)
    assert [event.kind for event in adjusted] == ["out_of_memory"]
    assert "ran out of memory" in adjusted[0].message
    assert (
        "batch of 4 pictures" in adjusted[0].message
        and "still learns from all 4" in adjusted[0].message
    )
    assert sizes[0] == 4 and max(sizes[1:]) <= 2  # retried in pieces, never the whole batch again
    # One optimiser step per batch of 4: the effective batch (and the schedule) are unchanged.
    started = events.of_type(TrainingStarted)[0]
    assert len(events.of_type(BatchFinished)) == 2 * started.steps_per_epoch
    monkeypatch.undo()
    _, untroubled = train(config, tmp_path / "untroubled")
    learning_rates = [
        [event.learning_rate for event in recorder.of_type(BatchFinished)]
        for recorder in (events, untroubled)
    ]
    assert learning_rates[0] == learning_rates[1]  # the schedule stepped once per whole batch
    assert_checkpoint_loads(RunDirectory(finished.run_dir).last_checkpoint_dir)  # type: ignore[arg-type]
    nothing_lost.check()


def test_t1_when_one_picture_does_not_fit_the_run_fails_with_advice_and_keeps_its_checkpoint(
    nothing_lost: NothingLost, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits_at_most(0, monkeypatch)
    run = extend(nothing_lost, num_epochs=2)
    finished = Trainer.resume(run).run()

    assert finished.status == "failed"
    assert "even with one picture at a time" in finished.error_message
    assert "smaller image size" in finished.error_message
    assert finished.kind == "out_of_memory"
    assert nothing_lost.check().meta["epoch"] == 1  # the epoch-1 checkpoint is still the last


def test_t1_out_of_memory_in_the_optimiser_step_is_not_retried_in_pieces(
    nothing_lost: NothingLost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adam's first step allocates two copies of the weights: smaller pieces cannot help."""

    def step_out_of_memory(*_args: Any, **_kwargs: Any) -> None:
        raise torch.OutOfMemoryError(CUDA_OOM)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_out_of_memory)
    run = extend(nothing_lost, num_epochs=2)
    events = EventRecorder()
    finished = Trainer.resume(run, callbacks=[events]).run()

    assert finished.status == "failed" and finished.kind == "out_of_memory"
    assert "while updating the weights" in finished.error_message
    assert "smaller model" in finished.error_message
    assert events.of_type(TrainingAdjusted) == []
    assert nothing_lost.check().meta["epoch"] == 1


# --------------------------------------------------------------------------- T2 NaN loss
def test_t2_a_diverging_loss_stops_with_advice_and_no_checkpoint_holds_nan(
    nothing_lost: NothingLost, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_compute_loss = SupervisedTask.compute_loss

    def nan_loss(self: SupervisedTask, batch: tuple[torch.Tensor, torch.Tensor]) -> Any:
        result = real_compute_loss(self, batch)
        result.loss = result.loss * float("nan")
        return result

    monkeypatch.setattr(SupervisedTask, "compute_loss", nan_loss)
    run = extend(nothing_lost, num_epochs=3)
    finished = Trainer.resume(run).run()

    assert finished.status == "failed"
    assert "diverged at step" in finished.error_message
    assert "lower learning rate" in finished.error_message
    nothing_lost.check()  # finite weights, last checkpoint from before the divergence
    assert_checkpoint_loads(nothing_lost.run_dir.best_checkpoint_dir)


# --------------------------------------------------------------------------- T3 stray files
def test_t3_stray_temp_files_of_a_killed_write_are_cleaned_at_the_next_start(
    nothing_lost: NothingLost,
) -> None:
    checkpoints_dir = nothing_lost.run_dir.last_checkpoint_dir.parent
    half_written = checkpoints_dir / ".last.partial"
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"\0" * 100)
    stray = nothing_lost.run_dir.path / ".metrics.jsonl.1234.partial"
    stray.write_bytes(b"{")
    run = extend(nothing_lost, num_epochs=2)

    finished = Trainer.resume(run).run()

    assert finished.status == "completed", finished.error_details
    assert not half_written.exists() and not stray.exists()
    assert [r["epoch"] for r in nothing_lost.run_dir.read_metrics("epoch")] == [1, 2]
    nothing_lost.check()


# --------------------------------------------------------------------------- T5 app killed
def test_t5_a_run_killed_mid_epoch_is_found_and_resumes_with_its_state_and_history(
    nothing_lost: NothingLost,
) -> None:
    run_dir = nothing_lost.run_dir
    run_dir.write_status(status="running")  # the process died: run.json was never finished
    run = extend(nothing_lost, num_epochs=2)
    before = load_checkpoint(run_dir.last_checkpoint_dir).trainer_state
    assert before is not None

    interrupted = find_interrupted_runs(run_dir.path.parent)
    assert [info.path for info in interrupted] == [run_dir.path]

    events = EventRecorder()
    finished = Trainer.resume(run, callbacks=[events]).run()
    assert finished.status == "completed", finished.error_details
    assert events.of_type(TrainingStarted)[0].start_epoch == 2
    first_step = events.of_type(BatchFinished)[0].global_step
    assert first_step == before["progress"]["global_step"] + 1  # continues, no step repeated
    batch_steps = [r["global_step"] for r in run_dir.read_metrics("batch")]
    assert batch_steps == list(range(1, len(batch_steps) + 1))  # the curve has no gap
    assert [r["epoch"] for r in run_dir.read_metrics("epoch")] == [1, 2]
    assert find_interrupted_runs(run_dir.path.parent) == []
    nothing_lost.check()


# --------------------------------------------------------------------------- T6 stop
class StopAtStep(Callback):
    def __init__(self, stop_request: StopRequest, step: int) -> None:
        self.stop_request, self.step = stop_request, step
        self.requested_at = 0.0

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        if event.global_step == self.step:
            self.requested_at = time.perf_counter()
            self.stop_request.request()


def test_t6_stop_mid_epoch_stops_at_the_next_batch_boundary_saves_and_resumes(
    nothing_lost: NothingLost,
) -> None:
    run = extend(nothing_lost, num_epochs=2)
    first_step = int(load_checkpoint(nothing_lost.run_dir.last_checkpoint_dir).meta["global_step"])
    stop = StopRequest()
    stopper = StopAtStep(stop, step=first_step + 2)
    events = EventRecorder()
    finished = Trainer.resume(run, stop_request=stop, callbacks=[events, stopper]).run()

    assert finished.status == "stopped"
    assert events.of_type(BatchFinished)[-1].global_step == first_step + 2  # no batch after it
    saved = events.of_type(CheckpointSaved)[-1]
    assert saved.reason == "stopped" and saved.global_step == first_step + 2
    assert nothing_lost.check().meta["global_step"] == first_step + 2

    resumed = Trainer.resume(run).run()
    assert resumed.status == "completed", resumed.error_details
    nothing_lost.check()


# --------------------------------------------------------------------------- T8 loading workers
def hang_in_worker(self: ImageDataset, index: int) -> Any:
    if get_worker_info() is not None and not HUNG_ONCE_IN_THIS_PROCESS:
        HUNG_ONCE_IN_THIS_PROCESS.append(True)
        time.sleep(2)  # longer than the loader's timeout; the worker then exits when told
    return REAL_GET_ITEM(self, index)


def die_in_worker(self: ImageDataset, index: int) -> Any:
    if get_worker_info() is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    return REAL_GET_ITEM(self, index)


REAL_GET_ITEM = ImageDataset.__getitem__
HUNG_ONCE_IN_THIS_PROCESS: list[bool] = []  # each forked worker has its own copy


@pytest.mark.parametrize(
    ("failure", "words"), [(hang_in_worker, "timed out"), (die_in_worker, "DataLoader worker")]
)
def test_t8_a_hung_or_dead_loading_process_is_replaced_and_the_run_goes_on(
    nothing_lost: NothingLost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: Any,
    words: str,
) -> None:
    monkeypatch.setattr(ImageDataset, "__getitem__", failure)  # workers are forked: they inherit it
    config = with_settings(
        nothing_lost.config,
        optim__num_epochs=2,
        data__num_workers=1,
        data__loader_timeout_seconds=1.0,
    )
    finished, events = train(config, tmp_path, in_thread=True)

    assert finished.status == "completed", finished.error_details
    adjusted = events.of_type(TrainingAdjusted)
    assert [event.kind for event in adjusted] == ["data_loader"]
    assert words in adjusted[0].message and "the run goes on" in adjusted[0].message
    started = events.of_type(TrainingStarted)[0]
    steps = [event.global_step for event in events.of_type(BatchFinished)]
    assert steps == list(range(1, 2 * started.steps_per_epoch + 1))  # no batch lost or repeated
    nothing_lost.check()


class KillLoadingProcessesAfterEpoch(Callback):
    """As the system would kill a memory-hungry process: the persistent loaders die between
    epochs, while nothing is waiting on them."""

    def on_epoch_finished(self, event: Any, control: TrainingControl) -> None:
        if event.epoch == 1:
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]


def test_t8_loading_processes_that_died_between_epochs_are_replaced_too(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    config = with_settings(
        nothing_lost.config,
        optim__num_epochs=2,
        data__num_workers=1,
        data__loader_timeout_seconds=2.0,  # off the main thread, a death shows after the timeout
    )
    finished, events = train(
        config, tmp_path, in_thread=True, callbacks=[KillLoadingProcessesAfterEpoch()]
    )

    assert finished.status == "completed", finished.error_details
    assert [event.kind for event in events.of_type(TrainingAdjusted)] == ["data_loader"]
    started = events.of_type(TrainingStarted)[0]
    steps = [event.global_step for event in events.of_type(BatchFinished)]
    assert steps == list(range(1, 2 * started.steps_per_epoch + 1))
    nothing_lost.check()


# --------------------------------------------------------------------------- T9 before training
def test_t9_no_gpu_runs_on_the_processor_and_says_it_is_slower(
    nothing_lost: NothingLost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    finished, events = train(with_settings(nothing_lost.config, device__device="cuda"), tmp_path)

    assert finished.status == "completed", finished.error_details
    started = events.of_type(TrainingStarted)[0]
    assert started.device_name.startswith("CPU")
    assert "CUDA was asked for but is not available" in started.device_note
    assert "much slower" in started.device_note
    nothing_lost.check()


def test_t9_resuming_after_the_classes_changed_is_refused_before_training(
    nothing_lost: NothingLost,
) -> None:
    (nothing_lost.pictures / "square").rename(nothing_lost.pictures / "triangle")
    nothing_lost.refresh()
    run = extend(nothing_lost, num_epochs=2)
    events = EventRecorder()
    finished = Trainer.resume(run, callbacks=[events]).run()

    assert finished.status == "failed" and finished.kind == "data_changed"
    assert "not the ones this run was trained on" in finished.error_message
    assert (
        "missing now: square" in finished.error_message
        and "new: triangle" in finished.error_message
    )
    assert "Put the folder back" in finished.error_message
    assert events.of_type(BatchFinished) == []  # refused before any training
    nothing_lost.check()


# --------------------------------------------------------------------------- T10 reproducibility
def test_t10_same_seed_twice_is_identical_and_a_resumed_run_matches_exactly(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    """On the CPU the stated tolerance is zero: the losses are bit-for-bit equal."""
    config = with_settings(nothing_lost.config, optim__num_epochs=2)
    _, first_events = train(config, tmp_path / "a")
    _, second_events = train(config, tmp_path / "b")
    losses = [
        [e.loss for e in events.of_type(BatchFinished)] for events in (first_events, second_events)
    ]
    assert losses[0] == losses[1]

    stop = StopRequest()
    stopped, stopped_events = train(
        config, tmp_path / "c", stop_request=stop, callbacks=[StopAtStep(stop, step=3)]
    )
    assert stopped.status == "stopped"
    resumed_events = EventRecorder()
    resumed = Trainer.resume(stopped.run_dir, callbacks=[resumed_events]).run()
    assert resumed.status == "completed", resumed.error_details
    stitched = [e.loss for e in stopped_events.of_type(BatchFinished)]
    stitched += [e.loss for e in resumed_events.of_type(BatchFinished)]
    assert stitched == losses[0]
    nothing_lost.check()


def test_t6_ctrl_c_in_the_command_line_stops_saves_and_says_how_to_continue(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    """The CLI trains on a thread; Ctrl-C still reaches it and stops at a batch boundary."""
    config_path = tmp_path / "config.json"
    config_path.write_text(with_settings(nothing_lost.config, optim__num_epochs=500).to_json())
    runs = tmp_path / "cli runs"
    command = ["train", "--config", str(config_path), "--runs-root", str(runs), "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "ptm_studio", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/checkpoints/last/meta.json")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "Stopping after this batch" in err and "Continue it with" in out
    (run,) = runs.iterdir()
    assert assert_checkpoint_loads(RunDirectory(run).last_checkpoint_dir).trainer_state
    nothing_lost.check()
