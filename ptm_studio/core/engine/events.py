"""Immutable snapshots the Trainer fires to callbacks.

Every event fires on the training thread. Payloads are plain values (floats, ints, strings,
paths, tuples, small numpy arrays) so the GUI can carry them across threads safely: never
live tensors. Names follow ``<Noun><PastParticiple>``; the callback hook is ``on_<snake_name>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

STATUS_COMPLETED = "completed"
STATUS_STOPPED = "stopped"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class TrainingStarted:
    """Fires once, after data and model are ready and before the first batch."""

    run_dir: Path
    task: str
    class_names: tuple[str, ...]
    num_epochs: int
    start_epoch: int
    steps_per_epoch: int
    num_train_images: int
    num_val_images: int
    device_name: str
    device_note: str
    parameter_count: int
    # What the model started from, e.g. "ImageNet weights; the head was re-initialised for 5
    # classes" (a head-only mismatch is not an error, but the user should know).
    weights_note: str = ""


@dataclass(frozen=True)
class BatchFinished:
    """Fires after every optimiser step. ``epoch`` counts from 1; ``global_step`` from 1."""

    epoch: int
    batch_index: int
    num_batches: int
    global_step: int
    total_steps: int
    loss: float
    learning_rate: float
    samples_per_second: float
    elapsed_seconds: float
    eta_seconds: float


@dataclass(frozen=True)
class EpochFinished:
    """Fires after the validation pass of each epoch. Metrics are NaN when there is no validation."""

    epoch: int
    num_epochs: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_top5_accuracy: float
    learning_rate: float
    epoch_seconds: float
    is_best: bool
    per_class: tuple[dict[str, float | str | int], ...] = ()
    confusion_matrix: np.ndarray | None = field(default=None, compare=False)
    # Pretraining only: ~1 when embeddings are well spread, towards 0 when they collapse.
    # (For pretraining, val_accuracy is the k-nearest-neighbour accuracy on frozen features.)
    embedding_spread: float = float("nan")


@dataclass(frozen=True)
class PredictionRecord:
    """One validation image as the model saw it after an epoch."""

    path: str
    true_index: int
    predicted_index: int
    confidence: float
    loss: float
    top_indices: tuple[int, ...]
    top_probabilities: tuple[float, ...]

    @property
    def is_correct(self) -> bool:
        return self.true_index == self.predicted_index


@dataclass(frozen=True)
class PredictionsReady:
    """Fires after each validation pass with one record per validation image."""

    epoch: int
    class_names: tuple[str, ...]
    records: tuple[PredictionRecord, ...]


@dataclass(frozen=True)
class PretrainSamplesReady:
    """Fires after each pretraining epoch with a few pictures as the objective sees them.

    ``kind`` is "reconstruction" (inputs and their reconstructions) or "pair" (the two random
    views of each picture a contrastive objective compares). Images are uint8 ``[N, H, W, 3]``.
    """

    epoch: int
    kind: str
    first_images: np.ndarray = field(compare=False)
    second_images: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class CheckpointSaved:
    """Fires after a checkpoint has been written completely (atomically)."""

    epoch: int
    global_step: int
    path: Path
    reason: str  # "epoch", "best", "stopped", "periodic"


@dataclass(frozen=True)
class TrainingAdjusted:
    """Fires when the run changed how it works to keep going, e.g. after running out of memory.

    ``kind`` is "out_of_memory" (the batch is now processed in smaller pieces) or "data_loader"
    (pictures are now loaded without background processes). ``message`` is for the user.
    """

    kind: str
    message: str
    global_step: int


@dataclass(frozen=True)
class TrainingFinished:
    """Fires exactly once at the end, whatever happened. ``status`` is completed, stopped or failed."""

    status: str
    run_dir: Path | None
    epochs_completed: int
    best_val_accuracy: float
    final_val_accuracy: float
    elapsed_seconds: float
    error_message: str = ""
    error_details: str = ""
    error_type: str = ""  # the exception's class name, e.g. "DatasetError"
    # Training pictures that could not be read during the run and were skipped.
    skipped_files: tuple[str, ...] = ()


Event = (
    TrainingStarted
    | BatchFinished
    | EpochFinished
    | PredictionsReady
    | PretrainSamplesReady
    | CheckpointSaved
    | TrainingAdjusted
    | TrainingFinished
)


def hook_name(event: object) -> str:
    """``BatchFinished`` → ``on_batch_finished``: one vocabulary from engine to GUI."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(event).__name__).lower()
    return f"on_{snake}"
