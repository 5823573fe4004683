"""A section that opens and closes under its title (the settings a user rarely needs)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QToolButton, QVBoxLayout, QWidget


class CollapsibleSection(QWidget):
    """A title button with an arrow; ``body`` shows below it while the section is open."""

    opened_changed = Signal(bool)

    def __init__(self, title: str, tip: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle_button = QToolButton()
        self.toggle_button.setText(title)
        self.toggle_button.setToolTip(tip)
        self.toggle_button.setCheckable(True)
        self.toggle_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle_button.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle_button.setAutoRaise(True)
        self.body = QWidget()
        self.body.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.toggle_button)
        layout.addWidget(self.body)
        self.toggle_button.toggled.connect(self._show_body)

    @property
    def is_open(self) -> bool:
        return self.toggle_button.isChecked()

    def set_open(self, is_open: bool) -> None:
        self.toggle_button.setChecked(is_open)

    @Slot(bool)
    def _show_body(self, is_open: bool) -> None:
        arrow = Qt.ArrowType.DownArrow if is_open else Qt.ArrowType.RightArrow
        self.toggle_button.setArrowType(arrow)
        self.body.setVisible(is_open)
        self.opened_changed.emit(is_open)
