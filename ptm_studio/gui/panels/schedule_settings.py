"""How long and in which rhythm a run trains: for a number of epochs or for a time, the
learning-rate schedule and its warm-up, and when to stop early. The "Train for" row is one of
the plain settings; the others sit in the objective panel's Advanced section."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QWidget

from ptm_studio.core.config import RunConfig
from ptm_studio.gui.panels.objective_boxes import combo, double_box, int_box
from ptm_studio.gui.panels.objective_words import SCHEDULE_TEXT, TRAIN_FOR_TEXT
from ptm_studio.gui.widgets.settings_binding import show_choice, show_number

DEFAULT_MINUTES = 5.0  # what the minutes box offers before the user chose a time
PATIENCE_TIP = (
    "End the run when this many epochs in a row bring no better score on the validation "
    "pictures; the best epoch is kept. Never: train every epoch."
)
WARMUP_TIP = (
    "Epochs at the start during which the learning rate climbs gently from almost nothing: "
    "protects pretrained weights from a rough first step."
)


class ScheduleSettings(QObject):
    """Owns the widgets; the objective panel lays them out in its plain and Advanced forms."""

    settings_changed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.train_for_combo = combo(TRAIN_FOR_TEXT, "Train for a number of epochs or a time.")
        self.epochs_spin = int_box(1, 10_000, "Passes over all training images.")
        self.minutes_spin = double_box(
            0.5,
            7 * 24 * 60,
            1.0,
            1,
            TRAIN_FOR_TEXT["minutes"][1] + " Early stopping may end it sooner.",
        )
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setValue(DEFAULT_MINUTES)
        self.schedule_combo = combo(SCHEDULE_TEXT, "How the learning rate changes during the run.")
        self.warmup_spin = double_box(0.0, 1000.0, 1.0, 1, WARMUP_TIP)
        self.warmup_spin.setSuffix(" epochs")
        self.patience_spin = int_box(0, 10_000, PATIENCE_TIP)
        self.patience_spin.setSpecialValueText("Never")
        self.patience_spin.setSuffix(" epochs")
        self.train_for_row = QWidget()
        row = QHBoxLayout(self.train_for_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.train_for_combo)
        row.addWidget(self.epochs_spin, 1)
        row.addWidget(self.minutes_spin, 1)
        self.train_for_combo.currentIndexChanged.connect(self._show_train_for)
        self.train_for_combo.currentIndexChanged.connect(self.settings_changed)
        for box in (self.epochs_spin, self.minutes_spin, self.warmup_spin, self.patience_spin):
            box.valueChanged.connect(self.settings_changed)
        self.schedule_combo.currentIndexChanged.connect(self.settings_changed)
        self._show_train_for()

    def add_plain_rows(self, form: QFormLayout) -> None:
        form.addRow("Train for:", self.train_for_row)

    def add_advanced_rows(self, form: QFormLayout) -> None:
        form.addRow("Learning-rate schedule:", self.schedule_combo)
        form.addRow("Warm-up:", self.warmup_spin)
        form.addRow("Stop when no better for:", self.patience_spin)

    @property
    def trains_for_a_time(self) -> bool:
        return self.train_for_combo.currentData() == "minutes"

    @Slot()
    def _show_train_for(self) -> None:
        self.epochs_spin.setVisible(not self.trains_for_a_time)
        self.minutes_spin.setVisible(self.trains_for_a_time)

    def apply_to(self, config: RunConfig) -> RunConfig:
        optim = dataclasses.replace(
            config.optim,
            num_epochs=self.epochs_spin.value(),
            time_budget_minutes=self.minutes_spin.value() if self.trains_for_a_time else 0.0,
            schedule=self.schedule_combo.currentData(),
            warmup_epochs=round(self.warmup_spin.value(), 2),
            early_stopping_patience=self.patience_spin.value(),
        )
        return dataclasses.replace(config, optim=optim)

    def show_settings(self, config: RunConfig) -> None:
        optim = config.optim
        budget = optim.time_budget_minutes
        show_choice(self.train_for_combo, "minutes" if budget > 0 else "epochs")
        if budget > 0:  # else the box keeps the time last chosen, for when it is chosen again
            show_number(self.minutes_spin, budget)
        show_number(self.epochs_spin, optim.num_epochs)
        show_choice(self.schedule_combo, optim.schedule)
        show_number(self.warmup_spin, optim.warmup_epochs)
        show_number(self.patience_spin, optim.early_stopping_patience)
        self._show_train_for()
