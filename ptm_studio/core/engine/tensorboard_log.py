"""A run's curves as TensorBoard event files, for users who already live in TensorBoard
(``--tensorboard``; the optional ``tensorboardX`` package writes them, tensorboard itself is
not needed to write, only to look: ``tensorboard --logdir <run folder>/tensorboard``).

Per step: the batch's loss and the learning rate; per epoch: training and validation loss and
accuracy (and the pretraining measures). A resumed run goes on in the same folder: TensorBoard
drops the old events from the resumed step on (``purge_step``), so the curves never double.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import BatchFinished, EpochFinished, TrainingFinished

FOLDER_NAME = "tensorboard"
INSTALL_HINT = "pip install 'ptm-studio[tensorboard]' (or: pip install tensorboardX)"
MISSING_MESSAGE = (
    "TensorBoard logs are off for this run: they need the tensorboardX package, which is not "
    f"installed. Install it with: {INSTALL_HINT}. Everything else is saved as usual."
)


def tensorboard_writer_available() -> bool:
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog(Callback):
    """Writes the run's scalars into ``folder`` (made when the first step is written)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._writer: Any = None

    def _writer_from(self, step: int) -> Any:
        if self._writer is None:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.folder), purge_step=step)
        return self._writer

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if math.isfinite(value):
            self._writer_from(step).add_scalar(tag, value, step)

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        self._scalar("train/batch_loss", event.loss, event.global_step)
        self._scalar("train/learning_rate", event.learning_rate, event.global_step)

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        step = event.global_step
        for tag, value in (
            ("train/loss", event.train_loss),
            ("train/accuracy", event.train_accuracy),
            ("val/loss", event.val_loss),
            ("val/accuracy", event.val_accuracy),
            ("val/balanced_accuracy", event.val_balanced_accuracy),
            ("val/top5_accuracy", event.val_top5_accuracy),
            ("pretrain/embedding_spread", event.embedding_spread),
            ("pretrain/probe_accuracy", event.probe_accuracy),
        ):
            self._scalar(tag, float(value), step)
        if self._writer is not None:
            self._writer.flush()

    def on_training_finished(self, event: TrainingFinished, control: TrainingControl) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
