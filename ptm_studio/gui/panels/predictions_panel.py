"""PredictionsPanel: the validation images after each epoch, with predicted and true labels.

Filter by class and by correct/mistake, sort by loss ("top losses": the model's worst mistakes
first) or by confidence; click an image to see it large with its top-5 probabilities. The grid is
a QListView over a model: thumbnails load lazily off the GUI thread, so 10k images scroll smoothly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QModelIndex,
    Qt,
    Signal,
    Slot,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.engine.events import PredictionsReady
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.widgets.image_viewer import ImageViewer
from ptm_studio.gui.widgets.job_progress import JobProgress
from ptm_studio.gui.widgets.prediction_grid import (
    CELL,
    CORRECTNESS,
    SORTS,
    THUMBNAIL_SIZE,
    PredictionDelegate,
    PredictionsModel,
    RecordRole,
)
from ptm_studio.gui.widgets.thumbnail_grid import ThumbnailCache, ThumbnailGrid

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.evaluation import Evaluation
    from ptm_studio.core.inference import ModelSource


class PredictionsPanel(QWidget):
    image_opened = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cache = ThumbnailCache(THUMBNAIL_SIZE, self)
        self.model = PredictionsModel(self.cache, self)
        self.grid = ThumbnailGrid(CELL)
        self.grid.setModel(self.model)
        self.grid.setItemDelegate(PredictionDelegate(self.grid))
        self.grid.setToolTip("Click an image to see it large with the model's top guesses.")
        self.grid.clicked.connect(self._on_clicked)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Show only images whose true class is this one.")
        self.class_combo.addItem("All classes", -1)
        self.correct_combo = QComboBox()
        self.correct_combo.setToolTip(
            "Show every image, only the mistakes, or only the correct ones."
        )
        for key, text in CORRECTNESS.items():
            self.correct_combo.addItem(text, key)
        self.sort_combo = QComboBox()
        self.sort_combo.setToolTip(
            "Worst mistakes first shows where the model is most wrong: check those labels."
        )
        for key, text in SORTS.items():
            self.sort_combo.addItem(text, key)
        self.summary_label = QLabel("Predictions appear here after the first epoch.")
        self.summary_label.setTextFormat(Qt.TextFormat.PlainText)
        for combo in (self.class_combo, self.correct_combo, self.sort_combo):
            combo.currentIndexChanged.connect(self._on_view_changed)
        self.heatmap_box = QCheckBox("Heatmaps")
        self.heatmap_box.setToolTip(
            "Lay over each picture where the model looked for its answer (red: most). "
            "Available once the run is evaluated."
        )
        self.heatmap_box.setEnabled(False)
        self.heatmap_box.toggled.connect(self._on_heatmaps_toggled)
        self.heatmap_progress = JobProgress(
            self.model.heatmaps.job, "pictures", starting_text="Loading the model…"
        )
        self.model.heatmaps.job.failed.connect(self._on_heatmaps_failed)
        controls = QHBoxLayout()
        for caption, combo in (
            ("Class:", self.class_combo),
            ("Show:", self.correct_combo),
            ("Order:", self.sort_combo),
        ):
            label = QLabel(caption)
            label.setToolTip(combo.toolTip())
            controls.addWidget(label)
            controls.addWidget(combo)
        controls.addWidget(self.heatmap_box)
        controls.addStretch(1)
        self.pair_label = plain_label()
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.setToolTip("Back to every picture, with the filters above.")
        self.show_all_button.clicked.connect(self.clear_pair)
        pair_bar = QHBoxLayout()
        pair_bar.addWidget(self.pair_label, 1)
        pair_bar.addWidget(self.show_all_button)
        self.pair_bar = QWidget()
        self.pair_bar.setLayout(pair_bar)
        self.pair_bar.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary_label)
        layout.addLayout(controls)
        layout.addWidget(self.heatmap_progress)
        layout.addWidget(self.pair_bar)
        layout.addWidget(self.grid, 1)
        self.viewer: ImageViewer | None = None
        self.model_source: ModelSource | None = None  # the evaluated model, for heatmaps

    @Slot(object)
    def show_predictions(self, event: PredictionsReady) -> None:
        records = event.records
        self.model_source = None  # these are the training's answers, not a saved model's
        self._reset_heatmaps()
        if tuple(event.class_names) != self.model.class_names:
            self._fill_class_filter(tuple(event.class_names))
        self.model.set_predictions(tuple(event.class_names), tuple(records))
        correct = sum(1 for record in records if record.is_correct)
        share = f" ({100 * correct / len(records):.0f} %)" if records else ""
        self.summary_label.setText(
            f"After epoch {event.epoch}: {correct} of {len(records)} validation images correct{share}."
        )

    @Slot(object)
    def show_evaluation(self, evaluation: Evaluation) -> None:
        """The evaluated model's answers, with calibrated confidences, replace the last epoch's."""
        names = tuple(evaluation.class_names)
        if names != self.model.class_names:
            self._fill_class_filter(names)
        self.model.set_predictions(names, tuple(evaluation.records))
        from ptm_studio.core.inference import ModelSource  # torch: loaded after the window is up

        self.model_source = ModelSource(evaluation.checkpoint) if evaluation.checkpoint else None
        self._reset_heatmaps()
        self.pair_bar.hide()
        correct = sum(1 for record in evaluation.records if record.is_correct)
        total = len(evaluation.records)
        where = f" ({evaluation.checkpoint.name} model)" if evaluation.checkpoint else ""
        share = f" ({100 * correct / total:.0f} %)" if total else ""
        self.summary_label.setText(
            f"Evaluated{where}: {correct} of {total} validation images correct{share}; "
            "confidences are calibrated."
        )

    def _reset_heatmaps(self) -> None:
        """Other answers, or another model: the drawn heatmaps no longer belong to them."""
        self.model.heatmaps.clear()
        self.heatmap_box.setEnabled(self.model_source is not None)
        if self.heatmap_box.isChecked():
            self._on_heatmaps_toggled(self.model_source is not None)

    @Slot(bool)
    def _on_heatmaps_toggled(self, checked: bool) -> None:
        if checked and self.model_source is None:
            self.heatmap_box.setChecked(False)
            return
        self.model.show_heatmaps = checked
        if checked and self.model_source is not None:
            self.model.heatmaps.draw(self.model_source, self.model.shown_paths())
        else:
            self.model.heatmaps.job.cancel()
        self.grid.viewport().update()

    @Slot(str, str)
    def _on_heatmaps_failed(self, message: str, _details: str) -> None:
        self.heatmap_box.setChecked(False)
        self.summary_label.setText(f"No heatmaps: {message}")

    @Slot(int, int)
    def show_pair(self, true: int, predicted: int) -> None:
        """Exactly the pictures of class ``true`` the model answered ``predicted``."""
        for combo, value in ((self.class_combo, -1), (self.correct_combo, "all")):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(value)))
            combo.blockSignals(False)
        self._on_view_changed()  # the other filters off, so the grid shows the cell exactly
        self.model.set_pair_filter((true, predicted))
        name_of = self.model.name_of
        count = self.model.rowCount()
        what = (
            f"'{name_of(true)}' pictures the model recognised"
            if true == predicted
            else f"'{name_of(true)}' pictures the model took for '{name_of(predicted)}'"
        )
        self.pair_label.setText(f"Showing the {count} {what}.")
        self.pair_bar.show()

    @Slot()
    def clear_pair(self) -> None:
        self.model.set_pair_filter(None)
        self.pair_bar.hide()

    def _fill_class_filter(self, class_names: tuple[str, ...]) -> None:
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItem("All classes", -1)
        for index, name in enumerate(class_names):
            self.class_combo.addItem(name, index)
        self.class_combo.blockSignals(False)

    @Slot()
    def _on_view_changed(self) -> None:
        self.model.pair_filter = None  # a filter chosen above replaces the matrix cell
        self.pair_bar.hide()
        self.model.set_view(
            class_filter=int(
                self.class_combo.currentData() if self.class_combo.currentData() is not None else -1
            ),
            correctness=self.correct_combo.currentData(),
            sort_key=self.sort_combo.currentData(),
        )
        if self.model.show_heatmaps and self.model_source is not None:
            self.model.heatmaps.draw(self.model_source, self.model.shown_paths())

    @Slot(QModelIndex)
    def _on_clicked(self, index: QModelIndex) -> None:
        record = index.data(RecordRole)
        if record is None:
            return
        self.close_viewer()
        self.viewer = ImageViewer(record, self.model.class_names, self, source=self.model_source)
        self.image_opened.emit(record)
        self.viewer.show()

    def clear(self) -> None:
        self.model.set_predictions((), ())
        self.pair_bar.hide()
        self.summary_label.setText("Predictions appear here after the first epoch.")

    def close_viewer(self) -> None:
        if self.viewer is not None:
            self.viewer.done(0)
            self.viewer = None

    def shutdown(self) -> None:
        self.close_viewer()
        self.model.heatmaps.shutdown()
        self.cache.clear()
        self.cache.wait_for_done()


def _preview() -> None:  # pragma: no cover - manual preview
    import tempfile

    from ptm_studio.gui.panels._preview import fake_predictions, make_sample_images, run_preview

    def build() -> PredictionsPanel:
        folder = Path(tempfile.mkdtemp(prefix="ptm-preview-"))
        panel = PredictionsPanel()
        panel.show_predictions(fake_predictions(make_sample_images(folder, per_class=40, size=96)))
        return panel

    run_preview(build, size=(900, 600))


if __name__ == "__main__":
    _preview()
