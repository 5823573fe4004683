"""Python's cycle collector runs in whichever thread happens to allocate: in a worker thread
(a training run, a learning-rate test) it can destroy a window or menu left in a reference
cycle, and a Qt widget destroyed off the GUI thread deadlocks or crashes. So the app turns
the automatic collection off and collects on the GUI thread instead, on a timer, as often as
the collector's own thresholds would have (the pattern PyQt applications use)."""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot

CHECK_MS = 500


class GuiThreadCollector(QObject):
    """While it lives, cycles are collected only here, on the thread that created it."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(CHECK_MS)
        self.timer.timeout.connect(self.collect_if_due)
        self.timer.start()
        self.destroyed.connect(gc.enable)

    @Slot()
    def collect_if_due(self) -> None:
        """Collect the generations whose counts passed their thresholds, youngest first."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return
