"""A thread-safe stop request: the GUI thread sets it, the training loop polls it between batches."""

from __future__ import annotations

import threading


class StopRequest:
    """Call :meth:`request` from any thread; the Trainer stops at the next batch boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def is_requested(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()


class StoppedBeforeTraining(Exception):
    """Stop was pressed while the run was still being prepared (e.g. downloading weights)."""
