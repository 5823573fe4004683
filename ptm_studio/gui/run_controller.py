"""RunController: starting and resuming runs, and the "did pretraining help?" comparison.

Starting checks the images, the settings and (for ImageNet weights) consent to download first.

Resuming takes one path, whether the run was stopped in this session or interrupted by a crash
(offered at the next launch): the run's own settings are shown in the panels (frozen while it
runs), its logged curves are put back into the charts, and the session starts it with
``resume_from``. The Trainer restores model, optimiser, scheduler, scaler, random state and step
from the run's last checkpoint and drops log lines written after it, so the charts continue
without a gap or a repeated point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QWidget

from ptm_studio.core.config import ConfigError, RunConfig, replace_field
from ptm_studio.core.engine.events import STATUS_STOPPED
from ptm_studio.core.runs import (
    RunDirectory,
    RunInfo,
    find_interrupted_runs,
    list_runs,
    read_resume_point,
)
from ptm_studio.gui import dialogs, resume_offer
from ptm_studio.gui.device_probe import demo_folder
from ptm_studio.gui.panels.model_panel import imagenet_status
from ptm_studio.gui.panels.pretrain_settings import check_folders
from ptm_studio.gui.resume_offer import ResumeChoice, ResumeOffer

if TYPE_CHECKING:
    from ptm_studio.gui.main_window import MainWindow

LOGGER = logging.getLogger(__name__)

SETTING_NAMES = {
    "data.image_size": "Image size",
    "data.batch_size": "Batch size",
    "data.monitor_dir": "Check progress on",
    "model.weights_path": "Starting weights",
    "objective.label_smoothing": "Label smoothing",
    "objective.temperature": "Temperature",
    "objective.margin": "Margin",
    "objective.projection_dim": "Projection size",
    "optim.learning_rate": "Learning rate",
    "optim.weight_decay": "Weight decay",
    "optim.num_epochs": "Epochs",
    "seed": "Seed",
}
"""The panels' names for settings, so an error names the box the user sees."""


def describe_config_error(error: ConfigError) -> str:
    """The error with the setting named as the panels show it (Temperature, not
    objective.temperature)."""
    return f"{SETTING_NAMES.get(error.field_path, error.field_path)}: {error.message}"


@dataclass(frozen=True)
class RunHistory:
    """A run's logged records up to the checkpoint it resumes from: one per step, one per epoch."""

    batches: tuple[dict[str, Any], ...]
    epochs: tuple[dict[str, Any], ...]


def load_history(run: RunDirectory, up_to_step: int) -> RunHistory:
    """Batch and epoch records with ``global_step <= up_to_step``, in order, without repeats."""
    batches: dict[int, dict[str, Any]] = {}
    epochs: dict[int, dict[str, Any]] = {}
    for record in run.read_metrics():
        step = record.get("global_step")
        if not isinstance(step, int) or step > up_to_step:
            continue  # logged after the checkpoint: the resumed run trains those steps again
        if record.get("type") == "batch":
            batches[step] = record
        elif record.get("type") == "epoch" and isinstance(record.get("epoch"), int):
            epochs[record["epoch"]] = record
    return RunHistory(
        batches=tuple(batches[step] for step in sorted(batches)),
        epochs=tuple(epochs[epoch] for epoch in sorted(epochs)),
    )


def interrupted_runs(runs_root: Path | None) -> list[RunInfo]:
    """Runs a crash interrupted, newest first. Cheap when none is left "running" (the usual
    case): only then are checkpoints opened, which imports torch."""
    if not any(run.status == "running" for run in list_runs(runs_root)):
        return []
    return find_interrupted_runs(runs_root)


def describe_run(run: RunInfo, other_runs: int = 0) -> ResumeOffer | None:
    """The plain facts the resume question shows, or None when the run cannot be resumed."""
    directory = RunDirectory(run.path)
    point = read_resume_point(run.path)
    try:
        config = directory.read_config()
    except (OSError, ValueError):
        return None
    if point is None:
        return None
    status = directory.read_status()
    history = load_history(directory, point.global_step)
    last_epoch_step = max((int(record["global_step"]) for record in history.epochs), default=0)
    return ResumeOffer(
        run_dir=run.path,
        name=run.name,
        task=config.objective.task,
        data_folder=str(status.get("data_dir") or config.data.data_dir or "the demo images"),
        epochs_completed=point.epochs_completed,
        num_epochs=config.optim.num_epochs,
        is_mid_epoch=point.global_step > last_epoch_step,
        global_step=point.global_step,
        saved_at=point.saved_at,
        other_runs=other_runs,
    )


class RunController(QObject):
    """Start, resume (stopped or interrupted runs) and compare; the main window routes to it."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self.resume_dir: Path | None = None
        """The run Resume continues: the last one, when it was stopped."""
        self.comparison_dialog: QWidget | None = None
        self._resume_when_idle: Path | None = None
        window.session.running_changed.connect(self._on_running_changed)

    def start_new_run(self) -> None:
        """Start with the settings shown, after checking the images, the settings and consent."""
        window = self._window
        if window.session.is_running:
            return
        if window.dataset_panel.summary is None or not window.dataset_panel.folder:
            dialogs.show_info(
                window, "Choose images first", "Choose a folder of images (step 1) before starting."
            )
            return
        config = self.validated_config()
        if config is not None:
            config = self._with_download_consent(config)
        if config is not None:
            window.start_run(config, resume_from=None)

    def validated_config(self) -> RunConfig | None:
        """The settings as chosen, or None after telling the user which one needs a look."""
        try:
            config = self._window.current_config().validate()
            check_folders(config)
        except ConfigError as error:
            dialogs.show_error(self._window, "A setting needs a look", describe_config_error(error))
            return None
        return config

    def _with_download_consent(self, config: RunConfig) -> RunConfig | None:
        """ImageNet weights not on this computer yet: ask before anything is downloaded."""
        if config.model.weights != "imagenet" or config.model.allow_download:
            return config
        if imagenet_status(config.model.backbone) != "needs_download":
            return config
        if not dialogs.ask_yes_no(
            self._window,
            "Download the ImageNet weights?",
            f"The ImageNet weights for {config.model.backbone} are not on this computer yet. "
            "Download them now (needs internet, once)? Choose No to pick other starting weights.",
        ):
            return None
        return replace_field(config, "model.allow_download", True)

    @Slot()
    def offer_to_resume_interrupted_runs(self) -> None:
        """At launch: offer the newest run a crash interrupted. "Don't resume" marks it stopped
        (nothing is deleted) and offers the next; "Not now" asks again at the next launch."""
        window = self._window
        if window.session.is_running:
            return
        try:
            runs = interrupted_runs(window.session.runs_root)
        except OSError:
            LOGGER.exception("could not look for interrupted runs")
            return
        for index, run in enumerate(runs):
            offer = describe_run(run, other_runs=len(runs) - index - 1)
            if offer is None:
                continue
            choice = resume_offer.ask_to_resume(window, offer)
            if choice == ResumeChoice.RESUME:
                self.resume_run(run.path)
                return
            if choice == ResumeChoice.LATER:
                return
            self._mark_not_resumed(run.path)

    def _mark_not_resumed(self, run_path: Path) -> None:
        try:
            RunDirectory(run_path).write_status(
                status=STATUS_STOPPED,
                note="Interrupted; at the next start the user chose not to resume it.",
            )
        except OSError as error:
            dialogs.show_error(
                self._window,
                "Could not note your choice",
                f"PTM Studio could not write to {run_path}, so it will ask about this run "
                "again next time. Nothing was deleted.",
                str(error),
            )
        else:
            LOGGER.info("interrupted run %s marked as not to be resumed", run_path)

    @Slot()
    def resume_training(self) -> None:
        """The Resume button: continue the run that was stopped."""
        if self.resume_dir is not None:
            self.resume_run(self.resume_dir)

    def resume_run(self, run_dir: Path) -> bool:
        """Show the run's settings and curves, then continue it from its last checkpoint."""
        window = self._window
        if window.session.is_running:
            return False
        run = RunDirectory(run_dir)
        point = read_resume_point(run_dir)
        try:
            config = run.read_config()
        except (OSError, ValueError) as error:
            dialogs.show_error(
                window,
                "This run cannot be resumed",
                f"The settings of the run in {run_dir} (config.json) could not be read. "
                "Start a new run instead.",
                str(error),
            )
            return False
        if point is None:
            dialogs.show_error(
                window,
                "This run cannot be resumed",
                f"The run in {run_dir} has no complete save to continue from. "
                "Start a new run instead.",
            )
            return False
        self.show_run_settings(config)
        history = load_history(run, point.global_step)
        window.metrics_panel.show_history(history.batches, history.epochs, run.path)
        window.pretraining_panel.show_history(history.epochs, run.path)
        self.resume_dir = None
        window.training_panel.set_can_resume(False)
        window.training_panel.mark_resumed()
        window.start_run(config, resume_from=run.path)
        return True

    def show_run_settings(self, config: RunConfig) -> None:
        """Put a run's own settings into the panels, so the user sees what it trains with."""
        window = self._window
        folder = Path(config.data.data_dir) if config.data.data_dir else demo_folder()
        current = window.dataset_panel.folder
        if folder is not None and folder.is_dir() and (not current or Path(current) != folder):
            window.dataset_panel.set_folder(folder)
        window.model_panel.load_from(config)
        window.objective_panel.load_from(config)

    @Slot(object)
    def note_finished(self, event: Any) -> None:
        """After a run: a stopped one can be resumed with the Resume button."""
        self.resume_dir = (
            Path(event.run_dir) if event.status == STATUS_STOPPED and event.run_dir else None
        )
        self._window.training_panel.set_can_resume(self.resume_dir is not None)

    def offer_previous_checkpoint(self, event: Any) -> bool:
        """A resume failed because the last save is damaged (RELIABILITY M3): offer the intact
        save before it. True when the question was asked (the caller shows no error then)."""
        if event.error_type != "DamagedCheckpointError" or event.run_dir is None:
            return False
        from ptm_studio.core.engine.checkpoints import (
            CheckpointError,
            intact_previous,
            use_previous_checkpoint,
        )

        last = RunDirectory(event.run_dir).last_checkpoint_dir
        if intact_previous(last) is None:
            return False
        question = f"{event.error_message}\n\nGo on from the previous save now?"
        if not dialogs.ask_yes_no(self._window, "The last save of this run is damaged", question):
            return True
        try:
            use_previous_checkpoint(last)
        except (CheckpointError, OSError) as error:
            dialogs.show_error(
                self._window,
                "Could not use the previous save",
                f"PTM Studio could not put the previous save of {event.run_dir} in place. "
                "Nothing was deleted.",
                str(error),
            )
            return True
        # The failed run's thread may still be ending (or may have ended while the question was
        # open): resume once the session is idle, after the window has handled that change.
        self._resume_when_idle = Path(event.run_dir)
        QTimer.singleShot(0, self._resume_if_idle)
        return True

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        if not is_running and self._resume_when_idle is not None:
            QTimer.singleShot(0, self._resume_if_idle)

    @Slot()
    def _resume_if_idle(self) -> None:
        if self._resume_when_idle is None or self._window.session.is_running:
            return
        run_dir, self._resume_when_idle = self._resume_when_idle, None
        self.resume_run(run_dir)

    @Slot()
    def compare_with_pretraining(self) -> None:
        """Ask for a pretraining run, then finetune from it and from random weights side by side."""
        window = self._window
        if window.session.is_running:
            dialogs.show_info(window, "A run is active", "Wait for the current run to end first.")
            return
        from PySide6.QtWidgets import QFileDialog

        from ptm_studio.core.runs import default_runs_root
        from ptm_studio.gui.comparison_dialog import ComparisonDialog

        start_in = str(window.session.runs_root or default_runs_root())
        folder = QFileDialog.getExistingDirectory(window, "Choose a pretraining run", start_in)
        if not folder:
            return
        config = self.validated_config()
        if config is None:
            return
        dialog = ComparisonDialog(
            replace_field(config, "objective.task", "finetune"),
            Path(folder),
            runs_root=window.session.runs_root,
            parent=window,
        )
        self.comparison_dialog = dialog
        dialog.show()
        dialog.start()
