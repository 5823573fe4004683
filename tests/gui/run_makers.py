"""Real tiny runs in the states the window meets: stopped by the user, or interrupted by a
crash (trained with the core Trainer, then their run.json left as a killed process leaves it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import STATUS_STOPPED
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory
from tests.core.training_helpers import StopAt


def make_stopped_run(
    config: RunConfig,
    runs_root: Path,
    *,
    after_epoch: int | None = None,
    at_step: int | None = None,
) -> Path:
    """Train a real tiny run of 3 epochs and stop it after an epoch or at a step (it saves)."""
    stop = StopRequest()
    finished = Trainer.new_run(
        replace_field(config, "optim.num_epochs", 3),
        callbacks=[StopAt(stop, step=at_step, epoch=after_epoch)],
        stop_request=stop,
        runs_root=runs_root,
    ).run()
    assert finished.status == STATUS_STOPPED, finished.error_details
    assert finished.run_dir is not None
    return finished.run_dir


def make_interrupted_run(
    config: RunConfig,
    runs_root: Path,
    *,
    after_epoch: int | None = None,
    at_step: int | None = None,
) -> Path:
    """A stopped run whose run.json says "running" again: what the folder looks like when the
    app was killed after that save."""
    run_dir = make_stopped_run(config, runs_root, after_epoch=after_epoch, at_step=at_step)
    RunDirectory(run_dir).write_status(status="running")
    return run_dir


def choose_tiny_training(window: Any, *, image_size: int = 32, epochs: int = 2) -> None:
    """Set the window's panels, as a user would, to a run that takes a few seconds: the small
    CNN, small pictures, batches of 4."""
    window.model_panel.backbone_combo.setCurrentIndex(
        window.model_panel.backbone_combo.findData("small_cnn")
    )
    objective = window.objective_panel
    objective.image_size_spin.setValue(image_size)
    objective.batch_spin.setValue(4)
    objective.epochs_spin.setValue(epochs)
