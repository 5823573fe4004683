"""Checkpoints paced when writing them costs more than the training they keep (issue 14, B2):
when they are due, and that a run whose epochs' writes waited still keeps its best epoch, its
last state on a stop or at its end, and its best epoch when it fails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from training_helpers import StopAt

from ptm_studio.core.checkpoints import load_checkpoint
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.checkpoint_pacing import (
    ALWAYS_WRITTEN_SECONDS,
    WRITING_SHARE,
    CheckpointPacing,
    WeightsSnapshot,
)
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.events import CheckpointSaved, EpochFinished
from ptm_studio.core.engine.trainer import Trainer

ConfigFactory = Callable[..., RunConfig]


def test_the_first_write_and_quick_ones_are_always_due() -> None:
    now = [100.0]  # a clock the test moves
    pacing = CheckpointPacing(lambda: now[0])
    assert pacing.is_due()  # nothing measured yet
    started = now[0]
    now[0] += ALWAYS_WRITTEN_SECONDS / 2
    pacing.written(started)
    assert pacing.is_due()  # a write nobody feels: at every epoch's end


def test_a_slow_write_waits_until_writing_is_a_tenth_of_the_time() -> None:
    now = [100.0]
    pacing = CheckpointPacing(lambda: now[0])
    started = now[0]
    now[0] += 0.2  # a 45 MB checkpoint with fsync
    pacing.written(started)
    wait = 0.2 * (1 - WRITING_SHARE) / WRITING_SHARE  # 1.8 s of training per 0.2 s write
    now[0] += wait * 0.99
    assert not pacing.is_due()
    now[0] += wait * 0.02
    assert pacing.is_due()


def test_a_snapshot_keeps_its_moment_and_reuses_its_memory() -> None:
    weights = {"weight": torch.ones(3, 2), "count": torch.tensor(4)}
    snapshot = WeightsSnapshot()
    first = snapshot.take(weights)
    weights["weight"].add_(1)  # training goes on
    assert torch.equal(first["weight"], torch.ones(3, 2)) and int(first["count"]) == 4
    memory = first["weight"].data_ptr()
    second = snapshot.take(weights)
    assert torch.equal(second["weight"], torch.full((3, 2), 2.0))
    assert second["weight"].data_ptr() == memory  # copied into the same memory
    bigger = snapshot.take({"weight": torch.zeros(4, 2), "count": torch.tensor(5)})
    assert bigger["weight"].shape == (4, 2) and int(bigger["count"]) == 5


class OnlyTheFirst(CheckpointPacing):
    """Writes are never due again after the first (as with a slow disk and quick epochs)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def is_due(self) -> bool:
        self.asked += 1
        return self.asked == 1


class BestWeights(Callback):
    """A copy of the weights at each epoch that was the best so far (read off the trainer)."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.best: dict[str, torch.Tensor] = {}
        self.best_epoch = 0

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        assert self.trainer is not None and self.trainer.parts is not None
        if event.is_best:
            weights = self.trainer.parts.task.shareable_weights()
            self.best = {name: tensor.clone() for name, tensor in weights.items()}
            self.best_epoch = event.epoch


class FailAtEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        if event.epoch == self.epoch:
            raise RuntimeError("a callback's bug")


def _paced_run(
    config: RunConfig, runs_root: Path, *callbacks: Callback, stop: StopRequest | None = None
) -> tuple[Trainer, EventRecorder, BestWeights]:
    recorder, best = EventRecorder(), BestWeights()
    trainer = Trainer.new_run(
        config, callbacks=[recorder, *callbacks, best], runs_root=runs_root, stop_request=stop
    )
    trainer.checkpoint_pacing = OnlyTheFirst()
    best.trainer = trainer
    trainer.run()
    return trainer, recorder, best


def _weights_equal(folder: Path, expected: dict[str, torch.Tensor]) -> bool:
    loaded = load_checkpoint(folder, with_trainer_state=False).model_state
    return loaded.keys() == expected.keys() and all(
        torch.equal(loaded[name], tensor) for name, tensor in expected.items()
    )


def test_a_run_whose_writes_waited_ends_with_its_last_and_best_epochs_written(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(), "optim.num_epochs", 5)
    trainer, recorder, best = _paced_run(config, tmp_path)
    assert recorder.events[-1].status == "completed"  # type: ignore[attr-defined]
    run = trainer.recorder.path  # type: ignore[union-attr]
    saved = recorder.of_type(CheckpointSaved)
    # Epoch 1's checkpoints (the first write is due), then nothing until the run's end.
    assert [event.epoch for event in saved if event.reason == "epoch"] == [1, 5]
    last = load_checkpoint(run / "checkpoints" / "last")
    assert last.meta["epoch"] == 5 and last.trainer_state is not None
    # The best epoch's weights as they were then, not as training left them later.
    assert _weights_equal(run / "checkpoints" / "best", best.best)
    assert load_checkpoint(run / "checkpoints" / "best").meta["epoch"] == best.best_epoch
    assert saved[-1].reason in ("epoch", "best")


def test_a_stop_after_waiting_epochs_writes_the_state_to_resume_from(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(), "optim.num_epochs", 5)
    stop = StopRequest()
    trainer, recorder, best = _paced_run(config, tmp_path, StopAt(stop, epoch=3), stop=stop)
    assert recorder.events[-1].status == "stopped"  # type: ignore[attr-defined]
    run = trainer.recorder.path  # type: ignore[union-attr]
    assert load_checkpoint(run / "checkpoints" / "last").meta["epoch"] == 3
    assert _weights_equal(run / "checkpoints" / "best", best.best)
    resumed = Trainer.resume(run).run()
    assert resumed.status == "completed" and resumed.epochs_completed == 5


def test_a_failed_run_still_keeps_the_best_epoch_it_held(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(), "optim.num_epochs", 5)
    trainer, recorder, best = _paced_run(config, tmp_path, FailAtEpoch(4))
    assert recorder.events[-1].status == "failed"  # type: ignore[attr-defined]
    run = trainer.recorder.path  # type: ignore[union-attr]
    # Epoch 4's end failed before anything after the failing callback saw it.
    assert 1 < best.best_epoch < 4, "this tiny run improves after its first epoch"
    assert _weights_equal(run / "checkpoints" / "best", best.best)
