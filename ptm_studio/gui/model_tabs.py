"""ModelTabs: the tabs that put a trained model to use (Evaluation, New pictures, Map) and how
they follow the runs: a finished finetuning run is evaluated, then predicts and maps from then
on; a run chosen in the Evaluation tab is used by all three; a new run clears the results of
the one before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from PySide6.QtCore import QEvent, QObject, Slot
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QWidget

from ptm_studio.core.engine.events import STATUS_FAILED, TrainingFinished
from ptm_studio.gui.export_dialog import ExportDialog
from ptm_studio.gui.jobs.training import TrainingSession
from ptm_studio.gui.panels.embedding_panel import EmbeddingPanel
from ptm_studio.gui.panels.evaluation_panel import EvaluationPanel
from ptm_studio.gui.panels.predict_panel import PredictPanel
from ptm_studio.gui.panels.predictions_panel import PredictionsPanel
from ptm_studio.gui.widgets.predicted_pictures import dropped_paths


class ModelTabs(QObject):
    def __init__(
        self,
        gallery: PredictionsPanel,
        show_tab: Callable[[QWidget], None],
        session: TrainingSession,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.show_tab, self.session = show_tab, session
        self.is_closing: Callable[[], bool] = lambda: False  # the window says when it quits
        runs_root = session.runs_root
        self.evaluation_panel = EvaluationPanel()
        self.predict_panel = PredictPanel()
        self.embedding_panel = EmbeddingPanel()
        self.evaluation_panel.runs_root = self.predict_panel.runs_root = runs_root
        evaluation = self.evaluation_panel
        evaluation.run_chosen.connect(self.use_run)
        evaluation.export_requested.connect(self.open_export_dialog)
        self.run_dir: Path | None = None  # the model the tabs use
        self.export_dialog: ExportDialog | None = None
        evaluation.evaluated.connect(gallery.show_evaluation)  # calibrated confidences
        evaluation.pictures_chosen.connect(gallery.show_pair)
        evaluation.pictures_chosen.connect(lambda *_cell: show_tab(gallery))
        # Pictures or a folder dropped anywhere on the window but the images panel (which
        # takes a folder itself) are predicted by the trained model.
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    @property
    def panels(self) -> tuple[QWidget, ...]:
        """The tabs, in their order in the window."""
        return (self.evaluation_panel, self.predict_panel, self.embedding_panel)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.Drop):
            drop = cast(QDropEvent, event)  # a QDragEnterEvent is a QDropEvent too
            paths = dropped_paths(drop)
            if paths:
                drop.acceptProposedAction()
                if kind == QEvent.Type.Drop:
                    self.show_tab(self.predict_panel)
                    self.predict_panel.predict(paths)
                return True
        return super().eventFilter(watched, event)

    @Slot(object)
    def run_finished(self, event: TrainingFinished) -> None:
        """A finetuning run that saved a model is measured (and calibrated) straight away."""
        request = self.session.last_request
        is_finetuning = request is not None and request.config.objective.task == "finetune"
        saved_a_model = event.status != STATUS_FAILED and event.epochs_completed > 0
        if is_finetuning and saved_a_model and event.run_dir is not None and not self.is_closing():
            self.evaluation_panel.set_run(event.run_dir)
            self.evaluation_panel.evaluate()
            self.use_run(event.run_dir)

    @Slot(object)
    def use_run(self, run_dir: Path) -> None:
        """Predict, map and export with this run's model from now on."""
        self.run_dir = run_dir
        self.predict_panel.set_run(run_dir)
        self.embedding_panel.set_run(run_dir)
        self.evaluation_panel.set_can_export(True)

    def forget_run(self, run_dir: Path) -> None:
        """The run was deleted: the tabs stop using its model."""
        if self.run_dir is None or Path(self.run_dir) != Path(run_dir):
            return
        self.run_dir = None
        self.evaluation_panel.set_run(None)
        self.predict_panel.set_run(None)
        self.embedding_panel.set_run(None)
        self.evaluation_panel.set_can_export(False)

    @Slot()
    def open_export_dialog(self) -> None:
        parent = self.evaluation_panel.window()
        if self.run_dir is None:
            self.evaluation_panel.summary_label.setText(
                "Train a model first, or choose a run, to export it."
            )
            return
        dialog = self.export_dialog
        if dialog is not None and dialog.isVisible() and dialog.run_dir == self.run_dir:
            dialog.raise_()  # an export under way is never cancelled by asking again
            dialog.activateWindow()
            return
        if dialog is not None:
            dialog.done(0)
        self.export_dialog = ExportDialog(self.run_dir, parent)
        self.export_dialog.show()

    @Slot()
    def new_run_starting(self) -> None:
        self.evaluation_panel.set_run(None)  # its results belong to the run before

    def shutdown(self) -> None:
        if self.export_dialog is not None:
            self.export_dialog.done(0)
        self.evaluation_panel.shutdown()
        self.predict_panel.shutdown()
        self.embedding_panel.shutdown()
