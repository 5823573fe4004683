"""ExportDialog: write a trained model as a folder a colleague can use without PTM Studio, and
show whether every exported file answers as the app does (core's parity check, run by itself
after each export). The export is core's ``export_model`` in a background Job with progress and
Cancel; a file that disagrees with the app is shown as an error, in words."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.export_formats import FORMATS
from ptm_studio.core.locations import unused_folder
from ptm_studio.core.run_catalog import run_title
from ptm_studio.core.run_models import saved_models
from ptm_studio.gui import theme
from ptm_studio.gui.jobs.core_work import core_work
from ptm_studio.gui.jobs.job import Job
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.widgets.job_progress import JobProgress

if TYPE_CHECKING:
    from ptm_studio.core.export import ExportResult

FORMAT_WORDS = {
    "safetensors": ("Weights (.safetensors)", "The trained weights alone, for PyTorch code."),
    "torchscript": ("TorchScript (.pt)", "The whole model, loaded with torch.jit.load."),
    "onnx": ("ONNX (.onnx)", "The whole model for onnxruntime, C++, C#, phones and the web."),
}


def default_destination(run_dir: Path) -> Path:
    """<run>/export, or <run>/export 2 … when that holds files (an empty one will do)."""
    return unused_folder(run_dir, "export", empty_is_unused=True)


class ExportDialog(QDialog):
    def __init__(self, run_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export the model of “{run_title(run_dir)}”")
        self.run_dir = run_dir
        self.export_result: ExportResult | None = None
        self.job = Job("ptm-export", self)
        self.job.succeeded.connect(self.show_result)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.job.running_changed.connect(self._on_running_changed)
        self.model_combo = QComboBox()
        for saved in saved_models(run_dir):
            self.model_combo.addItem(saved.describe(), str(saved.folder))
        self.model_combo.setToolTip(
            "Which saved model of the run to export: the epoch with the best validation "
            "score, or the last one."
        )
        self.folder_edit = QLineEdit(str(default_destination(run_dir)))
        self.folder_edit.setToolTip("A new or empty folder; it is made for you.")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.choose_folder)
        self.format_boxes = {name: QCheckBox(FORMAT_WORDS[name][0]) for name in FORMATS}
        for name, box in self.format_boxes.items():
            box.setChecked(True)
            box.setToolTip(FORMAT_WORDS[name][1])
        self.bake_box = QCheckBox("Build the preparation of pictures into the model")
        self.bake_box.setToolTip(
            "The TorchScript and ONNX files then take pictures already cut to size as 0–255 "
            "pixels and give calibrated probabilities; without it they expect normalised "
            "numbers, as the README in the folder explains."
        )
        self.progress = JobProgress(self.job, "steps", starting_text="Loading the model…")
        self.status_label = plain_label(
            "Each file is checked against the app on a few pictures after it is written."
        )
        self.parity_table = QTableWidget(0, 4)
        self.parity_table.setHorizontalHeaderLabels(
            ["File", "Same answer", "Largest difference", "Verdict"]
        )
        self.parity_table.horizontalHeader().setStretchLastSection(True)
        self.parity_table.verticalHeader().hide()
        self.parity_table.hide()
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.open_button = QPushButton("Open the folder")
        self.open_button.clicked.connect(self.open_folder)
        self.open_button.hide()
        close_button = QPushButton("Close")
        close_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        model_row = QHBoxLayout()
        model_row.addWidget(plain_label("Model:", word_wrap=False))
        model_row.addWidget(self.model_combo)
        model_row.addStretch(1)
        layout.addLayout(model_row)
        folder_row = QHBoxLayout()
        folder_row.addWidget(plain_label("Folder:", word_wrap=False))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        layout.addLayout(folder_row)
        formats_row = QHBoxLayout()
        for box in self.format_boxes.values():
            formats_row.addWidget(box)
        formats_row.addStretch(1)
        layout.addLayout(formats_row)
        layout.addWidget(self.bake_box)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addWidget(self.parity_table, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close_button)
        layout.addLayout(buttons)
        self.resize(760, 420)

    @property
    def destination(self) -> Path:
        return Path(self.folder_edit.text().strip()).expanduser()

    @Slot()
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose where to export", str(self.run_dir))
        if folder:
            self.folder_edit.setText(folder)

    @Slot()
    def export(self) -> None:
        formats = [name for name, box in self.format_boxes.items() if box.isChecked()]
        if not formats:
            self.status_label.setText("Choose at least one kind of file to export.")
            return
        self.parity_table.hide()
        self.open_button.hide()
        self.status_label.setText("Exporting…")
        checkpoint = self.model_combo.currentData()
        from ptm_studio.core.export import export_model  # torch: loaded after the window is up

        self.job.start(
            core_work(
                export_model,
                Path(str(checkpoint)) if checkpoint else self.run_dir,
                self.destination,
                formats=formats,
                bake_preprocessing=self.bake_box.isChecked(),
            )
        )

    @Slot(object)
    def show_result(self, result: ExportResult) -> None:
        self.export_result = result
        self.open_button.show()
        self._fill_parity_table(result)
        if result.is_ok:
            self.status_label.setText(
                f"Exported to {result.folder}. Every file answers as the app does "
                f"({result.pictures_note}). The README in the folder says how to use them."
            )
            self.status_label.setStyleSheet("")
            return
        problems = "\n".join(f"• {problem}" for problem in result.problems)
        self.status_label.setText(f"Exported to {result.folder}, with problems:\n{problems}")
        self.status_label.setStyleSheet(f"color: {theme.INCORRECT_COLOUR.name()}")

    def _fill_parity_table(self, result: ExportResult) -> None:
        table = self.parity_table
        table.setRowCount(len(result.parity))
        for row, report in enumerate(result.parity):
            agreement = f"{report.same_answers} of {report.pictures}" if not report.error else "—"
            difference = f"{report.largest_difference:.1e}" if not report.error else "—"
            verdict = "matches the app" if report.is_ok else "DISAGREES: do not use it"
            for column, text in enumerate((report.file, agreement, difference, verdict)):
                item = QTableWidgetItem(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                if column == 3:
                    item.setForeground(
                        theme.CORRECT_COLOUR if report.is_ok else theme.INCORRECT_COLOUR
                    )
                table.setItem(row, column, item)
        table.resizeColumnsToContents()
        table.setVisible(bool(result.parity))

    @Slot()
    def open_folder(self) -> None:
        if self.export_result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.export_result.folder)))

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self.status_label.setText(f"The model could not be exported: {message}")
        self.status_label.setStyleSheet(f"color: {theme.INCORRECT_COLOUR.name()}")

    @Slot()
    def _on_cancelled(self) -> None:
        self.status_label.setText("The export was cancelled; nothing was kept.")

    @Slot(bool)
    def _on_running_changed(self, is_running: bool) -> None:
        self.export_button.setEnabled(not is_running)
        self.folder_edit.setEnabled(not is_running)
        self.model_combo.setEnabled(not is_running)
        if not is_running and self.export_result is not None:
            # Offer the next free folder: exporting again never meets "not empty".
            self.folder_edit.setText(str(default_destination(self.run_dir)))

    def done(self, result: int) -> None:
        """Closing (button, Esc or the window's cross) cancels an export under way: core
        removes what it had written, and no thread outlives the dialog."""
        self.job.cancel()
        self.job.wait()
        super().done(result)
