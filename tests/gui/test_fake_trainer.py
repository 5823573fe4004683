"""The GUI tests' FakeTrainer fires the real Trainer's events in the real Trainer's order, so
what the window tests learn from it holds for real runs."""

from __future__ import annotations

import itertools
from pathlib import Path

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.events import BatchFinished, TrainingStarted
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.gui.jobs.training import TrainingRequest

from .conftest import FakeTrainer


class StopAfter(Callback):
    def __init__(self, stop: StopRequest, step: int) -> None:
        self.stop, self.step = stop, step

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        if event.global_step == self.step:
            self.stop.request()


def _shape(events: EventRecorder) -> list[str]:
    """The event types in order, repeats folded (3 batches or 1 look alike; so do the epoch's
    and the best epoch's checkpoint)."""
    return [name for name, _ in itertools.groupby(type(event).__name__ for event in events.events)]


def _both(config: RunConfig, tmp_path: Path, stop_at: int | None) -> tuple[list[str], list[str]]:
    shapes = []
    for name in ("real", "fake"):
        events, stop = EventRecorder(), StopRequest()
        callbacks: list[Callback] = [events]
        if stop_at is not None:
            callbacks.append(StopAfter(stop, stop_at))
        if name == "real":
            Trainer.new_run(
                config, runs_root=tmp_path / "runs", callbacks=callbacks, stop_request=stop
            ).run()
            steps = events.of_type(TrainingStarted)[0].steps_per_epoch
        else:
            fake = type("Fake", (FakeTrainer,), {"num_batches": steps})
            fake(TrainingRequest(config, runs_root=tmp_path), callbacks, stop).run()
        shapes.append(_shape(events))
    return shapes[0], shapes[1]


def test_a_whole_run_has_the_same_events_in_the_same_order(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    real, fake = _both(replace_field(tiny_config, "optim.num_epochs", 2), tmp_path, None)
    assert real == fake
    assert real[0] == "TrainingStarted" and real[-1] == "TrainingFinished"


def test_a_stopped_run_has_the_same_events_in_the_same_order(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    real, fake = _both(replace_field(tiny_config, "optim.num_epochs", 2), tmp_path, 2)
    assert (
        real == fake == ["TrainingStarted", "BatchFinished", "CheckpointSaved", "TrainingFinished"]
    )
