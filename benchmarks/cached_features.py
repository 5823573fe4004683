"""Feature extraction with the frozen backbone's features cached (the app's way) against running
the frozen backbone over every picture each epoch (model.cache_frozen_features off).

Both are the real Trainer on the same pictures (generated: 1,000 in four classes, 600 with
--quick; or --data DIR), split, network and seed, in this one process, alternated. Prints seconds per epoch (the epoch's training and validation, without the
checkpoint write), the first epoch of the cached run apart (it computes the features), and the
best validation accuracy of each. Target (issue 14, B2): later epochs >= 100x faster, accuracy
within seed noise.

    python -m benchmarks.cached_features [--data DIR | --pictures 1000] [--backbone resnet18]
        [--image-size 64] [--epochs 4] [--repeats 1] [--augmentations flip] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.pictures import make_class_folders
from benchmarks.table import Row, add_table_flags, report
from ptm_studio.core.config import DataConfig, DeviceConfig, ModelConfig, OptimConfig, RunConfig
from ptm_studio.core.engine.callbacks import EventRecorder
from ptm_studio.core.engine.events import EpochFinished
from ptm_studio.core.engine.trainer import Trainer

TARGET_RATIO = 100.0


def run_epochs(config: RunConfig) -> tuple[list[float], float]:
    """Seconds of each epoch and the best validation accuracy."""
    recorder = EventRecorder()
    with tempfile.TemporaryDirectory() as runs_root:
        finished = Trainer.new_run(config, callbacks=[recorder], runs_root=Path(runs_root)).run()
    assert finished.status == "completed", finished.error_message
    epochs = recorder.of_type(EpochFinished)
    return [event.epoch_seconds for event in epochs], max(e.val_accuracy for e in epochs)


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
        optim=OptimConfig(num_epochs=arguments.epochs, learning_rate=1e-3),
        device=DeviceConfig(device="cpu"),
        seed=0,
    ).validate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generated pictures")
    parser.add_argument("--pictures", type=int, default=1000, help="generated, in 4 classes")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--augmentations", nargs="*", default=[])
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.epochs = 3  # the first cached epoch computes the features; two to compare
        arguments.pictures = 600
    with tempfile.TemporaryDirectory() as folder:
        if arguments.data is None:
            # Enough pictures that an epoch's fixed costs (events, the validation records) do
            # not hide what the cache saves: the demo's 250 give ~60x, a real folder far more.
            arguments.data = make_class_folders(Path(folder), arguments.pictures // 4)
        measure(arguments)


def measure(arguments: argparse.Namespace) -> None:

    frozen_runs: list[float] = []
    first_cached: list[float] = []
    later_cached: list[float] = []
    accuracy: dict[str, list[float]] = {"frozen backbone each epoch": [], "cached features": []}
    for _ in range(arguments.repeats):
        seconds, best = run_epochs(config_for(arguments, cached=False))
        frozen_runs += seconds
        accuracy["frozen backbone each epoch"].append(best)
        seconds, best = run_epochs(config_for(arguments, cached=True))
        first_cached.append(seconds[0])
        later_cached += seconds[1:]
        accuracy["cached features"].append(best)

    reference = statistics.median(frozen_runs)
    ours = statistics.median(later_cached)
    ratio = reference / ours
    print(
        f"{arguments.backbone} at {arguments.image_size} px, feature extraction, {arguments.data}"
    )
    print(f"{'':34} {'s/epoch':>9}")
    print(f"{'frozen backbone each epoch':34} {reference:9.3f}")
    print(f"{'cached, first epoch (computes)':34} {statistics.median(first_cached):9.3f}")
    print(f"{'cached, later epochs':34} {ours:9.4f}")
    verdict = "pass" if ratio >= TARGET_RATIO else "FAIL"
    print(f"speed-up {ratio:.0f}x (target >= {TARGET_RATIO:.0f}x): {verdict}")
    for name, values in accuracy.items():
        shown = ", ".join(f"{100 * value:.1f} %" for value in values)
        print(f"best validation accuracy, {name}: {shown}")
    row = Row.ratio_at_least(
        f"B2 cached features ({arguments.backbone}, {arguments.image_size} px)",
        f"{1000 * ours:.1f} ms/epoch",
        f"{1000 * reference:.0f} ms/epoch",
        ratio,
        TARGET_RATIO,
    )
    report([row], arguments)


if __name__ == "__main__":
    main()
