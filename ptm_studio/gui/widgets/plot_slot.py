"""Where a pyqtgraph plot goes, made once the window is on screen.

Importing pyqtgraph takes ~0.4 s and making a plot ~30 ms: done while the window is built, they
would keep it off the screen that much longer (issue 14, B5: the window within 1 s of launch).
A slot is a plain widget of the plot's size; the first time it is painted (the window is then
on screen) it asks for the plot on the next turn of the event loop, and code that needs the
plot sooner (to draw into a hidden tab, a test) gets it at once from :meth:`PlotSlot.widget`.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import QVBoxLayout, QWidget


class PlotSlot(QWidget):
    """Holds the widget ``make`` returns, made on first paint or first ask (once)."""

    def __init__(self, make: Callable[[], QWidget], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._make = make
        self._widget: QWidget | None = None
        self._asked = False
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)

    @property
    def is_made(self) -> bool:
        return self._widget is not None

    def widget(self) -> QWidget:
        if self._widget is None:
            self._widget = self._make()
            self._layout.addWidget(self._widget)
        return self._widget

    def paintEvent(self, event: QPaintEvent) -> None:
        if self._widget is None and not self._asked:
            self._asked = True
            # After this paint: the window shows first, the plot a moment later.
            QTimer.singleShot(0, self, self.widget)
        super().paintEvent(event)
