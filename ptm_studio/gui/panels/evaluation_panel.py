"""EvaluationPanel: what a trained model learned, measured on its validation pictures.

Per-class precision, recall and F1, accuracy with its interval, the confusion matrix (click a
cell to see those pictures in the gallery), the pairs most often confused, plain warnings and
the calibration (a reliability diagram before and after). The measuring is core's
``evaluate_run``, run as a background Job with progress and Cancel; this panel only shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.run_catalog import run_title
from ptm_studio.core.run_models import saved_models
from ptm_studio.gui.jobs.core_work import core_work
from ptm_studio.gui.jobs.job import Job
from ptm_studio.gui.plain_text import plain_label, plain_tooltip
from ptm_studio.gui.widgets.confusion_matrix import ConfusionMatrixView
from ptm_studio.gui.widgets.job_progress import JobProgress
from ptm_studio.gui.widgets.reliability_plot import ReliabilityPlot
from ptm_studio.gui.widgets.run_chooser import ask_for_run

if TYPE_CHECKING:  # torch: these load after the window is up (issue 14, B5)
    from ptm_studio.core.evaluation import Evaluation

EMPTY_TEXT = (
    "Evaluate a trained run to see its score for each class, which classes it mixes up and "
    "how far its confidence can be trusted. A run is evaluated by itself when training ends."
)
PairRole = Qt.ItemDataRole.UserRole + 1


def _heading(text: str) -> QLabel:
    label = plain_label(text, word_wrap=False)
    label.setObjectName("heading")
    return label


class EvaluationPanel(QWidget):
    pictures_chosen = Signal(int, int)
    """(true class, predicted class): the user asked to see those pictures."""
    evaluated = Signal(object)
    """An Evaluation, with calibrated confidences per picture."""
    run_chosen = Signal(object)
    """The Path of a run the user chose to evaluate (the other tabs use it too)."""
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_root: Path | None = None
        self.run_dir: Path | None = None
        self.evaluation: Evaluation | None = None
        self.job = Job("ptm-evaluation", self)
        self.job.succeeded.connect(self.show_evaluation)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.running_changed.connect(self._on_running_changed)
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_source_row())
        self.progress = JobProgress(
            self.job, "validation pictures", starting_text="Finding the validation pictures…"
        )
        layout.addWidget(self.progress)
        self.summary_label = plain_label(EMPTY_TEXT)
        self.summary_label.setObjectName("summary")
        self.warnings_label = plain_label()
        self.warnings_label.setObjectName("warning")
        self.warnings_label.hide()
        self.calibration_label = plain_label()
        self.left_out_label = plain_label()
        self.left_out_label.setObjectName("hint")
        for label in (self.summary_label, self.warnings_label, self.calibration_label):
            layout.addWidget(label)
        layout.addLayout(self._build_results_grid(), 1)
        layout.addWidget(self.left_out_label)
        self._show_results_visible(False)

    # ----------------------------------------------------------------------- building
    def _build_source_row(self) -> QHBoxLayout:
        self.run_label = plain_label("No run yet.", word_wrap=False)
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.setToolTip(
            "Which saved model of the run to measure: the epoch with the best validation score, "
            "or the last one."
        )
        self.choose_button = QPushButton("Choose a run…")
        self.choose_button.setToolTip("Evaluate any run saved earlier (its folder).")
        self.choose_button.clicked.connect(self.choose_run)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip(
            "Measure the model on the run's validation pictures and calibrate its confidence "
            "(saved with the model, so every prediction afterwards shows honest percentages)."
        )
        self.evaluate_button.clicked.connect(self.evaluate)
        self.evaluate_button.setEnabled(False)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Write the model as a folder others can use without PTM Studio (TorchScript, "
            "ONNX, weights), checked to answer as the app does."
        )
        self.export_button.clicked.connect(self.export_requested)
        self.export_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.run_label, 1)
        row.addWidget(QLabel("Model:"))
        row.addWidget(self.checkpoint_combo)
        row.addWidget(self.choose_button)
        row.addWidget(self.evaluate_button)
        row.addWidget(self.export_button)
        return row

    def _build_results_grid(self) -> QGridLayout:
        self.class_table = QTableWidget(0, 4)
        self.class_table.setHorizontalHeaderLabels(["Precision", "Recall", "F1", "Pictures"])
        self.class_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.class_table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.class_table.setToolTip(
            "Precision: of the pictures the model called this class, the share that are.\n"
            "Recall: of the pictures of this class, the share it found.\n"
            "F1: the two together (1 is perfect). Pictures: how many it was measured on."
        )
        self.matrix_view = ConfusionMatrixView()
        self.matrix_view.cell_chosen.connect(self.pictures_chosen)
        self.counts_button = QRadioButton("Counts")
        self.share_button = QRadioButton("Share of each true class")
        self.counts_button.setChecked(True)
        self.counts_button.toggled.connect(self._show_matrix)
        self.confused_list = QListWidget()
        self.confused_list.setToolTip("Click a line to see those pictures.")
        self.confused_list.itemClicked.connect(self._on_confusion_clicked)
        self.reliability_plot = ReliabilityPlot()
        headings = [
            _heading(text)
            for text in (
                "Scores per class",
                "Confusion matrix (rows: true class)",
                "Most often confused",
                "Is its confidence honest?",
            )
        ]
        matrix_header = QHBoxLayout()
        matrix_header.addWidget(headings[1])
        matrix_header.addStretch(1)
        matrix_header.addWidget(self.counts_button)
        matrix_header.addWidget(self.share_button)
        grid = QGridLayout()
        grid.addWidget(headings[0], 0, 0)
        grid.addWidget(self.class_table, 1, 0)
        grid.addLayout(matrix_header, 0, 1)
        grid.addWidget(self.matrix_view, 1, 1)
        grid.addWidget(headings[2], 2, 0)
        grid.addWidget(self.confused_list, 3, 0)
        grid.addWidget(headings[3], 2, 1)
        grid.addWidget(self.reliability_plot, 3, 1)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 3)
        grid.setRowStretch(1, 3)
        grid.setRowStretch(3, 2)
        self._result_widgets: tuple[QWidget, ...] = (
            *headings,
            self.class_table,
            self.matrix_view,
            self.counts_button,
            self.share_button,
            self.confused_list,
            self.reliability_plot,
        )
        return grid

    # ----------------------------------------------------------------------- verbs
    def set_run(self, run_dir: Path | None) -> None:
        """The run to evaluate next (its saved models fill the menu); clears shown results and
        stops an evaluation of the run before (its results would land on this one)."""
        self.job.cancel()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_combo.clear()
        if self.run_dir is None:
            self.run_label.setText("No run yet.")
        else:
            self.run_label.setText(f"Run: {run_title(self.run_dir)}")
            self.run_label.setToolTip(plain_tooltip(str(self.run_dir)))
            for model in saved_models(self.run_dir):
                self.checkpoint_combo.addItem(model.describe(), str(model.folder))
        self.evaluate_button.setEnabled(self.checkpoint_combo.count() > 0)
        self.clear_results()

    @Slot()
    def choose_run(self) -> None:
        start = self.run_dir.parent if self.run_dir else self.runs_root or Path.home()
        folder, problem = ask_for_run(self, start)
        if folder is None:
            if problem:
                self._show_problem(problem)
            return
        self.set_run(folder)
        if self.checkpoint_combo.count() == 0:
            self._show_problem("This run has no saved model yet.")
            return
        self.run_chosen.emit(folder)
        self.evaluate()

    @Slot()
    def evaluate(self) -> None:
        """Measure the chosen model of the run (a running evaluation is replaced)."""
        if self.run_dir is None or self.checkpoint_combo.count() == 0:
            return
        checkpoint = Path(str(self.checkpoint_combo.currentData()))
        from ptm_studio.core.evaluation import evaluate_run  # torch: loaded after the window is up

        self.summary_label.setText(f"Measuring {self.checkpoint_combo.currentText().lower()}…")
        self.job.restart(core_work(evaluate_run, self.run_dir, checkpoint=checkpoint))

    def set_can_export(self, can_export: bool) -> None:
        self.export_button.setEnabled(can_export)

    def clear_results(self) -> None:
        self.evaluation = None
        self.summary_label.setText(EMPTY_TEXT)
        for label in (self.warnings_label, self.calibration_label, self.left_out_label):
            label.clear()
        self.warnings_label.hide()
        self._show_results_visible(False)

    def shutdown(self) -> None:
        self.job.cancel()
        self.job.wait()

    # ----------------------------------------------------------------------- showing
    @Slot(object)
    def show_evaluation(self, evaluation: Evaluation) -> None:
        if not self._belongs_to_this_run(evaluation):
            return  # a late result of an evaluation of the run before
        self.evaluation = evaluation
        self.summary_label.setText(evaluation.summary())
        self.warnings_label.setText("\n".join(f"⚠ {text}" for text in evaluation.warnings))
        self.warnings_label.setVisible(bool(evaluation.warnings))
        self.calibration_label.setText(evaluation.calibration.describe())
        self._show_class_table(evaluation)
        self._show_matrix()
        self._show_confusions(evaluation)
        calibration = evaluation.calibration
        self.reliability_plot.show_bins(
            calibration.bins_before, calibration.bins_after if calibration.is_fitted else None
        )
        left_out = evaluation.left_out
        self.left_out_label.setText(
            f"{len(left_out)} validation picture(s) left out, e.g. {left_out[0][0]}: "
            f"{left_out[0][1]}."
            if left_out
            else ""
        )
        self._show_results_visible(evaluation.num_pictures > 0)
        self.evaluated.emit(evaluation)

    def _belongs_to_this_run(self, evaluation: Evaluation) -> bool:
        checkpoint = evaluation.checkpoint
        if checkpoint is None or self.run_dir is None:
            return checkpoint is None  # measured in memory (tests, previews): always shown
        return checkpoint.resolve().is_relative_to(self.run_dir.resolve())

    def _show_class_table(self, evaluation: Evaluation) -> None:
        table = self.class_table
        table.setRowCount(len(evaluation.per_class))
        table.setVerticalHeaderLabels([scores.name for scores in evaluation.per_class])
        for row, scores in enumerate(evaluation.per_class):
            values = (f"{scores.precision:.2f}", f"{scores.recall:.2f}", f"{scores.f1:.2f}")
            for column, text in enumerate((*values, str(scores.support))):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                table.setItem(row, column, item)

    @Slot()
    def _show_matrix(self) -> None:
        if self.evaluation is not None:
            self.matrix_view.show_matrix(
                self.evaluation.class_names,
                self.evaluation.confusion,
                as_share=self.share_button.isChecked(),
            )

    def _show_confusions(self, evaluation: Evaluation) -> None:
        self.confused_list.clear()
        index = {name: position for position, name in enumerate(evaluation.class_names)}
        lines = evaluation.describe_confusions()
        for (true, predicted, _count), line in zip(evaluation.confused_pairs, lines, strict=True):
            item = QListWidgetItem(line)
            item.setData(PairRole, (index[true], index[predicted]))
            self.confused_list.addItem(item)
        if not lines:
            self.confused_list.addItem("No mix-ups: every picture got its true class.")

    @Slot(QListWidgetItem)
    def _on_confusion_clicked(self, item: QListWidgetItem) -> None:
        pair = item.data(PairRole)
        if pair:
            self.pictures_chosen.emit(*pair)

    def _show_results_visible(self, visible: bool) -> None:
        for widget in self._result_widgets:
            widget.setVisible(visible)

    def _show_problem(self, message: str) -> None:
        self.summary_label.setText(message)

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self._show_problem(f"The evaluation could not be done: {message}")

    @Slot()
    def _on_cancelled(self) -> None:
        self._show_problem("The evaluation was cancelled; nothing was changed.")

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        self.choose_button.setEnabled(not is_running)
        self.checkpoint_combo.setEnabled(not is_running)
        self.evaluate_button.setEnabled(not is_running and self.checkpoint_combo.count() > 0)
