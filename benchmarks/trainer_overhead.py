"""Holds the Trainer against a hand-written PyTorch loop on the same data, model and settings.

Prints a table: seconds per epoch for each, and the ratio Trainer / hand-written. Both run in this
one process, alternating, so machine noise hits both alike. The Trainer does more per epoch
(validation records, metrics, atomic checkpoints, events); the ratio says what that costs.

    python -m benchmarks.trainer_overhead [--data DIR] [--epochs 3] [--image-size 48]
        [--repeats 2] [--quick] [--json]

Target (issue 14, B1, against the textbook loop): the Trainer at least as fast (speed ratio ≥ 1.0).
The issue's second reference, a minimal loop over pictures decoded once into memory, is not
built yet.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.table import Row, add_table_flags, report
from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig
from ptm_studio.core.data import ImageDataset, build_transform, demo_data_dir
from ptm_studio.core.devices import configure_cpu_threads
from ptm_studio.core.engine.callbacks import EventRecorder
from ptm_studio.core.engine.events import EpochFinished
from ptm_studio.core.engine.setup import prepare_split, seed_everything
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.models import build_classifier, get_backbone_spec

TARGET_SPEED = 1.0


def trainer_seconds_per_epoch(config: RunConfig) -> float:
    recorder = EventRecorder()
    with tempfile.TemporaryDirectory() as runs_root:
        finished = Trainer.new_run(config, callbacks=[recorder], runs_root=Path(runs_root)).run()
    assert finished.status == "completed", finished.error_message
    epochs = recorder.of_type(EpochFinished)
    return statistics.median(event.epoch_seconds for event in epochs)  # type: ignore[attr-defined]


def handwritten_seconds_per_epoch(config: RunConfig) -> float:
    """The loop a PyTorch user would write: same split, transforms, model, optimiser, validation."""
    seed_everything(config.seed)
    configure_cpu_threads(config.device.cpu_threads)
    split = prepare_split(config)
    spec = get_backbone_spec(config.model.backbone)
    size = config.data.image_size
    train_set = ImageDataset(
        split.train,
        split.class_names,
        build_transform(
            size, mean=spec.mean, std=spec.std, train=True, augmentations=config.data.augmentations
        ),
    )
    val_set = ImageDataset(
        split.val,
        split.class_names,
        build_transform(size, mean=spec.mean, std=spec.std, train=False),
    )
    train_loader = DataLoader(train_set, batch_size=config.data.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=config.data.batch_size)
    model = build_classifier(spec.name, len(split.class_names)).to(
        memory_format=torch.channels_last
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.learning_rate)
    times = []
    for _ in range(config.optim.num_epochs):
        started = time.perf_counter()
        model.train()
        for images, targets in train_loader:
            loss = torch.nn.functional.cross_entropy(
                model(images.contiguous(memory_format=torch.channels_last)), targets
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            for images, _targets in val_loader:
                model(images.contiguous(memory_format=torch.channels_last))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=demo_data_dir())
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.epochs, arguments.repeats = 2, 1
    config = RunConfig(
        data=DataConfig(
            data_dir=str(arguments.data), image_size=arguments.image_size, augmentations=("flip",)
        ),
        optim=OptimConfig(num_epochs=arguments.epochs, schedule="constant"),
        # Full precision on both sides: the hand-written loop has no autocast, and this holds
        # the Trainer's own costs, not bf16's gain (B6 measures that).
        device=DeviceConfig(device="cpu", precision="off"),
    ).validate()
    trainer_times, handwritten_times = [], []
    for _ in range(arguments.repeats):  # alternate so drifting machine load affects both
        handwritten_times.append(handwritten_seconds_per_epoch(config))
        trainer_times.append(trainer_seconds_per_epoch(config))
    trainer, handwritten = statistics.median(trainer_times), statistics.median(handwritten_times)
    print(
        f"data: {arguments.data}  image size: {arguments.image_size}  epochs: {arguments.epochs}  "
        f"repeats: {arguments.repeats}  threads: {torch.get_num_threads()}"
    )
    print(f"{'loop':<14}{'s/epoch':>10}{'ratio':>8}")
    print(f"{'hand-written':<14}{handwritten:>10.2f}{1.0:>8.2f}")
    print(f"{'Trainer':<14}{trainer:>10.2f}{trainer / handwritten:>8.2f}")
    speed = handwritten / trainer
    row = Row.ratio_at_least(
        "B1 Trainer vs textbook loop (speed)",
        f"{trainer:.2f} s/epoch",
        f"{handwritten:.2f} s/epoch",
        speed,
        TARGET_SPEED,
    )
    report([row], arguments)


if __name__ == "__main__":
    main()
