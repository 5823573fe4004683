"""How long the GUI thread went without running its event loop: a timer that keeps the time
between its ticks. A gap far above the interval is time in which the window could not repaint
or answer a click. Used by the tests (to catch real blocking) and by
benchmarks/event_loop_responsiveness.py (for the figures)."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

LONG_GAP_S = 0.05


class EventLoopProbe:
    """Start it on the GUI thread; every gap between ticks is kept (``gaps``, seconds)."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self.long_gaps: list[tuple[float, float]] = []
        """(when after the start, how long) of each gap over 50 ms, rounded: for messages."""
        self.started_at = 0.0
        self._last = 0.0

    @property
    def max_gap(self) -> float:
        return max(self.gaps, default=0.0)

    def start(self) -> None:
        self._last = self.started_at = time.perf_counter()
        self.timer.start()

    def stop(self) -> float:
        """Stop ticking; returns the largest gap."""
        self.timer.stop()
        return self.max_gap

    def _tick(self) -> None:
        now = time.perf_counter()
        gap = now - self._last
        self.gaps.append(gap)
        if gap > LONG_GAP_S:
            self.long_gaps.append((round(self._last - self.started_at, 3), round(gap, 3)))
        self._last = now
