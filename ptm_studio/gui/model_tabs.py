"""ModelTabs: the tabs that put a trained model to use (Evaluation, New pictures) and how they
follow the runs: a finished finetuning run is evaluated and predicts from then on; a new run
clears the results of the one before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Slot

from ptm_studio.core.engine.events import STATUS_FAILED, TrainingFinished
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
        self.evaluation_panel.runs_root = self.predict_panel.runs_root = runs_root
        evaluation = self.evaluation_panel
        evaluation.evaluated.connect(gallery.show_evaluation)  # calibrated confidences
        evaluation.pictures_chosen.connect(gallery.show_pair)
        evaluation.pictures_chosen.connect(show_gallery)

    def run_finished(self, event: TrainingFinished, task: str) -> None:
        """A finetuning run that saved a model is measured (and calibrated) straight away."""
        saved_a_model = event.status != STATUS_FAILED and event.epochs_completed > 0
        if task == "finetune" and saved_a_model and event.run_dir is not None:
            self.evaluation_panel.set_run(event.run_dir)
            self.evaluation_panel.evaluate()
            self.predict_panel.set_run(event.run_dir)

    @Slot()
    def new_run_starting(self) -> None:
        self.evaluation_panel.set_run(None)  # its results belong to the run before

    def shutdown(self) -> None:
        self.evaluation_panel.shutdown()
        self.predict_panel.shutdown()
