"""MainWindow: composes the panels, the toolbar, menus and status bar; remembers choices.

No business logic here: the SettingsModel holds the settings the panels show, the
TrainingSession runs the training job, the RunController checks, starts and resumes runs, and
the panels show the run's events (connected by event type below).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow

from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_STOPPED,
    BatchFinished,
    DownloadProgressed,
    EpochFinished,
    EvaluationFinished,
    PicturesSkipped,
    PredictionsReady,
    PretrainSamplesReady,
    TrainingAdjusted,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.gui import dialogs, theme
from ptm_studio.gui.actions import ActionHandlers, install_actions
from ptm_studio.gui.dataset_summary import DatasetSummary
from ptm_studio.gui.device_probe import DeviceProbe, demo_folder
from ptm_studio.gui.jobs.training import TrainerFactory, TrainingSession
from ptm_studio.gui.panels.dataset_panel import DatasetPanel
from ptm_studio.gui.panels.metrics_panel import MetricsPanel
from ptm_studio.gui.panels.model_panel import ModelPanel
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.panels.predictions_panel import PredictionsPanel
from ptm_studio.gui.panels.pretraining_panel import PretrainingPanel
from ptm_studio.gui.panels.training_panel import TrainingPanel
from ptm_studio.gui.run_controller import RunController
from ptm_studio.gui.run_history import RunHistory
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.window_layout import lay_out_window
from ptm_studio.gui.window_settings import restore_window_settings, save_window_settings

LOGGER = logging.getLogger(__name__)
FINISHED_TEXT = {
    STATUS_COMPLETED: "Training finished.",
    STATUS_STOPPED: "Training stopped and saved. Press Resume to continue it.",
    STATUS_FAILED: "Training failed; see the message for what to do.",
}


class MainWindow(QMainWindow):
    def __init__(
        self,
        *,
        runs_root: Path | None = None,
        trainer_factory: TrainerFactory | None = None,
        use_demo: bool = False,
        initial_folder: Path | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("PTM Studio")
        self.setWindowIcon(theme.icon("app"))
        self.settings = SettingsModel(parent=self)
        self.session = TrainingSession(self, runs_root=runs_root, trainer_factory=trainer_factory)
        self.dataset_panel = DatasetPanel(self.settings)
        self.model_panel = ModelPanel(self.settings)
        self.model_panel.runs_root = runs_root
        self.objective_panel = ObjectivePanel(self.settings)
        self.training_panel = TrainingPanel()
        self.metrics_panel = MetricsPanel()
        self.predictions_panel = PredictionsPanel()
        self.pretraining_panel = PretrainingPanel()
        self.run_controller = RunController(self.session, self.settings, self.dataset_panel, self)
        self.layout_parts = lay_out_window(
            self,
            (self.dataset_panel, self.model_panel, self.objective_panel),
            self.training_panel,
            (self.metrics_panel, self.predictions_panel, self.pretraining_panel),
        )
        self.main_actions = install_actions(self, self._action_handlers())
        self.start_action, self.stop_action = self.main_actions.start, self.main_actions.stop
        self._is_closing_after_stop = False
        self._connect_panels()
        self._connect_run_events()
        self._update_actions()
        folder = restore_window_settings(self, self.layout_parts.splitter, self.settings)
        self._open_first_folder(use_demo, initial_folder or (Path(folder) if folder else None))
        self.device_probe = DeviceProbe(self)
        self.device_probe.device_found.connect(self._on_device_found)
        QTimer.singleShot(200, self._start_device_probe)

    def _action_handlers(self) -> ActionHandlers:
        controller = self.run_controller
        return ActionHandlers(
            choose_folder=self.dataset_panel.choose_folder,
            use_demo=self.use_demo_data,
            start=self.start_training,
            stop=self.stop_training,
            resume=controller.resume_training,
            auto=self.objective_panel.apply_auto,
            compare=controller.compare_with_pretraining,
            show_charts=self.show_charts,
            show_predictions=self.show_predictions_tab,
            show_about=self.show_about,
        )

    def _connect_panels(self) -> None:
        training, controller = self.training_panel, self.run_controller
        training.start_requested.connect(self.start_training)
        training.stop_requested.connect(self.stop_training)
        training.resume_requested.connect(controller.resume_training)
        self.dataset_panel.demo_requested.connect(self.use_demo_data)
        self.dataset_panel.dataset_changed.connect(self._on_dataset_changed)
        self.model_panel.backbone_changed.connect(self.objective_panel.set_backbone)
        self.objective_panel.set_backbone(self.model_panel.current_spec)
        self.session.running_changed.connect(self._on_running_changed)
        controller.run_starting.connect(self._on_run_starting)
        controller.history_loaded.connect(self._show_history)
        controller.resumable_changed.connect(training.set_can_resume)
        controller.resumable_changed.connect(self._update_actions)

    def _connect_run_events(self) -> None:
        """Which panel shows which event of a run: one line each, by event type."""
        session, training = self.session, self.training_panel
        metrics, pretraining = self.metrics_panel, self.pretraining_panel
        session.connect_event(DownloadProgressed, training.show_download)
        for started_slot in (training.start_run, metrics.start_run, pretraining.start_run):
            session.connect_event(TrainingStarted, started_slot)
        session.connect_event(TrainingStarted, self._on_training_started)
        session.connect_event(BatchFinished, training.add_batch)
        session.connect_event(BatchFinished, metrics.add_batch)
        for epoch_slot in (training.add_epoch, metrics.add_epoch, pretraining.add_epoch):
            session.connect_event(EpochFinished, epoch_slot)
        session.connect_event(EvaluationFinished, metrics.add_evaluation)
        session.connect_event(PredictionsReady, self.predictions_panel.show_predictions)
        session.connect_event(PretrainSamplesReady, pretraining.show_samples)
        session.connect_event(PicturesSkipped, training.show_skipped)
        session.connect_event(TrainingAdjusted, training.show_adjustment)
        session.connect_event(TrainingAdjusted, self._on_training_adjusted)
        session.connect_event(TrainingFinished, training.finish_run)
        session.connect_event(TrainingFinished, self._on_training_finished)

    # ------------------------------------------------------------------ verbs
    @Slot()
    def show_charts(self) -> None:
        self.layout_parts.tabs.setCurrentIndex(0)

    @Slot()
    def show_predictions_tab(self) -> None:
        self.layout_parts.tabs.setCurrentIndex(1)

    @Slot()
    def use_demo_data(self) -> None:
        folder = demo_folder()
        if folder is None:
            dialogs.show_info(
                self,
                "Demo images missing",
                "The demo images are not installed with this copy of PTM Studio.",
            )
            return
        self.dataset_panel.set_folder(folder)

    @Slot()
    def start_training(self) -> None:
        """Start a new run with the settings shown, once they are checked."""
        self.run_controller.start_new_run()

    @Slot()
    def stop_training(self) -> None:
        if self.session.is_running:
            self.session.stop()
            self.training_panel.show_stopping()
            self.statusBar().showMessage("Stopping after the current batch and saving…")
            self._update_actions()

    @Slot()
    def show_about(self) -> None:
        from ptm_studio import __version__

        dialogs.show_info(
            self,
            "About PTM Studio",
            f"PTM Studio {__version__}\nTrain image classifiers on your own pictures.",
        )

    # ------------------------------------------------------------------ what happened
    def _open_first_folder(self, use_demo: bool, folder: Path | None) -> None:
        """The folder of the last session, or the demo images (at first launch, or when asked)."""
        if not use_demo and folder is not None and folder.is_dir():
            self.dataset_panel.set_folder(folder)
        elif demo_folder() is not None:
            self.use_demo_data()
            self.statusBar().showMessage(
                "Showing the demo images. Choose your own folder with Ctrl+O.", 15000
            )

    @Slot(bool)
    def _on_run_starting(self, is_resume: bool) -> None:
        if is_resume:
            self.training_panel.mark_resumed()
        else:
            self.predictions_panel.clear()
        self.show_charts()
        self.statusBar().showMessage("Preparing the data and the model…")

    @Slot(object, object)
    def _show_history(self, history: RunHistory, run_dir: Path) -> None:
        self.metrics_panel.show_history(history, run_dir)
        self.pretraining_panel.show_history(history.epochs, run_dir)

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        for panel in (self.dataset_panel, self.model_panel, self.objective_panel):
            panel.setEnabled(not is_running)  # visibly frozen: the run keeps its settings
        self.training_panel.set_running(is_running)
        self._update_actions()
        if not is_running and self._is_closing_after_stop:
            QTimer.singleShot(0, self.close)

    @Slot()
    def _update_actions(self) -> None:
        is_running, actions = self.session.is_running, self.main_actions
        actions.start.setEnabled(not is_running)
        actions.stop.setEnabled(is_running and not self.session.is_stopping)
        actions.resume.setEnabled(not is_running and self.run_controller.resume_dir is not None)
        for action in (actions.open_folder, actions.use_demo, actions.auto):
            action.setEnabled(not is_running)

    @Slot(object)
    def _on_training_started(self, event: TrainingStarted) -> None:
        if event.task == "pretrain":
            self.layout_parts.tabs.setCurrentWidget(self.pretraining_panel)
        self.statusBar().showMessage(
            f"Training on {event.device_name}… Results go to {event.run_dir}"
        )

    @Slot(object)
    def _on_training_adjusted(self, event: TrainingAdjusted) -> None:
        """Not an error, but the user should know: kept in the training panel, here and in the log."""
        LOGGER.warning(
            "training adjusted (%s) at step %d: %s", event.kind, event.global_step, event.message
        )
        self.statusBar().showMessage(f"Adjusted to keep going: {event.message}")

    @Slot(object)
    def _on_training_finished(self, event: TrainingFinished) -> None:
        request = self.session.last_request
        if request is not None:
            config = request.config
            self.objective_panel.remember_speed(
                config.model.backbone, config.data.image_size, self.training_panel.last_speed
            )
        self.statusBar().showMessage(FINISHED_TEXT.get(event.status, event.status))
        self.run_controller.note_finished(event)
        self._update_actions()
        if event.status == STATUS_FAILED and not self._is_closing_after_stop:
            if self.run_controller.offer_previous_checkpoint(event):
                return
            dialogs.show_error(
                self,
                "Training stopped with an error",
                event.error_message or "Unknown error.",
                event.error_details,
            )

    @Slot(object)
    def _on_dataset_changed(self, summary: DatasetSummary | None) -> None:
        if summary is None:
            self.objective_panel.set_dataset(0, [])
            return
        is_demo = demo_folder() is not None and Path(summary.root) == demo_folder()
        where = "the demo images" if is_demo else "your images"
        if summary.is_labeled:
            ready = f"Ready: {where} ({summary.num_images} in {len(summary.classes)} classes). Press Start"
        else:
            ready = (
                f"Ready: {where} ({summary.num_images}, no classes) for pretraining. Press Start"
            )
        extra = ", or choose your own folder (Ctrl+O)." if is_demo else "."
        self.training_panel.show_ready(ready + extra)
        counts = [item.train_count for item in summary.classes]
        self.objective_panel.set_dataset(
            summary.num_train_images, counts, is_labeled=summary.is_labeled
        )
        self.statusBar().showMessage(f"{summary.num_images} images found in {summary.root}.", 5000)

    @Slot()
    def _start_device_probe(self) -> None:
        self.device_probe.start(self.settings.config.device.device)

    @Slot(object)
    def _on_device_found(self, info: object) -> None:
        name, note = str(getattr(info, "name", "")), str(getattr(info, "note", ""))
        self.layout_parts.device_status.setText(f"Device: {name}")
        self.layout_parts.device_status.setToolTip(note)
        self.training_panel.set_device(name, note)
        self.objective_panel.set_device_kind(str(getattr(info, "kind", "cpu")))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.is_running:
            event.ignore()
            if self._is_closing_after_stop or dialogs.ask_yes_no(
                self, "Training is running", "Stop the training, save the model so far, and quit?"
            ):
                self._is_closing_after_stop = True
                self.stop_training()
            return
        save_window_settings(self, self.layout_parts.splitter, self.settings)
        self.dataset_panel.shutdown()
        self.predictions_panel.shutdown()
        self.device_probe.job.wait()
        self.metrics_panel.timer.stop()
        event.accept()
