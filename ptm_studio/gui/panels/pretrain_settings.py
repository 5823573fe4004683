"""The pretraining rows of the objective panel: temperature, margin, projection size and the
labelled folder that measures progress, each shown only for the losses it applies to."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from ptm_studio.core.config import ConfigError, RunConfig
from ptm_studio.gui.widgets.settings_binding import show_number, show_text

TWO_VIEW_LOSSES = ("nt_xent", "contrastive_margin", "moco", "vicreg")
TEMPERATURE_TIP = (
    "How sharply the network must tell each picture's twin from the others: lower is stricter. "
    "0.5 is a safe start; 0.1–0.2 often works better with large batches."
)
MARGIN_TIP = (
    "How far apart different pictures are pushed. Larger asks for a clearer separation; "
    "1.0 is a safe start."
)
PROJECTION_TIP = (
    "How many numbers the comparison uses for each picture (the size of the small extra layer "
    "that is dropped after pretraining). 128 suits most data."
)
MEMORY_TIP = (
    "How many recently seen pictures each picture is also compared with, besides those of its "
    "batch. More makes the comparison harder and usually the result better; 1024 suits most "
    "data, 0 is plain Contrastive (SimCLR)."
)
MONITOR_TIP = (
    "Optional. A folder of labelled pictures (one subfolder per class) used only to measure how "
    "well pretraining is going; it is never trained on. Leave it empty to use the training "
    "folder's own classes, if it has any."
)


class PretrainSettings(QObject):
    """Owns the pretraining widgets; the objective panel lays them out in its form."""

    settings_changed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self._parent_widget = parent
        self._form: QFormLayout | None = None
        self.temperature_spin = _double(0.05, 2.0, 0.05, TEMPERATURE_TIP)
        self.margin_spin = _double(0.05, 2.0, 0.1, MARGIN_TIP)
        self.projection_spin = QSpinBox()
        self.projection_spin.setRange(16, 1024)
        self.projection_spin.setSingleStep(16)
        self.projection_spin.setToolTip(PROJECTION_TIP)
        self.memory_spin = QSpinBox()
        self.memory_spin.setRange(0, 65_536)
        self.memory_spin.setSingleStep(256)
        self.memory_spin.setSuffix(" pictures")
        self.memory_spin.setToolTip(MEMORY_TIP)
        self.monitor_edit = QLineEdit()
        self.monitor_edit.setPlaceholderText("Training folder (default)")
        self.monitor_edit.setToolTip(MONITOR_TIP)
        # Tool buttons: push buttons have a wide minimum width that squeezes the folder name.
        self.monitor_browse = _tool_button(
            "Browse…", "Pick a folder of labelled pictures to measure progress with."
        )
        self.monitor_clear = _tool_button(
            "Clear", "Measure progress with the training folder's own classes instead."
        )
        self.monitor_row = QWidget()
        row = QHBoxLayout(self.monitor_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.monitor_edit, 1)
        row.addWidget(self.monitor_browse)
        row.addWidget(self.monitor_clear)
        self.monitor_browse.clicked.connect(self._browse_monitor)
        self.monitor_clear.clicked.connect(self.monitor_edit.clear)
        for spin in (
            self.temperature_spin,
            self.margin_spin,
            self.projection_spin,
            self.memory_spin,
        ):
            spin.valueChanged.connect(self.settings_changed)
        self.monitor_edit.textChanged.connect(self.settings_changed)

    def add_rows(self, form: QFormLayout) -> None:
        """Append the rows to ``form``; :meth:`show_for` then hides those that do not apply."""
        self._form = form
        form.addRow("Temperature:", self.temperature_spin)
        form.addRow("Margin:", self.margin_spin)
        form.addRow("Projection size:", self.projection_spin)
        form.addRow("Memory:", self.memory_spin)
        form.addRow("Check progress on:", self.monitor_row)
        form.labelForField(self.monitor_row).setToolTip(MONITOR_TIP)

    def show_for(self, task: str, loss: str) -> None:
        """Show only the rows this task and loss use."""
        if self._form is None:
            return
        is_pretrain = task == "pretrain"
        for widget, is_shown in (
            (self.temperature_spin, is_pretrain and loss in ("nt_xent", "moco")),
            (self.margin_spin, is_pretrain and loss == "contrastive_margin"),
            (self.projection_spin, is_pretrain and loss in TWO_VIEW_LOSSES),
            (self.memory_spin, is_pretrain and loss == "moco"),
            (self.monitor_row, is_pretrain),
        ):
            self._form.setRowVisible(widget, is_shown)

    @Slot()
    def _browse_monitor(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self._parent_widget,
            "Choose a labelled folder to measure progress with",
            self.monitor_edit.text().strip(),
        )
        if chosen:
            self.monitor_edit.setText(chosen)

    def apply_to(self, config: RunConfig) -> RunConfig:
        """Write the values into ``config``; the folder only for pretraining, where it is used."""
        is_pretrain = config.objective.task == "pretrain"
        objective = dataclasses.replace(
            config.objective,
            temperature=round(self.temperature_spin.value(), 4),
            margin=round(self.margin_spin.value(), 4),
            projection_dim=self.projection_spin.value(),
            memory_size=self.memory_spin.value(),
        )
        data = dataclasses.replace(
            config.data,
            monitor_dir=(self.monitor_edit.text().strip() or None) if is_pretrain else None,
        )
        return dataclasses.replace(config, objective=objective, data=data)

    def show_settings(self, config: RunConfig) -> None:
        show_number(self.temperature_spin, config.objective.temperature)
        show_number(self.margin_spin, config.objective.margin)
        show_number(self.projection_spin, config.objective.projection_dim)
        show_number(self.memory_spin, config.objective.memory_size)
        if config.objective.task == "pretrain":  # else the box keeps the choice for later
            show_text(self.monitor_edit, config.data.monitor_dir or "")


def check_folders(config: RunConfig) -> None:
    """Raise ConfigError when a folder the run needs is missing (the core checks only values)."""
    folder = config.data.monitor_dir
    if config.objective.task != "pretrain" or not folder:
        return
    if not Path(folder).expanduser().is_dir():
        raise ConfigError(
            "data.monitor_dir",
            f"the folder {folder} does not exist. Choose a folder of labelled pictures, "
            "or press Clear to use the training folder's own classes.",
        )


def _tool_button(text: str, tip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tip)
    return button


def _double(low: float, high: float, step: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(2)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    return spin
