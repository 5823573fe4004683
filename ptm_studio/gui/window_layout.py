"""Where the main window's panels go: settings on the left; the training panel above the
result tabs on the right; the device in the status bar."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.warmup import LOADING_TORCH_TEXT
from ptm_studio.gui.widgets.wheel_guard import WheelGuard, guard_wheel

TABS = (
    ("Charts", "Live curves of the training (Ctrl+1)."),
    ("Predictions", "The validation images with the model's answers (Ctrl+2)."),
    ("Evaluation", "Scores per class, mix-ups and calibration of a trained model (Ctrl+3)."),
    ("New pictures", "Put the model to use: drop pictures or a folder to predict them (Ctrl+4)."),
    ("Map", "The pictures as the trained model sees them: alike ones sit together."),
    ("Pretraining", "How pretraining on unlabelled images is going."),
    ("Runs", "Every run on this computer: reopen, resume, compare, rename or delete (Ctrl+5)."),
)


@dataclass
class WindowLayout:
    splitter: QSplitter
    tabs: QTabWidget
    device_status: QLabel
    settings_scroll: QScrollArea
    wheel_guard: WheelGuard

    @Slot(object)
    def show_device(self, info: object) -> None:
        """The device the check found (a DeviceInfo), in the status bar."""
        self.device_status.setText(f"Device: {getattr(info, 'name', '')}")
        self.device_status.setToolTip(str(getattr(info, "note", "")))


def lay_out_window(
    window: QMainWindow,
    settings_panels: tuple[QWidget, ...],
    training_panel: QWidget,
    result_tabs: tuple[QWidget, ...],
) -> WindowLayout:
    """Put the panels into ``window``; ``result_tabs`` in the order of :data:`TABS`."""
    settings_column = QWidget()
    column = QVBoxLayout(settings_column)
    for panel in settings_panels:
        column.addWidget(panel)
    column.addStretch(0)
    settings_scroll = QScrollArea()
    settings_scroll.setWidget(settings_column)
    settings_scroll.setWidgetResizable(True)
    settings_scroll.setMinimumWidth(460)
    # The wheel scrolls the settings; it never changes the box that passes under the pointer.
    wheel_guard = guard_wheel(settings_scroll)
    tabs = QTabWidget()
    for index, (panel, (title, tip)) in enumerate(zip(result_tabs, TABS, strict=True)):
        tabs.addTab(panel, title)
        tabs.setTabToolTip(index, tip)
    right = QWidget()
    right_layout = QVBoxLayout(right)
    right_layout.setContentsMargins(0, 0, 0, 0)
    right_layout.addWidget(training_panel)
    right_layout.addWidget(tabs, 1)
    splitter = QSplitter(Qt.Orientation.Horizontal)
    splitter.addWidget(settings_scroll)
    splitter.addWidget(right)
    splitter.setStretchFactor(1, 1)
    splitter.setSizes([500, 900])
    window.setCentralWidget(splitter)
    device_status = plain_label(LOADING_TORCH_TEXT, word_wrap=False)
    window.statusBar().addPermanentWidget(device_status)
    return WindowLayout(splitter, tabs, device_status, settings_scroll, wheel_guard)
