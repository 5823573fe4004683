"""PredictPanel: put the trained model to use on new pictures.

Drop pictures or a folder (or choose them); each gets the model's top guesses with calibrated
probabilities, or "not sure" below the threshold the user sets. The answers can be saved as a
CSV, one row per file (unreadable ones flagged, not dropped). Predicting is core's
``predict_pictures`` as a background Job with progress and Cancel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QModelIndex,
    Slot,
)
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.config import NOT_SURE_BELOW
from ptm_studio.core.run_catalog import run_title
from ptm_studio.core.run_models import saved_models
from ptm_studio.gui import dialogs
from ptm_studio.gui.jobs.core_work import core_work
from ptm_studio.gui.jobs.job import Job
from ptm_studio.gui.plain_text import plain_label, plain_tooltip
from ptm_studio.gui.widgets.job_progress import JobProgress
from ptm_studio.gui.widgets.predicted_pictures import (
    CELL,
    THUMBNAIL_SIZE,
    PredictedPicturesModel,
    dropped_paths,
)
from ptm_studio.gui.widgets.prediction_viewer import PredictionViewer
from ptm_studio.gui.widgets.run_chooser import ask_for_run
from ptm_studio.gui.widgets.thumbnail_grid import ThumbnailCache, ThumbnailGrid

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.inference import ModelSource, PredictedPictures

EMPTY_TEXT = "Drop pictures or a folder here, or choose them, to see what the model says."


class PredictPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.runs_root: Path | None = None
        self.run_dir: Path | None = None
        self.model_source: ModelSource | None = None  # for the heatmaps of the large view
        self.result: PredictedPictures | None = None
        self.viewer: PredictionViewer | None = None
        self.job = Job("ptm-predict", self)
        self.job.succeeded.connect(self.show_result)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.running_changed.connect(self._on_running_changed)
        self.cache = ThumbnailCache(THUMBNAIL_SIZE, self)
        self.model = PredictedPicturesModel(self.cache, self)
        self.grid = ThumbnailGrid(CELL)
        self.grid.setModel(self.model)
        self.grid.setToolTip("Click a picture to see it large with the model's top guesses.")
        self.grid.clicked.connect(self._on_clicked)
        self.progress = JobProgress(self.job, "pictures", starting_text="Loading the model…")
        self.summary_label = plain_label(EMPTY_TEXT)
        self.summary_label.setObjectName("summary")
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_model_row())
        layout.addLayout(self._build_input_row())
        layout.addWidget(self.progress)
        self.heatmap_progress = JobProgress(self.model.heatmaps.job, "pictures")
        self.model.heatmaps.job.failed.connect(self._on_heatmaps_failed)
        layout.addWidget(self.heatmap_progress)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.grid, 1)
        self._update_buttons()

    def _build_model_row(self) -> QHBoxLayout:
        self.run_label = plain_label("No trained model yet: train one, or choose a run.")
        self.choose_run_button = QPushButton("Choose a run…")
        self.choose_run_button.setToolTip("Predict with a model trained earlier (its run folder).")
        self.choose_run_button.clicked.connect(self.choose_run)
        row = QHBoxLayout()
        row.addWidget(self.run_label, 1)
        row.addWidget(self.choose_run_button)
        return row

    def _build_input_row(self) -> QHBoxLayout:
        self.pictures_button = QPushButton("Choose pictures…")
        self.pictures_button.clicked.connect(self.choose_pictures)
        self.folder_button = QPushButton("Choose a folder…")
        self.folder_button.setToolTip("Every picture in the folder and its subfolders.")
        self.folder_button.clicked.connect(self.choose_folder)
        self.top_spin = QSpinBox()
        self.top_spin.setRange(1, 10)
        self.top_spin.setValue(3)
        self.top_spin.setToolTip("How many guesses to keep for each picture.")
        self.threshold_spin = QSpinBox()
        self.threshold_spin.setRange(0, 100)
        self.threshold_spin.setSuffix(" %")
        self.threshold_spin.setValue(round(100 * NOT_SURE_BELOW))
        self.threshold_spin.setToolTip(
            "When the model is less sure than this, the answer is 'not sure' instead of a "
            "class. Confidences are calibrated once the run is evaluated, so 80 % means right "
            "about 8 times in 10."
        )
        self.threshold_spin.valueChanged.connect(self._on_threshold_changed)
        self.heatmap_box = QCheckBox("Heatmaps")
        self.heatmap_box.setToolTip("Lay over each picture where the model looked for its answer.")
        self.heatmap_box.toggled.connect(self._on_heatmaps_toggled)
        self.csv_button = QPushButton("Save as CSV…")
        self.csv_button.setToolTip("One row per file, with its answer and top guesses.")
        self.csv_button.clicked.connect(self.save_csv)
        row = QHBoxLayout()
        row.addWidget(self.pictures_button)
        row.addWidget(self.folder_button)
        row.addStretch(1)
        for caption, spin in (
            ("Guesses:", self.top_spin),
            ("Not sure below:", self.threshold_spin),
        ):
            label = QLabel(caption)
            label.setToolTip(spin.toolTip())
            row.addWidget(label)
            row.addWidget(spin)
        row.addWidget(self.heatmap_box)
        row.addWidget(self.csv_button)
        return row

    # ----------------------------------------------------------------------- verbs
    def set_run(self, run_dir: Path | None) -> None:
        """Predict with this run's model from now on; the answers of the one before go."""
        self.job.cancel()
        self.close_viewer()
        self.result = None
        self.model.heatmaps.clear()
        self.model.set_predictions(())
        self.summary_label.setText(EMPTY_TEXT)
        models = saved_models(run_dir) if run_dir is not None else []
        self.run_dir = Path(run_dir) if run_dir is not None and models else None
        from ptm_studio.core.inference import ModelSource  # torch: loaded after the window is up

        self.model_source = ModelSource(self.run_dir) if self.run_dir is not None else None
        if self.run_dir is None:
            self.run_label.setText("No trained model yet: train one, or choose a run.")
        else:
            self.run_label.setText(
                f"Model: {run_title(self.run_dir)}, {models[0].describe().lower()}"
            )
            self.run_label.setToolTip(plain_tooltip(str(self.run_dir)))
        self._update_buttons()

    @Slot()
    def choose_run(self) -> None:
        start = self.run_dir.parent if self.run_dir else self.runs_root or Path.home()
        folder, problem = ask_for_run(self, start)
        if folder is None:
            if problem:
                self.summary_label.setText(problem)
            return
        self.set_run(folder)
        if self.run_dir is None:
            self.summary_label.setText(f"{folder} has no saved model yet.")

    @Slot()
    def choose_pictures(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Choose pictures to predict",
            str(Path.home()),
            "Pictures (*.jpg *.jpeg *.png *.bmp *.gif *.webp *.tif *.tiff);;All files (*)",
        )
        if files:
            self.predict([Path(file) for file in files])

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of pictures")
        if folder:
            self.predict([Path(folder)])

    def predict(self, inputs: Sequence[Path]) -> None:
        """Predict these files and folders with the run's model (replacing a prediction under way)."""
        if self.run_dir is None:
            self.summary_label.setText("Train a model first, or choose a run to predict with.")
            return
        self.summary_label.setText("Predicting…")
        from ptm_studio.core.inference import (
            predict_pictures,  # torch: loaded after the window is up
        )

        self.job.restart(
            core_work(
                predict_pictures,
                self.run_dir,
                list(inputs),
                top_k=self.top_spin.value(),
            )
        )

    @Slot()
    def save_csv(self) -> None:
        if self.result is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the predictions", str(Path.home() / "predictions.csv"), "CSV (*.csv)"
        )
        if not path:
            return
        from ptm_studio.core.inference import write_predictions_csv

        try:
            write_predictions_csv(path, self.result.predictions, self.threshold)
        except OSError as error:
            dialogs.show_error(self, "Could not save the predictions", f"{path}: {error}")
            return
        self.summary_label.setText(f"Saved {len(self.result.predictions)} rows to {path}.")

    @property
    def threshold(self) -> float:
        return self.threshold_spin.value() / 100

    def close_viewer(self) -> None:
        if self.viewer is not None:
            self.viewer.done(0)
            self.viewer = None

    def shutdown(self) -> None:
        self.close_viewer()
        self.model.heatmaps.shutdown()
        self.job.cancel()
        self.job.wait()
        self.cache.clear()
        self.cache.wait_for_done()

    # ----------------------------------------------------------------------- showing
    @Slot(object)
    def show_result(self, result: PredictedPictures) -> None:
        self.result = result
        self.model.set_threshold(self.threshold)
        self.model.heatmaps.clear()
        self.model.set_predictions(result.predictions)
        self._on_heatmaps_toggled(self.heatmap_box.isChecked())
        self._show_summary()
        self._update_buttons()

    def _show_summary(self) -> None:
        if self.result is None:
            return
        predictions = self.result.predictions
        if not predictions:
            self.summary_label.setText("No pictures were found there.")
            return
        answers = Counter(p.answer(self.threshold) for p in predictions if not p.error)
        unread = sum(1 for p in predictions if p.error)
        counted = ", ".join(f"{count} {answer}" for answer, count in answers.most_common())
        count = len(predictions)
        text = f"{count} picture{'' if count == 1 else 's'}: {counted or 'none readable'}"
        if unread:
            text += f"; {unread} could not be read (hover over them to see why)"
        if not self.result.is_calibrated:
            text += ". These confidences are not calibrated yet: evaluate the run first"
        self.summary_label.setText(text + ".")

    @Slot(bool)
    def _on_heatmaps_toggled(self, checked: bool) -> None:
        self.model.show_heatmaps = checked
        readable = [str(p.path) for p in self.model.predictions if not p.error]
        if checked and self.model_source is not None and readable:
            self.model.heatmaps.draw(self.model_source, readable)
        elif not checked:
            self.model.heatmaps.job.cancel()
        self.grid.viewport().update()

    @Slot(str, str)
    def _on_heatmaps_failed(self, message: str, _details: str) -> None:
        self.heatmap_box.setChecked(False)
        self.summary_label.setText(f"No heatmaps: {message}")

    @Slot(int)
    def _on_threshold_changed(self, _value: int) -> None:
        self.model.set_threshold(self.threshold)
        self._show_summary()

    @Slot(QModelIndex)
    def _on_clicked(self, index: QModelIndex) -> None:
        if self.result is not None and index.isValid():
            self.close_viewer()
            self.viewer = PredictionViewer(
                self.result.predictions,
                index.row(),
                self.threshold,
                self,
                source=self.model_source,
                class_names=self.result.class_names,
            )
            self.viewer.show()

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self.summary_label.setText(f"The pictures could not be predicted: {message}")

    @Slot()
    def _on_cancelled(self) -> None:
        self.summary_label.setText("Prediction cancelled.")

    @Slot(bool)
    def _on_running_changed(self, _is_running: bool) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = not self.job.is_running
        for button in (self.pictures_button, self.folder_button):
            button.setEnabled(idle and self.run_dir is not None)
        self.choose_run_button.setEnabled(idle)
        self.csv_button.setEnabled(idle and self.result is not None)

    # ----------------------------------------------------------------------- drops
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.predict(paths)
