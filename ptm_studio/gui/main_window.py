"""MainWindow: composes the panels, the toolbar, menus and status bar; remembers choices.

No business logic here: the SettingsModel holds the settings the panels show, the
TrainingSession runs the training job, the RunController checks, starts and resumes runs, and
the panels show the run's events (connected by event type below).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QWidget

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine import events
from ptm_studio.core.engine.events import TrainingFinished, TrainingStarted
from ptm_studio.core.run_catalog import RunEntry, describe_runs, saved_predictions
from ptm_studio.core.run_models import saved_models
from ptm_studio.core.runs import RunDirectory
from ptm_studio.gui import dialogs, theme, warmup
from ptm_studio.gui.actions import ActionHandlers, install_actions, update_actions
from ptm_studio.gui.dataset_summary import DatasetSummary
from ptm_studio.gui.device_probe import DeviceProbe
from ptm_studio.gui.jobs.training import TrainerFactory, TrainingSession
from ptm_studio.gui.model_tabs import ModelTabs
from ptm_studio.gui.panels.dataset_panel import DatasetPanel
from ptm_studio.gui.panels.metrics_panel import MetricsPanel
from ptm_studio.gui.panels.model_panel import ModelPanel
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.panels.predictions_panel import PredictionsPanel
from ptm_studio.gui.panels.pretraining_panel import PretrainingPanel
from ptm_studio.gui.panels.runs_compare import RunsCompareDialog
from ptm_studio.gui.panels.runs_panel import RunsPanel
from ptm_studio.gui.panels.training_panel import TrainingPanel
from ptm_studio.gui.run_controller import RunController
from ptm_studio.gui.run_history import RunHistory, load_history
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.status_messages import StatusMessages, start_text
from ptm_studio.gui.window_layout import lay_out_window
from ptm_studio.gui.window_settings import (
    has_saved_settings,
    restore_window_settings,
    save_window_settings,
)


class MainWindow(QMainWindow):
    def __init__(
        self,
        *,
        runs_root: Path | None = None,
        trainer_factory: TrainerFactory | None = None,
        use_demo: bool = False,
        initial_folder: Path | None = None,
        auto_for_a_new_user: bool = False,
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
        self.objective_panel.duration.measuring_enabled = True  # closeEvent waits for it
        self.objective_panel.auto.tests_rate = True  # Auto's learning-rate test: the same
        self.dataset_panel.folder_task.write_task = self.objective_panel.set_task
        self.training_panel = TrainingPanel()
        self.metrics_panel = MetricsPanel()
        self.predictions_panel = PredictionsPanel()
        self.model_tabs = ModelTabs(self.predictions_panel, self.show_tab, self.session, self)
        self.evaluation_panel = self.model_tabs.evaluation_panel
        self.predict_panel = self.model_tabs.predict_panel
        self.pretraining_panel = PretrainingPanel()
        self.runs_panel = RunsPanel(runs_root)
        self.compare_dialog: RunsCompareDialog | None = None
        self.cluster_dialog: QWidget | None = None
        self.run_controller = RunController(self.session, self.settings, self.dataset_panel, self)
        self.model_tabs.is_closing = lambda: self.run_controller.is_closing
        self.layout_parts = lay_out_window(
            self,
            (self.dataset_panel, self.model_panel, self.objective_panel),
            self.training_panel,
            (
                self.metrics_panel,
                self.predictions_panel,
                *self.model_tabs.panels,
                self.pretraining_panel,
                self.runs_panel,
            ),
        )
        self.main_actions = install_actions(self, self._action_handlers())
        self.start_action, self.stop_action = self.main_actions.start, self.main_actions.stop
        self.status = StatusMessages(self.statusBar())
        self._connect_panels()
        self._connect_run_events()
        self._on_readiness_changed(self.dataset_panel.is_ready)  # no images yet: Start waits
        folder = restore_window_settings(self, self.layout_parts.splitter, self.settings)
        if auto_for_a_new_user and not has_saved_settings():  # the app's first launch
            self.objective_panel.auto_for_a_new_user()
        first = initial_folder or (Path(folder) if folder else None)
        if self.dataset_panel.open_first_folder(first, use_demo=use_demo):
            self.status.show("Showing the demo images. Choose your own folder with Ctrl+O.", 15000)
        self.device_probe = DeviceProbe(self)
        for panel in (self.layout_parts, self.training_panel, self.objective_panel):
            self.device_probe.device_found.connect(panel.show_device)
        # With the probe as context: a window closed at once starts no device check.
        device = self.settings.config.device.device
        QTimer.singleShot(200, self.device_probe, partial(self.device_probe.start, device))

    def _action_handlers(self) -> ActionHandlers:
        controller = self.run_controller
        return ActionHandlers(
            choose_folder=self.dataset_panel.choose_folder,
            use_demo=self.dataset_panel.use_demo_images,
            start=self.start_training,
            stop=self.stop_training,
            resume=controller.resume_training,
            auto=self.objective_panel.apply_auto,
            compare=controller.compare_with_pretraining,
            compare_by_labels=controller.compare_label_fractions,
            run_on_cluster=self.open_cluster_dialog,
            show_charts=self.show_charts,
            show_predictions=self.show_predictions_tab,
            show_evaluation=lambda: self.show_tab(self.evaluation_panel),
            show_predict=lambda: self.show_tab(self.predict_panel),
            show_runs=lambda: self.show_tab(self.runs_panel),
            evaluate_run=self.evaluation_panel.choose_run,
            export_model=self.model_tabs.open_export_dialog,
            show_about=lambda: dialogs.show_about(self),
        )

    def _connect_panels(self) -> None:
        training, controller = self.training_panel, self.run_controller
        training.start_requested.connect(self.start_training)
        training.stop_requested.connect(self.stop_training)
        training.resume_requested.connect(controller.resume_training)
        self.dataset_panel.dataset_changed.connect(self._on_dataset_changed)
        self.dataset_panel.dataset_changed.connect(self.status.dataset_changed)
        self.dataset_panel.readiness_changed.connect(self._on_readiness_changed)
        self.model_panel.backbone_changed.connect(self.objective_panel.set_backbone)
        self.objective_panel.set_backbone(self.model_panel.current_spec)
        self.session.running_changed.connect(self._on_running_changed)
        controller.run_starting.connect(self._on_run_starting)
        controller.history_loaded.connect(self._show_history)
        controller.resumable_changed.connect(training.set_can_resume)
        controller.resumable_changed.connect(self._update_actions)
        runs = self.runs_panel
        runs.reopen_requested.connect(self.reopen_run)
        runs.resume_requested.connect(controller.resume_run)
        runs.settings_chosen.connect(self._use_settings)
        runs.compare_requested.connect(self._compare_runs)
        runs.run_deleted.connect(self._forget_run)
        self.session.running_changed.connect(runs.set_running)

    def _connect_run_events(self) -> None:
        """Which panel shows which event of a run: one line each, by event type."""
        session, training, status = self.session, self.training_panel, self.status
        metrics, pretraining = self.metrics_panel, self.pretraining_panel
        connect = session.connect_event  # typed: each slot takes its event's type
        connect(events.DownloadProgressed, training.show_download)
        connect(events.TrainingStarted, training.start_run)
        connect(events.TrainingStarted, metrics.start_run)
        connect(events.TrainingStarted, pretraining.start_run)
        connect(events.TrainingStarted, status.training_started)
        connect(events.TrainingStarted, self._show_pretraining_tab)
        connect(events.TrainingStarted, self._list_new_run)
        connect(events.BatchFinished, training.add_batch)
        connect(events.BatchFinished, metrics.add_batch)
        connect(events.EpochFinished, training.add_epoch)
        connect(events.EpochFinished, metrics.add_epoch)
        connect(events.EpochFinished, pretraining.add_epoch)
        connect(events.EvaluationFinished, metrics.add_evaluation)
        connect(events.FrozenFeaturesMeasured, metrics.show_frozen_features)
        connect(events.FrozenFeaturesMeasured, training.show_frozen_features)
        connect(events.PredictionsReady, self.predictions_panel.show_predictions)
        connect(events.PretrainSamplesReady, pretraining.show_samples)
        connect(events.PicturesSkipped, training.show_skipped)
        connect(events.EarlyStopRequested, training.show_early_stop)
        connect(events.LearningAdvice, training.show_advice)
        connect(events.TrainingAdjusted, training.show_adjustment)
        connect(events.TrainingAdjusted, status.training_adjusted)
        connect(events.TrainingFinished, training.finish_run)
        connect(events.TrainingFinished, status.training_finished)
        connect(events.TrainingFinished, self._remember_speed)
        connect(events.TrainingFinished, self.run_controller.note_finished)
        connect(events.TrainingFinished, self.model_tabs.run_finished)

    # ------------------------------------------------------------------ verbs
    @Slot()
    def show_charts(self) -> None:
        self.layout_parts.tabs.setCurrentIndex(0)

    @Slot()
    def show_predictions_tab(self) -> None:
        self.layout_parts.tabs.setCurrentIndex(1)

    def show_tab(self, panel: QWidget) -> None:
        self.layout_parts.tabs.setCurrentWidget(panel)

    @Slot()
    def start_training(self) -> None:
        """Start a new run with the settings shown, once they are checked."""
        dataset = self.dataset_panel
        if dataset.summary is not None and not dataset.is_ready:  # Start is disabled then
            dialogs.show_info(self, "Cannot start yet", self._start_text())
            return
        self.run_controller.start_new_run()

    @Slot()
    def stop_training(self) -> None:
        if self.session.is_running:
            self.session.stop()
            self.training_panel.show_stopping()
            self.status.show("Stopping after the current batch and saving…")
            self._update_actions()

    @Slot()
    def show_last_run(self) -> None:
        """At launch: the newest finished or stopped run's curves and predictions, as the
        window showed them when it was closed (not evaluated again: nothing runs by itself)."""
        if self.session.is_running:
            return
        try:
            entries = describe_runs(self.session.runs_root)
        except OSError:
            return  # no runs folder yet (or not readable): nothing to show
        shown = [entry for entry in entries if entry.state in ("finished", "stopped")]
        if shown and shown[0].info.epochs_completed > 0:
            self.reopen_run(shown[0], evaluate=False)
            self.status.show(
                f"Showing your last run, “{shown[0].title}”. Every run is in the Runs tab "
                "(Ctrl+5).",
                15000,
            )

    @Slot(object)
    def reopen_run(self, entry: RunEntry, *, evaluate: bool = True) -> None:
        """Show a finished or stopped run again: its curves, its last predictions and (for a
        classifier with a saved model) its evaluation; the model tabs use its model."""
        if self.session.is_running:
            return  # the charts belong to the run that trains now
        path = entry.path
        self._show_history(load_history(RunDirectory(path)), path)
        predictions = saved_predictions(path)
        if predictions is not None:
            self.predictions_panel.show_predictions(predictions)
        else:
            self.predictions_panel.clear()
        if not entry.is_pretraining and saved_models(path):
            self.evaluation_panel.set_run(path)
            if evaluate:
                self.evaluation_panel.evaluate()
            self.model_tabs.use_run(path)
        if entry.can_resume:
            self.run_controller.offer_resume(path)
        if entry.is_pretraining:
            self.show_tab(self.pretraining_panel)
        else:
            self.show_charts()
        self.status.show(f"Showing “{entry.title}” ({entry.state_words}).", 10000)

    @Slot()
    def open_cluster_dialog(self) -> None:
        """The settings shown, as a file and the torchrun command that trains them elsewhere."""
        from ptm_studio.gui.cluster_dialog import ClusterDialog

        config = self.run_controller.validated_config()
        if config is None:
            return
        if self.cluster_dialog is not None:
            self.cluster_dialog.close()
        self.cluster_dialog = ClusterDialog(config, self)
        self.cluster_dialog.show()

    @Slot(object, str)
    def _use_settings(self, config: RunConfig, source: str) -> None:
        """Settings from a run or a file go into the panels; nothing starts until Start."""
        if self.session.is_running:
            return
        self.settings.replace(self.run_controller.as_shown(config))
        self.status.show(
            f"The settings of “{source}” are in the window. Change what you like, then press "
            "Start.",
            15000,
        )

    @Slot(object)
    def _compare_runs(self, entries: list[RunEntry]) -> None:
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        self.compare_dialog = RunsCompareDialog(entries, self)
        self.compare_dialog.show()

    @Slot(object)
    def _forget_run(self, run_dir: Path) -> None:
        self.model_tabs.forget_run(run_dir)
        self.run_controller.forget_run(run_dir)

    @Slot(object)
    def _list_new_run(self, _event: TrainingStarted) -> None:
        self.runs_panel.mark_changed()

    # ------------------------------------------------------------------ what happened
    @Slot(bool)
    def _on_run_starting(self, is_resume: bool) -> None:
        if is_resume:
            self.training_panel.mark_resumed()
        else:
            self.predictions_panel.clear()
        self.model_tabs.new_run_starting()
        self.show_charts()
        self.status.show(
            "Preparing the data and the model…"
            if warmup.is_warm()
            else "Loading PyTorch (the first start after opening takes a few seconds), then "
            "preparing the data and the model…"
        )

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
        if not is_running and self.run_controller.is_closing:
            QTimer.singleShot(0, self.close)

    @Slot()
    def _update_actions(self) -> None:
        update_actions(
            self.main_actions,
            is_running=self.session.is_running,
            is_stopping=self.session.is_stopping,
            can_resume=self.run_controller.resume_dir is not None,
            can_start=self.dataset_panel.is_ready,
        )

    @Slot(object)
    def _show_pretraining_tab(self, event: TrainingStarted) -> None:
        if event.task == "pretrain":
            self.show_tab(self.pretraining_panel)

    @Slot(object)
    def _remember_speed(self, event: TrainingFinished) -> None:
        """The measured speed makes the next estimate for this network and size."""
        if self.session.last_request is not None:
            config = self.session.last_request.config
            speed = self.training_panel.last_speed
            self.objective_panel.remember_speed(
                config.model.backbone, config.data.image_size, speed
            )

    @Slot(object)
    def _on_dataset_changed(self, summary: DatasetSummary | None) -> None:
        if summary is None:
            self.objective_panel.set_dataset(0, [])
            return
        counts = [item.train_count for item in summary.classes]
        self.objective_panel.set_dataset(summary.num_train_images, counts, summary.picture_facts)

    @Slot(bool)
    def _on_readiness_changed(self, is_ready: bool) -> None:
        """Start only for images that can train; the idle line says why it waits."""
        if self.dataset_panel.summary is None:
            self.objective_panel.set_dataset(0, [])  # no estimate from the folder before
            self.status.show("")  # nor its count in the status bar
        self.training_panel.set_can_start(is_ready)
        self.training_panel.show_ready(self._start_text())
        self._update_actions()

    def _start_text(self) -> str:
        dataset = self.dataset_panel
        return start_text(
            dataset.summary,
            dataset.blocker,
            is_checking=dataset.is_checking,
            folder=dataset.folder,
            is_demo=dataset.is_showing_demo,
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.session.is_running:
            event.ignore()
            if self.run_controller.is_closing or dialogs.ask_yes_no(
                self, "Training is running", "Stop the training, save the model so far, and quit?"
            ):
                self.run_controller.is_closing = True
                self.stop_training()
            return
        remembered = self.dataset_panel.folder_task.remembered_config()
        save_window_settings(self, self.layout_parts.splitter, remembered)
        self.dataset_panel.shutdown()
        self.predictions_panel.shutdown()
        self.model_tabs.shutdown()
        self.objective_panel.shutdown()
        self.metrics_panel.timer.stop()
        if self.compare_dialog is not None:
            self.compare_dialog.close()
        event.accept()
