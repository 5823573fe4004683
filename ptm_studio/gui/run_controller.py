"""RunController: starting and resuming runs, and the "did pretraining help?" comparison.

Starting checks the images, the settings and (for ImageNet weights) consent to download first,
and hands the session the scan the user saw, so the run does not look at every picture again.

Resuming takes one path, whether the run was stopped in this session or interrupted by a crash
(offered at the next launch): the run's own settings replace the window's (the panels show them,
frozen while it runs), its logged curves are put back into the charts (``history_loaded``), and
the session continues it with ``Trainer.resume``, which restores model, optimiser, scheduler,
scaler, random state and step from the run's last checkpoint and drops log lines written after
it, so the charts continue without a gap or a repeated point.

It talks to the window only through its signals; it knows the session, the settings model and
where the dataset summary comes from, nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QWidget

from ptm_studio.core.checkpoint_files import (
    CheckpointError,
    intact_previous,
    use_previous_checkpoint,
)
from ptm_studio.core.config import ConfigError, RunConfig, replace_field
from ptm_studio.core.data.manifest import DatasetScan
from ptm_studio.core.engine.events import STATUS_FAILED, STATUS_STOPPED, Ending, TrainingFinished
from ptm_studio.core.locations import default_runs_root
from ptm_studio.core.run_models import read_resume_point
from ptm_studio.core.runs import RunDirectory, trainer_of
from ptm_studio.gui import dialogs, resume_offer
from ptm_studio.gui.dataset_summary import DatasetSummary
from ptm_studio.gui.device_probe import demo_folder
from ptm_studio.gui.jobs.training import TrainingSession
from ptm_studio.gui.panels.model_panel import imagenet_status
from ptm_studio.gui.panels.pretrain_settings import check_folders
from ptm_studio.gui.resume_offer import ResumeChoice, describe_run, interrupted_runs
from ptm_studio.gui.run_history import load_history
from ptm_studio.gui.settings_model import SettingsModel

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


class DatasetSource(Protocol):
    """Where the window's dataset summary comes from (the dataset panel)."""

    @property
    def summary(self) -> DatasetSummary | None: ...


class RunController(QObject):
    """Start, resume (stopped or interrupted runs) and compare."""

    run_starting = Signal(bool)
    """A run is about to start; True when it continues an earlier one."""
    history_loaded = Signal(object, object)
    """(RunHistory, run folder): a resumed run's logged curves, to show before it goes on."""
    resumable_changed = Signal(bool)
    """Whether the Resume button has a stopped run to continue."""

    def __init__(
        self,
        session: TrainingSession,
        settings: SettingsModel,
        dataset: DatasetSource,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self._parent = parent
        self.session, self.settings, self.dataset = session, settings, dataset
        self.resume_dir: Path | None = None
        """The run Resume continues: the last one, when it was stopped."""
        self.comparison_dialog: QWidget | None = None
        self.is_closing = False
        """Set when the window closes after the run stops: no more questions then."""
        self._resume_when_idle: Path | None = None
        session.running_changed.connect(self._on_running_changed)

    # ------------------------------------------------------------------ new runs
    def start_new_run(self) -> None:
        """Start with the settings shown, after checking the images, the settings and consent."""
        if self.session.is_running:
            return
        if self.dataset.summary is None or not self.settings.config.data.data_dir:
            dialogs.show_info(
                self._parent,
                "Choose images first",
                "Choose a folder of images (step 1) before starting.",
            )
            return
        config = self.validated_config()
        if config is not None:
            config = self._with_download_consent(config)
        if config is not None:
            self.start_run(config, resume_from=None)

    def start_run(self, config: RunConfig, *, resume_from: Path | None) -> None:
        """Start (or continue) a run; the panels follow its events."""
        self.run_starting.emit(resume_from is not None)
        self.session.start(config, resume_from=resume_from, scan=self._current_scan(config))

    def _current_scan(self, config: RunConfig) -> DatasetScan | None:
        """The scan the user saw, when it is of the folder this run trains on."""
        summary = self.dataset.summary
        if summary is None or summary.scan is None or not config.data.data_dir:
            return None
        same_folder = summary.scan.root == Path(config.data.data_dir).expanduser().absolute()
        return summary.scan if same_folder else None

    def validated_config(self) -> RunConfig | None:
        """The settings as chosen, or None after telling the user which one needs a look."""
        try:
            config = self.settings.config.validate()
            check_folders(config)
        except ConfigError as error:
            dialogs.show_error(self._parent, "A setting needs a look", describe_config_error(error))
            return None
        return config

    def _with_download_consent(self, config: RunConfig) -> RunConfig | None:
        """ImageNet weights not on this computer yet: ask before anything is downloaded."""
        if config.model.weights != "imagenet" or config.model.allow_download:
            return config
        if imagenet_status(config.model.backbone) != "needs_download":
            return config
        if not dialogs.ask_yes_no(
            self._parent,
            "Download the ImageNet weights?",
            f"The ImageNet weights for {config.model.backbone} are not on this computer yet. "
            "Download them now (needs internet, once)? Choose No to pick other starting weights.",
        ):
            return None
        return replace_field(config, "model.allow_download", True)

    # ------------------------------------------------------------------ resuming
    @Slot()
    def offer_to_resume_interrupted_runs(self) -> None:
        """At launch: offer the newest run a crash interrupted. "Don't resume" marks it stopped
        (nothing is deleted) and offers the next; "Not now" asks again at the next launch."""
        if self.session.is_running:
            return
        try:
            runs = interrupted_runs(self.session.runs_root)
        except OSError:
            LOGGER.exception("could not look for interrupted runs")
            return
        for index, run in enumerate(runs):
            try:
                offer = describe_run(run, other_runs=len(runs) - index - 1)
            except Exception:  # a damaged run is not offered; the others still are
                LOGGER.exception("could not describe the interrupted run %s", run.path)
                continue
            if offer is None:
                continue
            choice = resume_offer.ask_to_resume(self._parent, offer)
            if choice == ResumeChoice.RESUME:
                self.resume_run(run.path)
                return
            if choice == ResumeChoice.LATER:
                return
            self._mark_not_resumed(run.path)

    def _refuse_if_being_trained(self, run_dir: Path) -> bool:
        """True (after saying so) when another window or the command line trains the run now:
        a second trainer would mix its checkpoints and logs with the first one's."""
        try:
            holder = trainer_of(run_dir)
        except OSError:
            return False  # cannot tell here; the run's lock still refuses a second trainer
        if holder is None:
            return False
        dialogs.show_error(
            self._parent,
            "This run is being trained now",
            f"The run in {run_dir} is being trained now, by {holder.describe()}. Wait for "
            "that training to end (or stop it there), then resume it here.",
        )
        return True

    def _mark_not_resumed(self, run_path: Path) -> None:
        if trainer_of(run_path) is not None:
            return  # it was resumed elsewhere while the question was open: it is not ours
        try:
            RunDirectory(run_path).write_status(
                status=STATUS_STOPPED,
                note="Interrupted; at the next start the user chose not to resume it.",
            )
        except OSError as error:
            dialogs.show_error(
                self._parent,
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
        if self.session.is_running or self._refuse_if_being_trained(run_dir):
            return False
        run = RunDirectory(run_dir)
        point = read_resume_point(run_dir)
        try:
            config = run.read_config()
        except (OSError, ValueError) as error:
            dialogs.show_error(
                self._parent,
                "This run cannot be resumed",
                f"The settings of the run in {run_dir} (config.json) could not be read. "
                "Start a new run instead.",
                str(error),
            )
            return False
        if point is None:
            dialogs.show_error(
                self._parent,
                "This run cannot be resumed",
                f"The run in {run_dir} has no complete save to continue from. "
                "Start a new run instead.",
            )
            return False
        self.settings.replace(self.as_shown(config))  # the panels show what the run trains with
        self.history_loaded.emit(load_history(run, point.global_step), run.path)
        self._set_resume_dir(None)
        self.start_run(config, resume_from=run.path)
        return True

    def as_shown(self, config: RunConfig) -> RunConfig:
        """A run's settings as the window shows them: its picture folder named (the demo
        images when it had none), unless that folder is gone: the resume says so, once."""
        shown = config.for_another_run()  # what the next new run starts from
        folder = Path(config.data.data_dir).expanduser() if config.data.data_dir else demo_folder()
        if folder is None or not folder.is_dir():
            return replace_field(shown, "data.data_dir", self.settings.config.data.data_dir)
        return replace_field(shown, "data.data_dir", str(folder))

    @Slot(object)
    def note_finished(self, event: TrainingFinished) -> None:
        """After a run: a stopped one can be resumed with the Resume button; a failed one says
        why (or offers the save before a damaged one), unless the window is closing."""
        is_resumable = event.status == STATUS_STOPPED and event.run_dir is not None
        self._set_resume_dir(Path(event.run_dir) if is_resumable and event.run_dir else None)
        if event.status != STATUS_FAILED or self.is_closing:
            return
        if event.kind == Ending.RUN_BUSY:  # another trainer took it first: nothing was done
            dialogs.show_error(self._parent, "This run is being trained now", event.error_message)
            return
        if not self.offer_previous_checkpoint(event):
            dialogs.show_error(
                self._parent,
                "Training stopped with an error",
                event.error_message or "Unknown error.",
                event.error_details,
            )

    def _set_resume_dir(self, run_dir: Path | None) -> None:
        self.resume_dir = run_dir
        self.resumable_changed.emit(run_dir is not None)

    def offer_resume(self, run_dir: Path) -> None:
        """A stopped run reopened from the runs list: the Resume button continues it."""
        if not self.session.is_running:
            self._set_resume_dir(Path(run_dir))

    def forget_run(self, run_dir: Path) -> None:
        """The run was deleted: Resume no longer offers it."""
        if self.resume_dir is not None and Path(self.resume_dir) == Path(run_dir):
            self._set_resume_dir(None)

    def offer_previous_checkpoint(self, event: TrainingFinished) -> bool:
        """A resume failed because the last save is damaged (fault M3, docs/fault-catalogue.md):
        offer the intact save before it. True when the question was asked (the caller shows no
        error then)."""
        if event.kind != Ending.CHECKPOINT_DAMAGED or event.run_dir is None:
            return False
        last = RunDirectory(event.run_dir).last_checkpoint_dir
        if event.previous_checkpoint is None or intact_previous(last) is None:
            return False
        if self._refuse_if_being_trained(Path(event.run_dir)):
            return True  # its checkpoints are another trainer's now
        question = f"{event.error_message}\n\nGo on from the previous save now?"
        if not dialogs.ask_yes_no(self._parent, "The last save of this run is damaged", question):
            return True
        try:
            use_previous_checkpoint(last)
        except (CheckpointError, OSError) as error:
            dialogs.show_error(
                self._parent,
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
        if self._resume_when_idle is None or self.session.is_running:
            return
        run_dir, self._resume_when_idle = self._resume_when_idle, None
        self.resume_run(run_dir)

    # ------------------------------------------------------------------ comparing
    @Slot()
    def compare_with_pretraining(self) -> None:
        """Ask for a pretraining run, then finetune from it and from random weights side by side."""
        from ptm_studio.gui.comparison_dialog import ComparisonDialog

        self._open_comparison(ComparisonDialog)

    @Slot()
    def compare_label_fractions(self) -> None:
        """The same, at several shares of the labels: the label-fraction curve."""
        from ptm_studio.gui.comparison_dialog import LabelFractionDialog

        self._open_comparison(LabelFractionDialog)

    def _open_comparison(self, dialog_type: Any) -> None:
        if self.session.is_running:
            dialogs.show_info(
                self._parent, "A run is active", "Wait for the current run to end first."
            )
            return
        start_in = str(self.session.runs_root or default_runs_root())
        folder = QFileDialog.getExistingDirectory(
            self._parent, "Choose a pretraining run", start_in
        )
        if not folder:
            return
        config = self.validated_config()
        if config is None:
            return
        dialog = dialog_type(
            replace_field(config, "objective.task", "finetune"),
            Path(folder),
            runs_root=self.session.runs_root,
            parent=self._parent,
        )
        self.comparison_dialog = dialog
        dialog.show()
        dialog.start()
