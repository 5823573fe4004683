"""Holds the Trainer against two hand-written PyTorch loops on the same data, model and settings.

* the textbook loop: ImageFolder-style dataset + transforms + DataLoader, decoding every
  picture every epoch. Target (issue 14, B1): the Trainer's first epoch at least as fast.
* the compute limit: every picture decoded once into one uint8 tensor before the clock starts,
  flips made on whole batches of tensors. Target: the Trainer's later epochs (which use the
  pictures it kept decoded) at least 0.97x as fast.

All three run in this one process, alternating, on generated photo-like JPEGs (1,000 of
400 x 300 in four classes; 400 with --quick) or --data DIR; each side's fastest epoch is
compared. The Trainer's epoch time (training and validation) leaves out the checkpoint it
writes after; it does more per epoch besides (validation records, metrics, events), and the
ratios say what that costs.

    python -m benchmarks.trainer_overhead [--data DIR | --pictures 1000] [--epochs 3]
        [--image-size 64] [--repeats 2] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.pictures import make_class_folders
from benchmarks.table import Row, add_table_flags, report
from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig
from ptm_studio.core.data import (
    ImageDataset,
    ImageRecord,
    build_transform,
    decode_side_for,
    load_image,
)
from ptm_studio.core.devices import configure_cpu_threads
from ptm_studio.core.engine.callbacks import EventRecorder
from ptm_studio.core.engine.events import EpochFinished
from ptm_studio.core.engine.setup import prepare_split, seed_everything
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.locations import HOME_VARIABLE
from ptm_studio.core.models import build_classifier, get_backbone_spec

TARGET_FIRST_EPOCH = 1.0  # against the textbook loop
TARGET_LATER_EPOCHS = 0.97  # against the in-memory loop


def trainer_seconds_per_epoch(config: RunConfig) -> tuple[float, list[float]]:
    """(the first epoch, the later ones), in seconds."""
    recorder = EventRecorder()
    with tempfile.TemporaryDirectory() as home:
        # The scratch file of kept pictures (if memory were short) goes into the temporary home.
        os.environ[HOME_VARIABLE] = home
        finished = Trainer.new_run(config, callbacks=[recorder], runs_root=Path(home)).run()
    assert finished.status == "completed", finished.error_message
    seconds = [event.epoch_seconds for event in recorder.of_type(EpochFinished)]  # type: ignore[attr-defined]
    return seconds[0], seconds[1:]


def handwritten_seconds_per_epoch(config: RunConfig) -> float:
    """The loop a PyTorch user would write: same split, transforms, model, optimiser, validation;
    its first epoch (it decodes every epoch: the first differs only by warming up)."""
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
    return times[0]


def in_memory_seconds_per_epoch(config: RunConfig) -> list[float]:
    """The compute limit: pictures decoded once (untimed) into one uint8 tensor; per epoch only
    a shuffle, a flip of whole batches, the scaling to floats and the model's own work."""
    assert config.data.augmentations == ("flip",), "this loop makes flips only"
    seed_everything(config.seed)
    configure_cpu_threads(config.device.cpu_threads)
    split = prepare_split(config)
    spec = get_backbone_spec(config.model.backbone)
    size = config.data.image_size
    prepare = build_transform(size, train=False).prepare  # resize + centre crop, as training's
    classes = {name: index for index, name in enumerate(split.class_names)}

    def decoded(records: Sequence[ImageRecord]) -> tuple[torch.Tensor, torch.Tensor]:
        pictures = [prepare(load_image(r.path, max_side=decode_side_for(size))) for r in records]
        labels = [classes[r.class_name] for r in records if r.class_name is not None]
        return torch.stack(pictures), torch.tensor(labels)

    (train_pixels, train_labels), (val_pixels, _) = decoded(split.train), decoded(split.val)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)

    def model_input(pixels: torch.Tensor) -> torch.Tensor:
        scaled = (pixels.float() / 255.0 - mean) / std
        return scaled.contiguous(memory_format=torch.channels_last)

    model = build_classifier(spec.name, len(split.class_names)).to(
        memory_format=torch.channels_last
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.learning_rate)
    batch = config.data.batch_size
    times = []
    for _ in range(config.optim.num_epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_pixels))
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            pixels = train_pixels[chosen]
            flipped = torch.rand(len(chosen)) < 0.5
            pixels = torch.where(flipped.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
            loss = torch.nn.functional.cross_entropy(
                model(model_input(pixels)), train_labels[chosen]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(val_pixels), batch):
                model(model_input(val_pixels[start : start + batch]))
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generated photos")
    parser.add_argument("--pictures", type=int, default=1000, help="generated, in 4 classes")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.epochs, arguments.repeats, arguments.pictures = 2, 1, 400
    with tempfile.TemporaryDirectory() as folder:
        if arguments.data is None:
            # Photo-like JPEGs (400 x 300) so decoding costs what it costs on a camera's folder;
            # enough of them that an epoch's fixed costs do not hide the per-picture ones.
            arguments.data = make_class_folders(
                Path(folder), arguments.pictures // 4, 300, width=400, suffix=".jpg"
            )
        measure(arguments)


def measure(arguments: argparse.Namespace) -> None:
    config = RunConfig(
        data=DataConfig(
            data_dir=str(arguments.data), image_size=arguments.image_size, augmentations=("flip",)
        ),
        optim=OptimConfig(num_epochs=arguments.epochs, schedule="constant"),
        # Full precision on both sides: the hand-written loop has no autocast, and this holds
        # the Trainer's own costs, not bf16's gain (B6 measures that).
        device=DeviceConfig(device="cpu", precision="off", cpu_threads=1),
    ).validate()
    # The textbook loop's first epoch against the Trainer's first (both warm up in it); the
    # in-memory loop's epochs against the Trainer's later ones. Each side's fastest epoch:
    # on this shared machine the same epoch varies by ±10 % from run to run, and other
    # programs only ever add time, so the minimum is the figure least disturbed.
    first_times, later_times, textbook_times, in_memory_times = [], [], [], []
    for _ in range(arguments.repeats):  # alternate so drifting machine load affects all
        textbook_times.append(handwritten_seconds_per_epoch(config))
        in_memory_times += in_memory_seconds_per_epoch(config)
        first, later = trainer_seconds_per_epoch(config)
        first_times.append(first)
        later_times += later
    first, later = min(first_times), min(later_times)
    textbook, in_memory = min(textbook_times), min(in_memory_times)
    print(
        f"data: {arguments.data}  image size: {arguments.image_size}  epochs: {arguments.epochs}  "
        f"repeats: {arguments.repeats}  threads: {torch.get_num_threads()}"
    )
    print(f"{'loop':<28}{'s/epoch':>10}")
    for name, seconds in (
        ("textbook, first epoch", textbook),
        ("in memory (decoded once)", in_memory),
        ("Trainer, first epoch", first),
        ("Trainer, later epochs", later),
    ):
        print(f"{name:<28}{seconds:>10.3f}")
    rows = [
        Row.ratio_at_least(
            "B1 Trainer epoch 1 vs textbook loop (speed)",
            f"{first:.2f} s/epoch",
            f"{textbook:.2f} s/epoch",
            textbook / first,
            TARGET_FIRST_EPOCH,
        ),
        Row.ratio_at_least(
            "B1 Trainer epochs 2+ vs in-memory loop (speed)",
            f"{later:.2f} s/epoch",
            f"{in_memory:.2f} s/epoch",
            in_memory / later,
            TARGET_LATER_EPOCHS,
        ),
    ]
    report(rows, arguments)


if __name__ == "__main__":
    main()
