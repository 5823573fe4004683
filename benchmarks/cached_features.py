"""Feature extraction with the frozen backbone's features cached (the app's way) against running
the frozen backbone over every picture each epoch (model.cache_frozen_features off).

Both are the real Trainer on the same pictures (generated: 1,000 in four classes, 600 with
--quick; or --data DIR), split, network and seed, in this one process, alternated. Prints
seconds per epoch (the epoch's training and validation, without the checkpoint write; and
apart, the wall clock a user waits, with the checkpoints), the first epoch of the cached run
apart (it computes the features), and the best validation accuracy of each. Target (issue 14,
B2): later epochs >= 100x faster, accuracy within seed noise.

The cached run trains more epochs (--cached-epochs) than the reference: its checkpoint writes
are paced (a write is due once the training since the last is worth it, see
CheckpointPacing), so its wall clock is what all its epochs after the first took, from the
first epoch's end to the run's end (the last write included), per epoch; a few epochs would
hide the writes.

Beside them, the floor: the same head, optimiser, batches and validation written as a bare
PyTorch loop over features already in memory (no events, checks or records). Where the cached
epochs are close to it, what is left of the 100x is PyTorch's own cost per step, not ours.

    python -m benchmarks.cached_features [--data DIR | --pictures 1000] [--backbone resnet18]
        [--image-size 64] [--epochs 4] [--cached-epochs 40] [--repeats 1] [--augmentations flip]
        [--quick] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmarks.pictures import make_class_folders
from benchmarks.table import Row, add_table_flags, report
from ptm_studio.core.config import DataConfig, DeviceConfig, ModelConfig, OptimConfig, RunConfig
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import (
    EngineEvent,
    EpochFinished,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.models.registry import build_classifier
from ptm_studio.core.objectives import build_optimizer, build_scheduler, build_supervised_loss

TARGET_RATIO = 100.0
FLOOR_TARGET = 0.8  # the bare loop's epoch over ours: what our bookkeeping may cost at most


@dataclass(frozen=True)
class Measured:
    epoch_seconds: list[float]  # each epoch's training and validation (EpochFinished's)
    wall_seconds: list[float]  # from one epoch's end to the next's: checkpoints included
    after_first_seconds: float  # from the first epoch's end to the run's end (last write too)
    best_accuracy: float
    started: TrainingStarted  # the run's sizes


class EpochClock(Callback):
    """When each epoch ended (the wall clock from one to the next holds everything a user
    waits for: the epoch, its checkpoints, the events)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_event(self, event: EngineEvent, control: TrainingControl) -> None:
        if isinstance(event, EpochFinished | TrainingFinished):
            self.ends.append(time.perf_counter())


def run_epochs(config: RunConfig) -> Measured:
    recorder, clock = EventRecorder(), EpochClock()
    with tempfile.TemporaryDirectory() as runs_root:
        trainer = Trainer.new_run(config, callbacks=[recorder, clock], runs_root=Path(runs_root))
        finished = trainer.run()
    assert finished.status == "completed", finished.error_message
    epochs = recorder.of_type(EpochFinished)
    epoch_ends = clock.ends[:-1]  # the last is the run's end
    return Measured(
        [event.epoch_seconds for event in epochs],
        [later - earlier for earlier, later in itertools.pairwise(epoch_ends)],
        clock.ends[-1] - clock.ends[0],
        max(e.val_accuracy for e in epochs),
        recorder.of_type(TrainingStarted)[0],
    )


def bare_epochs(started: TrainingStarted, config: RunConfig) -> list[float]:
    """Seconds per epoch of the floor: the app's head, loss, optimiser and schedule (built by
    the app's own functions from the run's settings) trained in a bare loop on features in
    memory with the same batches, then its validation (probabilities and losses of every
    picture)."""
    classes = len(started.class_names)
    model = build_classifier(config.model.backbone, classes, dropout=config.model.dropout)
    feature_size = model.classifier_layer.in_features
    features = torch.randn(started.num_train_images, feature_size)
    labels = torch.arange(started.num_train_images) % classes
    val_features = torch.randn(started.num_val_images, feature_size)
    val_labels = torch.arange(started.num_val_images) % classes
    loss_function = build_supervised_loss(config.objective, labels.bincount().tolist())
    optimizer = build_optimizer(model.head, model.backbone, config.optim, config.model)
    scheduler = build_scheduler(optimizer, config.optim, started.steps_per_epoch)
    seconds = []
    for _ in range(config.optim.num_epochs):
        began = time.perf_counter()
        model.head.train()
        order = torch.randperm(len(labels))
        inputs, targets = features[order], labels[order]
        for start in range(0, len(targets), config.data.batch_size):
            batch_targets = targets[start : start + config.data.batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = model.head(inputs[start : start + config.data.batch_size])
            loss = loss_function(logits, batch_targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            float(loss.detach())  # the loss shown and the right answers counted, as ours
            int((logits.detach().argmax(dim=1) == batch_targets).sum())
        model.head.eval()
        with torch.inference_mode():
            logits = model.head(val_features)
            torch.softmax(logits, dim=1).numpy()
            nn.functional.cross_entropy(logits, val_labels, reduction="none").numpy()
        seconds.append(time.perf_counter() - began)
    return seconds


def config_for(arguments: argparse.Namespace, cached: bool) -> RunConfig:
    return RunConfig(
        data=DataConfig(
            data_dir=str(arguments.data),
            image_size=arguments.image_size,
            batch_size=32,
            augmentations=tuple(arguments.augmentations),
        ),
        model=ModelConfig(
            backbone=arguments.backbone,
            training_mode="feature_extraction",
            cache_frozen_features=cached,
        ),
        optim=OptimConfig(
            num_epochs=arguments.cached_epochs if cached else arguments.epochs,
            learning_rate=1e-3,
        ),
        device=DeviceConfig(device="cpu"),
        seed=0,
    ).validate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generated pictures")
    parser.add_argument("--pictures", type=int, default=1000, help="generated, in 4 classes")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4, help="of the reference, at least 2")
    parser.add_argument("--cached-epochs", type=int, default=40, help="at least 2")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--augmentations", nargs="*", default=[])
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.epochs = 3  # the first cached epoch computes the features; two to compare
        arguments.cached_epochs = 20
        arguments.pictures = 600
    with tempfile.TemporaryDirectory() as folder:
        if arguments.data is None:
            # Enough pictures that an epoch's fixed costs (events, the validation records) do
            # not hide what the cache saves: the demo's 250 give ~60x, a real folder far more.
            arguments.data = make_class_folders(Path(folder), arguments.pictures // 4)
        measure(arguments)


def measure(arguments: argparse.Namespace) -> None:
    frozen: list[Measured] = []
    cached: list[Measured] = []
    floor: list[float] = []
    for _ in range(arguments.repeats):
        frozen.append(run_epochs(config_for(arguments, cached=False)))
        cached.append(run_epochs(config_for(arguments, cached=True)))
        floor += bare_epochs(cached[-1].started, config_for(arguments, cached=True))

    reference = statistics.median(s for run in frozen for s in run.epoch_seconds)
    ours = statistics.median(s for run in cached for s in run.epoch_seconds[1:])
    reference_wall = statistics.median(s for run in frozen for s in run.wall_seconds)
    ours_wall = statistics.median(
        run.after_first_seconds / (len(run.epoch_seconds) - 1) for run in cached
    )
    bare = statistics.median(floor)
    print(
        f"{arguments.backbone} at {arguments.image_size} px, feature extraction, {arguments.data}"
    )
    print(f"{'':34} {'s/epoch':>9} {'with checkpoints':>17}")
    print(f"{'frozen backbone each epoch':34} {reference:9.3f} {reference_wall:17.3f}")
    first = statistics.median(run.epoch_seconds[0] for run in cached)
    print(f"{'cached, first epoch (computes)':34} {first:9.3f}")
    print(f"{'cached, later epochs':34} {ours:9.4f} {ours_wall:17.4f}")
    print(f"{'bare PyTorch loop on features':34} {bare:9.4f}")
    for name, runs in (("frozen backbone each epoch", frozen), ("cached features", cached)):
        shown = ", ".join(f"{100 * run.best_accuracy:.1f} %" for run in runs)
        print(f"best validation accuracy, {name}: {shown}")
    name = f"B2 cached features ({arguments.backbone}, {arguments.image_size} px)"
    rows = [
        Row.ratio_at_least(
            name,
            f"{1000 * ours:.1f} ms/epoch",
            f"{1000 * reference:.0f} ms/epoch",
            reference / ours,
            TARGET_RATIO,
        ),
        Row.ratio_at_least(
            "B2 the same, with each epoch's checkpoints",
            f"{1000 * ours_wall:.0f} ms/epoch",
            f"{1000 * reference_wall:.0f} ms/epoch",
            reference_wall / ours_wall,
            TARGET_RATIO,
        ),
        Row.ratio_at_least(
            "B2 floor: bare PyTorch loop ÷ our cached epoch",
            f"{1000 * ours:.1f} ms/epoch",
            f"{1000 * bare:.1f} ms/epoch",
            bare / ours,
            FLOOR_TARGET,
        ),
    ]
    report(rows, arguments)


if __name__ == "__main__":
    main()
