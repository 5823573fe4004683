"""MainWindow: composes the panels, the toolbar, menus and status bar; remembers choices (QSettings).

No business logic here: panels hold their own state, TrainingSession owns the run's thread,
RunController checks, starts and resumes runs, window_settings remembers choices.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.events import STATUS_COMPLETED, STATUS_FAILED, STATUS_STOPPED
from ptm_studio.gui import dialogs, theme
from ptm_studio.gui.actions import install_actions
from ptm_studio.gui.device_probe import DeviceProbe, demo_folder
from ptm_studio.gui.panels.dataset_panel import DatasetPanel
from ptm_studio.gui.panels.metrics_panel import MetricsPanel
from ptm_studio.gui.panels.model_panel import ModelPanel
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.panels.predictions_panel import PredictionsPanel
from ptm_studio.gui.panels.pretraining_panel import PretrainingPanel
from ptm_studio.gui.panels.training_panel import TrainingPanel
from ptm_studio.gui.run_controller import RunController
from ptm_studio.gui.session import TrainingSession
from ptm_studio.gui.window_settings import restore_window_settings, save_window_settings
from ptm_studio.gui.workers.training_worker import TrainerFactory

LOGGER = logging.getLogger(__name__)


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
        self.session = TrainingSession(self, runs_root=runs_root, trainer_factory=trainer_factory)
        self.dataset_panel = DatasetPanel()
        self.model_panel = ModelPanel()
        self.model_panel.runs_root = runs_root
        self.objective_panel = ObjectivePanel()
        self.training_panel = TrainingPanel()
        self.metrics_panel = MetricsPanel()
        self.predictions_panel = PredictionsPanel()
        self.pretraining_panel = PretrainingPanel()
        self.run_controller = RunController(self)
        self._is_closing_after_stop = False
        self._build_layout()
        self.main_actions = install_actions(self)
        self.start_action, self.stop_action = self.main_actions.start, self.main_actions.stop
        self._update_actions()
        self._connect()
        restore_window_settings(self, use_demo=use_demo, initial_folder=initial_folder)
        self.device_probe = DeviceProbe(self)
        self.device_probe.device_found.connect(self._on_device_found)
        QTimer.singleShot(200, self._start_device_probe)

    def _build_layout(self) -> None:
        settings_column = QWidget()
        column = QVBoxLayout(settings_column)
        for panel in (self.dataset_panel, self.model_panel, self.objective_panel):
            column.addWidget(panel)
        column.addStretch(0)
        self.settings_scroll = QScrollArea()
        self.settings_scroll.setWidget(settings_column)
        self.settings_scroll.setWidgetResizable(True)
        self.settings_scroll.setMinimumWidth(460)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.metrics_panel, "Charts")
        self.tabs.addTab(self.predictions_panel, "Predictions")
        self.tabs.setTabToolTip(0, "Live curves of the training (Ctrl+1).")
        self.tabs.setTabToolTip(1, "The validation images with the model's answers (Ctrl+2).")
        self.tabs.addTab(self.pretraining_panel, "Pretraining")
        self.tabs.setTabToolTip(2, "How pretraining on unlabelled images is going.")
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self.training_panel)
        right_layout.addWidget(self.tabs, 1)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.settings_scroll)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([500, 900])
        self.setCentralWidget(self.splitter)
        self.device_status = QLabel("Checking the device…")
        self.device_status.setTextFormat(Qt.TextFormat.PlainText)
        self.statusBar().addPermanentWidget(self.device_status)

    @Slot()
    def show_charts(self) -> None:
        self.tabs.setCurrentIndex(0)

    @Slot()
    def show_predictions_tab(self) -> None:
        self.tabs.setCurrentIndex(1)

    def _connect(self) -> None:
        session, training = self.session, self.training_panel
        training.start_requested.connect(self.start_training)
        training.stop_requested.connect(self.stop_training)
        training.resume_requested.connect(self.run_controller.resume_training)
        self.dataset_panel.demo_requested.connect(self.use_demo_data)
        self.dataset_panel.dataset_changed.connect(self._on_dataset_changed)
        self.model_panel.backbone_changed.connect(self.objective_panel.set_backbone)
        session.running_changed.connect(self._on_running_changed)
        session.training_started.connect(training.start_run)
        session.training_started.connect(self.metrics_panel.start_run)
        session.batch_finished.connect(training.add_batch)
        session.batch_finished.connect(self.metrics_panel.add_batch)
        session.epoch_finished.connect(training.add_epoch)
        session.epoch_finished.connect(self.metrics_panel.add_epoch)
        session.predictions_ready.connect(self.predictions_panel.show_predictions)
        session.training_started.connect(self.pretraining_panel.start_run)
        session.epoch_finished.connect(self.pretraining_panel.add_epoch)
        session.pretrain_samples_ready.connect(self.pretraining_panel.show_samples)
        session.training_adjusted.connect(training.show_adjustment)
        session.download_progressed.connect(training.show_download)
        session.training_adjusted.connect(self._on_training_adjusted)
        session.training_finished.connect(training.finish_run)
        session.training_finished.connect(self._on_training_finished)
        session.training_started.connect(self._on_training_started)
        self.objective_panel.set_backbone(self.model_panel.current_spec)

    def current_config(self) -> RunConfig:
        config = RunConfig()
        config = dataclasses.replace(
            config,
            data=dataclasses.replace(config.data, data_dir=self.dataset_panel.folder or None),
        )
        return self.objective_panel.apply_to(self.model_panel.apply_to(config))

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

    def start_run(self, config: RunConfig, *, resume_from: Path | None) -> None:
        """Start a run (or continue one) with these settings; the panels follow its events."""
        if resume_from is None:
            self.predictions_panel.clear()
        self.tabs.setCurrentIndex(0)
        self.statusBar().showMessage("Preparing the data and the model…")
        self.session.start(config, resume_from=resume_from)

    @Slot()
    def stop_training(self) -> None:
        if self.session.is_running:
            self.session.stop()
            self.training_panel.show_stopping()
            self.statusBar().showMessage("Stopping after the current batch and saving…")
            self._update_actions()

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        for panel in (self.dataset_panel, self.model_panel, self.objective_panel):
            panel.setEnabled(not is_running)  # visibly frozen: the run keeps its settings
        self.training_panel.set_running(is_running)
        self._update_actions()
        if not is_running and self._is_closing_after_stop:
            QTimer.singleShot(0, self.close)

    def _update_actions(self) -> None:
        is_running = self.session.is_running
        actions = self.main_actions
        actions.start.setEnabled(not is_running)
        actions.stop.setEnabled(is_running and not self.session.is_stopping)
        actions.resume.setEnabled(not is_running and self.run_controller.resume_dir is not None)
        for action in (actions.open_folder, actions.use_demo, actions.auto):
            action.setEnabled(not is_running)

    @Slot(object)
    def _on_training_started(self, event: Any) -> None:
        if event.task == "pretrain":
            self.tabs.setCurrentWidget(self.pretraining_panel)
        self.statusBar().showMessage(
            f"Training on {event.device_name}… Results go to {event.run_dir}"
        )

    @Slot(object)
    def _on_training_adjusted(self, event: Any) -> None:
        """Not an error, but the user should know: kept in the training panel, here and in the log."""
        LOGGER.warning(
            "training adjusted (%s) at step %d: %s", event.kind, event.global_step, event.message
        )
        self.statusBar().showMessage(f"Adjusted to keep going: {event.message}")

    @Slot(object)
    def _on_training_finished(self, event: Any) -> None:
        config = self.session.last_config
        if config is not None:
            self.objective_panel.remember_speed(
                config.model.backbone, config.data.image_size, self.training_panel.last_speed
            )
        outcome = {
            STATUS_COMPLETED: "Training finished.",
            STATUS_STOPPED: "Training stopped and saved. Press Resume to continue it.",
            STATUS_FAILED: "Training failed; see the message for what to do.",
        }
        self.statusBar().showMessage(outcome.get(event.status, event.status))
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
    def _on_dataset_changed(self, summary: Any) -> None:
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
        counts = [item.total for item in summary.classes]
        self.objective_panel.set_dataset(
            summary.num_train_images, counts, is_labeled=summary.is_labeled
        )
        self.statusBar().showMessage(f"{summary.num_images} images found in {summary.root}.", 5000)

    @Slot()
    def _start_device_probe(self) -> None:
        self.device_probe.start(self.current_config().device.device)

    @Slot(object)
    def _on_device_found(self, info: Any) -> None:
        self.device_status.setText(f"Device: {info.name}")
        self.device_status.setToolTip(info.note)
        self.training_panel.set_device(info.name, info.note)
        self.objective_panel.set_device_kind(info.kind)

    @Slot()
    def show_about(self) -> None:
        from ptm_studio import __version__

        dialogs.show_info(
            self,
            "About PTM Studio",
            f"PTM Studio {__version__}\nTrain image classifiers on your own pictures.",
        )

    def save_settings(self) -> None:
        save_window_settings(self)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.is_running:
            event.ignore()
            if self._is_closing_after_stop or dialogs.ask_yes_no(
                self, "Training is running", "Stop the training, save the model so far, and quit?"
            ):
                self._is_closing_after_stop = True
                self.stop_training()
            return
        self.save_settings()
        self.dataset_panel.shutdown()
        self.predictions_panel.shutdown()
        self.metrics_panel.timer.stop()
        event.accept()
