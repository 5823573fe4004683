"""Fake events and sample images so every panel can be opened (and tested) on its own."""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    BatchFinished,
    EpochFinished,
    PredictionRecord,
    PredictionsReady,
    PretrainSamplesReady,
    TrainingFinished,
    TrainingStarted,
)

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

SAMPLE_CLASSES = ("cat", "dog", "<b>bird</b>")


def fake_started(
    run_dir: Path | None = None, *, num_epochs: int = 5, steps: int = 200
) -> TrainingStarted:
    return TrainingStarted(
        run_dir=run_dir or Path(tempfile.gettempdir()) / "ptm-preview-run",
        task="finetune",
        class_names=SAMPLE_CLASSES,
        num_epochs=num_epochs,
        start_epoch=1,
        steps_per_epoch=steps,
        num_train_images=steps * 32,
        num_val_images=steps * 8,
        device_name="CPU",
        device_note="No GPU found: training runs on the processor (slower).",
        parameter_count=123_456,
    )


def fake_batch(
    step: int, *, loss: float = 1.0, steps_per_epoch: int = 200, num_epochs: int = 5
) -> BatchFinished:
    return BatchFinished(
        epoch=(step - 1) // steps_per_epoch + 1,
        batch_index=(step - 1) % steps_per_epoch,
        num_batches=steps_per_epoch,
        global_step=step,
        total_steps=steps_per_epoch * num_epochs,
        loss=loss,
        learning_rate=1e-3
        * (0.5 + 0.5 * math.cos(math.pi * step / (steps_per_epoch * num_epochs))),
        samples_per_second=512.0,
        elapsed_seconds=step * 0.06,
        eta_seconds=max(0.0, (steps_per_epoch * num_epochs - step) * 0.06),
    )


def fake_epoch(epoch: int, *, num_epochs: int = 5) -> EpochFinished:
    return EpochFinished(
        epoch=epoch,
        num_epochs=num_epochs,
        train_loss=1.5 / epoch,
        train_accuracy=min(0.99, 0.4 + 0.1 * epoch),
        val_loss=1.6 / epoch + 0.05,
        val_accuracy=min(0.95, 0.35 + 0.1 * epoch),
        val_top5_accuracy=1.0,
        learning_rate=1e-3,
        epoch_seconds=12.0,
        is_best=True,
    )


def fake_pretrain_epoch(epoch: int, *, num_epochs: int = 5) -> EpochFinished:
    """A pretraining epoch: the spread recovers from a dip; k-NN and probe accuracy climb."""
    return EpochFinished(
        epoch=epoch,
        num_epochs=num_epochs,
        train_loss=4.0 / epoch,
        train_accuracy=math.nan,
        val_loss=math.nan,
        val_accuracy=min(0.9, 0.3 + 0.1 * epoch),
        val_top5_accuracy=math.nan,
        learning_rate=1e-3,
        epoch_seconds=12.0,
        is_best=False,
        embedding_spread=(0.05, 0.2, 0.5, 0.8, 0.9)[(epoch - 1) % 5],
        probe_accuracy=min(0.95, 0.4 + 0.1 * epoch),
    )


def fake_pretrain_samples(
    epoch: int = 1, *, kind: str = "pair", count: int = 8, size: int = 16
) -> PretrainSamplesReady:
    """Coloured gradient pictures and a noisy (or shifted) second row."""
    rng = np.random.default_rng(epoch)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    first = np.zeros((count, size, size, 3), dtype=np.float32)
    for index in range(count):
        first[index, ..., index % 3] = ramp[None, :]
        first[index, ..., (index + 1) % 3] = ramp[:, None]
    if kind == "pair":
        second = np.roll(first, size // 4, axis=2)
    else:
        second = first + rng.normal(0, 40 / epoch, size=first.shape).astype(np.float32)
    return PretrainSamplesReady(
        epoch=epoch,
        kind=kind,
        first_images=first.clip(0, 255).astype(np.uint8),
        second_images=second.clip(0, 255).astype(np.uint8),
    )


def fake_finished(status: str = STATUS_COMPLETED, run_dir: Path | None = None) -> TrainingFinished:
    return TrainingFinished(
        status=status,
        run_dir=run_dir,
        epochs_completed=5,
        best_val_accuracy=0.8,
        final_val_accuracy=0.8,
        elapsed_seconds=60.0,
    )


def fake_predictions(
    paths_by_class: dict[str, list[Path]], *, epoch: int = 1, seed: int = 0
) -> PredictionsReady:
    rng = random.Random(seed)
    class_names = tuple(paths_by_class)
    records = []
    for true_index, name in enumerate(class_names):
        for path in paths_by_class[name]:
            logits = np.array([rng.gauss(0, 1) for _ in class_names]) + (
                2.0 if rng.random() < 0.7 else 0
            ) * (np.arange(len(class_names)) == true_index)
            probabilities = np.exp(logits) / np.exp(logits).sum()
            order = np.argsort(-probabilities)[:5]
            records.append(
                PredictionRecord(
                    path=str(path),
                    true_index=true_index,
                    predicted_index=int(order[0]),
                    confidence=float(probabilities[order[0]]),
                    loss=float(-np.log(probabilities[true_index])),
                    top_indices=tuple(int(i) for i in order),
                    top_probabilities=tuple(float(probabilities[i]) for i in order),
                )
            )
    return PredictionsReady(epoch=epoch, class_names=class_names, records=tuple(records))


def make_sample_images(
    root: Path, *, classes: tuple[str, ...] = SAMPLE_CLASSES, per_class: int = 6, size: int = 16
) -> dict[str, list[Path]]:
    """Write small coloured PNGs, one subfolder per class; returns the paths by class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths: dict[str, list[Path]] = {}
    for class_index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        base = np.zeros((size, size, 3), dtype=np.uint8)
        base[..., class_index % 3] = 200
        paths[name] = []
        for image_index in range(per_class):
            noise = rng.integers(0, 55, size=(size, size, 3), dtype=np.uint8)
            path = folder / f"image_{image_index:03d}.png"
            Image.fromarray(base + noise).save(path)
            paths[name].append(path)
    return paths


def run_preview(build: Callable[[], QWidget], *, size: tuple[int, int] = (900, 600)) -> None:
    """Open one panel in its own window. ``PTM_STUDIO_PREVIEW_QUIT_MS`` closes it (for smoke tests)."""
    import os
    import sys

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ptm_studio.gui import theme

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    theme.apply_style(app)
    widget = build()
    widget.resize(*size)
    widget.show()
    quit_after = int(os.environ.get("PTM_STUDIO_PREVIEW_QUIT_MS", "0") or 0)
    if quit_after > 0:
        QTimer.singleShot(quit_after, app.quit)
    code = app.exec()
    shutdown = getattr(widget, "shutdown", None)
    if shutdown is not None:
        shutdown()
    sys.exit(code)
