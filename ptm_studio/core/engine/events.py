"""The events a run fires, declared once: this module is the table.

Every event is a frozen dataclass deriving from :class:`EngineEvent`; deriving registers it, and
its names follow from its class name: ``BatchFinished`` → callback hook ``on_batch_finished`` →
Qt signal ``batch_finished``. The callback dispatch (callbacks.py), the recorder for tests and the
GUI's signals are all made from :data:`EVENT_TYPES`, so adding an event is this declaration plus
the code that fires it and the code that shows it.

Every event fires on the training thread. Payloads are plain values (floats, ints, strings,
paths, tuples, small numpy arrays) so the GUI can carry them across threads safely: never live
tensors. Names follow ``<Noun><PastParticiple>``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # numpy loads when a score is first computed: `ptm-studio --help` needs none
    import numpy as np

STATUS_COMPLETED = "completed"
STATUS_STOPPED = "stopped"
STATUS_FAILED = "failed"

EVENT_TYPES: dict[str, type[EngineEvent]] = {}
"""Every event type by its class name, in the order they are declared."""


def snake_case(name: str) -> str:
    """``BatchFinished`` → ``batch_finished``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True)
class EngineEvent:
    """Base of every event; subclasses register themselves in :data:`EVENT_TYPES`."""

    hook_name: ClassVar[str] = ""
    """The callback method that receives it: ``on_batch_finished``."""
    signal_name: ClassVar[str] = ""
    """The Qt signal the GUI re-emits it as: ``batch_finished``."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ in EVENT_TYPES:
            raise TypeError(f"an event called {cls.__name__} is declared twice")
        cls.signal_name = snake_case(cls.__name__)
        cls.hook_name = f"on_{cls.signal_name}"
        EVENT_TYPES[cls.__name__] = cls


def hook_names() -> frozenset[str]:
    return frozenset(event_type.hook_name for event_type in EVENT_TYPES.values())


@dataclass(frozen=True)
class DownloadProgressed(EngineEvent):
    """Fires while starting weights (ImageNet) download, before TrainingStarted: at most ten
    times a second, and always for the first and the last piece. ``total_bytes`` is 0 when
    the server does not say."""

    done_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class TrainingStarted(EngineEvent):
    """Fires once, after data and model are ready and before the first batch."""

    run_dir: Path | None  # None for a run without a run folder (e.g. a learning-rate test)
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
    # Settings given with a resume and applied, in words ("Epochs: 10 → 20; ..."); see resume.py.
    resume_changes: tuple[str, ...] = ()
    # A time budget's plan, e.g. "Time budget 5 minutes: about 33 s per epoch (measured …), so
    # 8 epochs"; empty without a budget.
    time_plan: str = ""


@dataclass(frozen=True)
class BatchFinished(EngineEvent):
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
class EpochFinished(EngineEvent):
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
    # Pretraining with labels to measure with: a linear classifier's accuracy on the frozen
    # features (a linear probe), what a finetuned head could make of them.
    probe_accuracy: float = float("nan")
    global_step: int = 0
    best_val_accuracy: float = float("nan")
    epochs_without_improvement: int = 0  # epochs since the best one (early stopping counts them)

    @property
    def val_balanced_accuracy(self) -> float:
        """The mean of the classes' recalls: honest when classes are uneven (always answering
        the largest class scores one in the number of classes). NaN without validation."""
        if self.confusion_matrix is None:
            return float("nan")
        import numpy

        from ptm_studio.core.metrics import balanced_accuracy

        return balanced_accuracy(numpy.asarray(self.confusion_matrix))

    @property
    def val_macro_f1(self) -> float:
        """The mean of the classes' F1 scores (NaN without per-class scores)."""
        from ptm_studio.core.metrics import macro_f1

        return macro_f1(self.per_class) if self.per_class else float("nan")


@dataclass(frozen=True)
class EvaluationFinished(EngineEvent):
    """Fires after a validation pass a callback asked for in the middle of an epoch (see
    TrainingControl.request_evaluation); the pass at each epoch's end is in EpochFinished.

    ``epoch`` is fractional (2.5 = halfway through the third epoch) so it can be plotted on
    the same axis as the epochs. Metrics are NaN where they do not apply (pretraining without a
    labelled folder). Evaluating never changes the training run: the random state is kept.
    """

    epoch: float
    global_step: int
    val_loss: float
    val_accuracy: float
    val_top5_accuracy: float
    per_class: tuple[dict[str, float | str | int], ...] = ()
    confusion_matrix: np.ndarray | None = field(default=None, compare=False)


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
class PredictionsReady(EngineEvent):
    """Fires after each validation pass with one record per validation image."""

    epoch: int
    class_names: tuple[str, ...]
    records: tuple[PredictionRecord, ...]


@dataclass(frozen=True)
class PretrainSamplesReady(EngineEvent):
    """Fires after each pretraining epoch with a few pictures as the objective sees them.

    ``kind`` is "reconstruction" (inputs and their reconstructions) or "pair" (the two random
    views of each picture a contrastive objective compares). Images are uint8 ``[N, H, W, 3]``.
    """

    epoch: int
    kind: str
    first_images: np.ndarray = field(compare=False)
    second_images: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class PicturesSkipped(EngineEvent):
    """Fires after TrainingStarted and at an epoch's end whenever more pictures were left out:
    files the scan could not use, and pictures that could not be read any more during the run.
    ``files`` holds every (path, reason) left out so far, not only the new ones."""

    files: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CheckpointSaved(EngineEvent):
    """Fires after a checkpoint has been written completely (atomically)."""

    epoch: int  # from 1: the epoch just completed, or the one under way (a save within it)
    global_step: int
    path: Path
    reason: str  # "epoch", "best", "stopped", or "periodic" (asked for between epoch ends)


@dataclass(frozen=True)
class EarlyStopRequested(EngineEvent):
    """Fires when a callback ended the run before its last epoch (no better validation score
    any more; later a time budget spent, a learning-rate test done), with its reason in words.
    The run has saved and ends as completed."""

    reason: str
    epochs_completed: int
    global_step: int


@dataclass(frozen=True)
class LearningAdvice(EngineEvent):
    """A callback's word to the user about how the run goes, e.g. that it is not learning
    (``kind`` "not_learning"); ``message`` says what was seen, the likely causes and what to try."""

    kind: str
    message: str
    epochs_completed: int
    global_step: int


@dataclass(frozen=True)
class FrozenFeaturesMeasured(EngineEvent):
    """Fires before the first step of a "probe then finetune" run, once its last layer was
    fitted on the starting network's frozen features: what those features are worth alone.

    ``knn_accuracy``: the validation accuracy of a k-nearest-neighbour vote on them;
    ``probe_accuracy``: of the fitted last layer (a linear probe), which is where the
    finetuning starts from. ``penalty``: the L2 strength the fit chose on held-out pictures.
    ``message`` says it for the user."""

    knn_accuracy: float
    probe_accuracy: float
    penalty: float
    seconds: float
    message: str


@dataclass(frozen=True)
class TrainingAdjusted(EngineEvent):
    """Fires when the run changed how it works to keep going, e.g. after running out of memory.

    ``kind`` is "out_of_memory" (the batch is now processed in smaller pieces), "data_loader"
    (pictures are now loaded without background processes), "feature_cache" (a frozen
    network's features do not fit in memory: it runs every epoch) or "decoded_cache" (not every
    decoded picture can be kept: some are read from their files every epoch) or "cpu_threads"
    (another program became busy, or stopped: the CPU thread count changed between epochs).
    ``message`` is for the user.
    """

    kind: str
    message: str
    global_step: int


class Ending(enum.StrEnum):
    """How a run ended, for callers to branch on (never on message text)."""

    COMPLETED = "completed"
    ENDED_EARLY = "ended_early"  # a callback ended it: no improvement any more, a time budget
    STOPPED = "stopped"  # the user pressed Stop (or Ctrl-C): saved, resumable
    STOPPED_BEFORE_TRAINING = "stopped_before_training"
    PAUSED_DISK = "paused_disk"  # a checkpoint could not be written (disk full, read-only)
    PAUSED_DATA_MISSING = "paused_data_missing"  # the picture folder went away (a drive unplugged)
    INVALID_SETTINGS = "invalid_settings"
    DATA_UNUSABLE = "data_unusable"  # the pictures cannot train (too few, unreadable, …)
    DATA_CHANGED = "data_changed"  # a resumed run's classes are not the ones it started with
    WEIGHTS_UNUSABLE = "weights_unusable"  # the starting weights could not be used
    CHECKPOINT_DAMAGED = "checkpoint_damaged"  # see TrainingFinished.previous_checkpoint
    CHECKPOINT_UNUSABLE = "checkpoint_unusable"
    DIVERGED = "diverged"
    OUT_OF_MEMORY = "out_of_memory"
    FILE_ERROR = "file_error"  # reading or writing a file failed (the message names it)
    UNEXPECTED = "unexpected"  # a bug: the details hold the traceback
    RUN_BUSY = "run_busy"  # another trainer holds the run now: nothing was done or written

    @property
    def status(self) -> str:
        """completed, stopped (resumable: nothing was lost) or failed."""
        if self in (Ending.COMPLETED, Ending.ENDED_EARLY):
            return STATUS_COMPLETED
        if self in _STOPPED_ENDINGS:
            return STATUS_STOPPED
        return STATUS_FAILED


_STOPPED_ENDINGS = frozenset(
    {
        Ending.STOPPED,
        Ending.STOPPED_BEFORE_TRAINING,
        Ending.PAUSED_DISK,
        Ending.PAUSED_DATA_MISSING,
    }
)
_DEFAULT_ENDING = {
    STATUS_COMPLETED: Ending.COMPLETED,
    STATUS_STOPPED: Ending.STOPPED,
    STATUS_FAILED: Ending.UNEXPECTED,
}


@dataclass(frozen=True)
class TrainingFinished(EngineEvent):
    """Fires exactly once at the end, whatever happened. ``status`` is completed, stopped or
    failed; ``kind`` says why (an :class:`Ending`; by default the plain one for the status)."""

    status: str
    run_dir: Path | None
    epochs_completed: int
    best_val_accuracy: float
    final_val_accuracy: float
    elapsed_seconds: float
    error_message: str = ""
    error_details: str = ""
    kind: str = ""
    # Pictures left out (unreadable before or during the run), by path.
    skipped_files: tuple[str, ...] = ()
    # With kind "checkpoint_damaged": the intact save before the damaged one, if there is one.
    previous_checkpoint: Path | None = None

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", _DEFAULT_ENDING.get(self.status, Ending.UNEXPECTED))


Event = EngineEvent
"""Any event (kept as the name callers use)."""
