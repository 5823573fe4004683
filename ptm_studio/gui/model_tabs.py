"""ModelTabs: the tabs that put a trained model to use (Evaluation, New pictures, Map) and how
they follow the runs: a finished finetuning run is evaluated, then predicts and maps from then
on; a run chosen in the Evaluation tab is used by all three; a new run clears the results of
the one before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from ptm_studio.core.engine.events import STATUS_FAILED, TrainingFinished
from ptm_studio.gui.export_dialog import ExportDialog
from ptm_studio.gui.panels.embedding_panel import EmbeddingPanel
from ptm_studio.gui.panels.evaluation_panel import EvaluationPanel
from ptm_studio.gui.panels.predict_panel import PredictPanel
from ptm_studio.gui.panels.predictions_panel import PredictionsPanel


class ModelTabs(QObject):
    def __init__(
        self,
        gallery: PredictionsPanel,
        show_gallery: Callable[[], None],
        runs_root: Path | None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
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
        evaluation.pictures_chosen.connect(show_gallery)

    def run_finished(self, event: TrainingFinished, task: str) -> None:
        """A finetuning run that saved a model is measured (and calibrated) straight away."""
        saved_a_model = event.status != STATUS_FAILED and event.epochs_completed > 0
        if task == "finetune" and saved_a_model and event.run_dir is not None:
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
