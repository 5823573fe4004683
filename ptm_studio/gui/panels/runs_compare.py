"""RunsCompareDialog: several runs side by side: their curves overlaid (validation accuracy
and training loss per epoch, one colour per run) and their settings in columns, the ones that
differ marked (and, by default, the only ones shown)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.run_catalog import RunEntry, SettingRow, read_settings, setting_rows
from ptm_studio.core.runs import RunDirectory
from ptm_studio.gui.plain_text import plain_label, plain_tooltip
from ptm_studio.gui.run_history import load_history, logged_number
from ptm_studio.gui.widgets.live_curve import LivePlot

RUN_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
DIFFERS_BRUSH = QBrush(QColor(230, 159, 0, 70))  # a light amber behind a setting that differs

# The settings people know by another name than the field's (the rest: the field in words).
SETTING_LABELS = {
    "data.data_dir": "Pictures",
    "data.image_size": "Image size (px)",
    "data.validation_fraction": "Share kept for checking",
    "data.augmentations": "Augmentations",
    "data.label_fraction": "Share of labels used",
    "model.backbone": "Network",
    "model.weights": "Starting weights",
    "model.weights_path": "Starting weights file or run",
    "model.training_mode": "How the network trains",
    "objective.task": "Task",
    "objective.loss": "Loss",
    "optim.num_epochs": "Epochs",
    "optim.time_budget_minutes": "Time budget (minutes)",
    "optim.schedule": "Learning-rate schedule",
    "device.device": "Device",
    "device.precision": "Precision",
    "seed": "Seed",
}


def setting_label(name: str) -> str:
    """ "optim.learning_rate" → "Learning rate"."""
    if name in SETTING_LABELS:
        return SETTING_LABELS[name]
    words = name.rsplit(".", 1)[-1].replace("_", " ")
    return words[:1].upper() + words[1:]


class RunsCompareDialog(QDialog):
    def __init__(self, entries: Sequence[RunEntry], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Compare {len(entries)} runs")
        self.entries = list(entries)
        self.rows: list[SettingRow] = setting_rows([read_settings(e.path) for e in entries])
        self.accuracy_plot = LivePlot(
            "Validation accuracy", "Epoch", "Accuracy (%)", integer_x=True
        )
        self.loss_plot = LivePlot("Training loss", "Epoch", "Loss", integer_x=True)
        self._draw_curves()
        self.only_differences = QCheckBox("Only the settings that differ")
        self.only_differences.setChecked(True)
        self.only_differences.setToolTip(
            plain_tooltip("Hide the settings that are the same in every run.")
        )
        self.only_differences.toggled.connect(self._show_rows)
        self.settings_table = self._build_settings_table()
        differing = sum(row.differs for row in self.rows)
        self.summary_label = plain_label(
            f"{differing} of {len(self.rows)} settings differ between these runs."
            if differing
            else "These runs were trained with the same settings."
        )
        plots = QWidget()
        plots_layout = QHBoxLayout(plots)
        plots_layout.setContentsMargins(0, 0, 0, 0)
        plots_layout.addWidget(self.accuracy_plot)
        plots_layout.addWidget(self.loss_plot)
        settings = QWidget()
        settings_layout = QVBoxLayout(settings)
        settings_layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.summary_label, 1)
        top.addWidget(self.only_differences)
        settings_layout.addLayout(top)
        settings_layout.addWidget(self.settings_table, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(plots)
        splitter.addWidget(settings)
        splitter.setSizes([380, 320])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        self._show_rows()
        self.resize(1100, 760)

    def _draw_curves(self) -> None:
        for index, entry in enumerate(self.entries):
            colour = QColor(RUN_COLOURS[index % len(RUN_COLOURS)])
            key = str(index)
            self.accuracy_plot.add_curve(key, entry.title, colour, with_symbols=True)
            self.loss_plot.add_curve(key, entry.title, colour, with_symbols=True)
            try:
                epochs = load_history(RunDirectory(entry.path)).epochs
            except (OSError, ValueError):
                epochs = ()  # no curves for a run whose log cannot be read; its settings show
            for record in epochs:
                epoch = logged_number(record, "epoch")
                self.accuracy_plot.append(key, epoch, 100 * logged_number(record, "val_accuracy"))
                self.loss_plot.append(key, epoch, logged_number(record, "train_loss"))
        self.accuracy_plot.refresh()
        self.loss_plot.refresh()

    def _build_settings_table(self) -> QTableWidget:
        table = QTableWidget(len(self.rows), len(self.entries))
        table.setHorizontalHeaderLabels([entry.title for entry in self.entries])
        table.setVerticalHeaderLabels([setting_label(row.name) for row in self.rows])
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        bold = QFont()
        bold.setBold(True)
        for row_index, row in enumerate(self.rows):
            header = table.verticalHeaderItem(row_index)
            if header is not None:
                header.setToolTip(row.name)
                if row.differs:
                    header.setFont(bold)
            for column, value in enumerate(row.values):
                item = QTableWidgetItem(value)
                item.setToolTip(plain_tooltip(f"{row.name} = {value}"))
                if row.differs:
                    item.setBackground(DIFFERS_BRUSH)
                    item.setFont(bold)
                table.setItem(row_index, column, item)
        return table

    @Slot()
    def _show_rows(self) -> None:
        only = self.only_differences.isChecked()
        for index, row in enumerate(self.rows):
            self.settings_table.setRowHidden(index, only and not row.differs)

    def shown_settings(self) -> list[str]:
        """The dotted names of the settings the table shows now (for tests)."""
        return [
            row.name
            for index, row in enumerate(self.rows)
            if not self.settings_table.isRowHidden(index)
        ]
