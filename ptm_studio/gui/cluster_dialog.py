"""ClusterDialog ("Run on a cluster…"): the settings shown in the window, written to a file, and
the exact torchrun command (and a SLURM script) that trains them on several GPUs or machines,
for the user to copy. Nothing is started from here; the commands come from core."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.cluster_commands import (
    DEFAULT_PORT,
    ClusterPlan,
    cluster_commands,
    write_settings_file,
)
from ptm_studio.core.config import RunConfig
from ptm_studio.gui import dialogs
from ptm_studio.gui.plain_text import plain_label, plain_tooltip

INTRO = (
    "Train with these settings on several graphics cards or machines, with PyTorch's torchrun. "
    "Save the settings file where every machine can read it, then run the command on each "
    "machine (or submit the SLURM script). Every machine needs PTM Studio installed and the "
    "pictures at the same path. The batch size is each step's, shared out between the processes."
)


def choose_settings_path(parent: QWidget, suggested: str) -> str:
    """The file dialog, apart so that tests can answer it."""
    chosen, _ = QFileDialog.getSaveFileName(
        parent, "Save the settings for the cluster", suggested, "Settings (*.json)"
    )
    return chosen


class ClusterDialog(QDialog):
    def __init__(self, config: RunConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run on a cluster")
        self.config = config
        self.processes = self._spin(1, 256, 2, "Processes on each machine: usually its GPUs.")
        self.machines = self._spin(1, 4096, 1, "How many machines train together.")
        self.first_machine = QLineEdit()
        self.first_machine.setPlaceholderText("e.g. node01 or 10.0.0.5")
        self.first_machine.setToolTip(
            plain_tooltip("The address of the first machine: the others meet there.")
        )
        self.port = self._spin(1024, 65535, DEFAULT_PORT, "The port they meet on.")
        self.settings_path = QLineEdit(str(Path.home() / "ptm-studio-cluster.json"))
        self.save_button = QPushButton("Save settings file…")
        self.save_button.clicked.connect(self.save_settings)
        self.problems_label = plain_label("")
        self.problems_label.setObjectName("warning")
        self.torchrun_text = self._code_box(3)
        self.slurm_text = self._code_box(12)
        self._build()
        for box in (self.processes, self.machines, self.port):
            box.valueChanged.connect(self.update_commands)
        self.first_machine.textChanged.connect(self.update_commands)
        self.settings_path.textChanged.connect(self.update_commands)
        self.update_commands()
        self.resize(860, 640)

    def _build(self) -> None:
        form = QFormLayout()
        form.addRow("Processes per machine:", self.processes)
        form.addRow("Machines:", self.machines)
        form.addRow("First machine:", self.first_machine)
        form.addRow("Port:", self.port)
        settings_row = QHBoxLayout()
        settings_row.addWidget(self.settings_path, 1)
        settings_row.addWidget(self.save_button)
        form.addRow("Settings file:", settings_row)
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label(INTRO))
        layout.addLayout(form)
        layout.addWidget(self.problems_label)
        for title, box in (
            ("Command (on each machine):", self.torchrun_text),
            ("SLURM script:", self.slurm_text),
        ):
            row = QHBoxLayout()
            row.addWidget(plain_label(title), 1)
            copy = QPushButton("Copy")
            copy.setToolTip(plain_tooltip("Copy to the clipboard."))
            copy.clicked.connect(lambda _checked=False, source=box: self.copy(source))
            row.addWidget(copy)
            layout.addLayout(row)
            layout.addWidget(box)
        layout.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
        box = QSpinBox()
        box.setRange(low, high)
        box.setValue(value)
        box.setToolTip(plain_tooltip(tip))
        return box

    @staticmethod
    def _code_box(lines: int) -> QPlainTextEdit:
        box = QPlainTextEdit()
        box.setReadOnly(True)
        box.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        box.setFixedHeight(box.fontMetrics().lineSpacing() * (lines + 1) + 12)
        return box

    @property
    def plan(self) -> ClusterPlan:
        return ClusterPlan(
            processes_per_machine=self.processes.value(),
            machines=self.machines.value(),
            first_machine=self.first_machine.text(),
            port=self.port.value(),
        )

    @Slot()
    def update_commands(self) -> None:
        plan = self.plan
        self.first_machine.setEnabled(plan.machines > 1)
        commands = cluster_commands(self.config, plan, Path(self.settings_path.text()))
        self.torchrun_text.setPlainText(commands.torchrun)
        self.slurm_text.setPlainText(commands.slurm_script)
        self.problems_label.setText("\n".join(commands.problems))
        self.problems_label.setVisible(bool(commands.problems))

    @Slot()
    def save_settings(self) -> None:
        chosen = choose_settings_path(self, self.settings_path.text())
        if not chosen:
            return
        try:
            written = write_settings_file(self.config, Path(chosen))
        except OSError as error:
            dialogs.show_error(
                self,
                "Could not save the settings",
                f"The settings could not be written to {chosen}. Check that the folder exists "
                "and can be written to.",
                str(error),
            )
            return
        self.settings_path.setText(str(written))

    def copy(self, box: QPlainTextEdit) -> None:
        QGuiApplication.clipboard().setText(box.toPlainText())
