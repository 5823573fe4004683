"""The one way a background job gets its thread (superqt's new_worker_qthread pattern)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread


def move_to_new_thread(
    worker: QObject, name: str, on_thread_finished: Callable[[], Any]
) -> QThread:
    """Move ``worker`` (with a ``run`` slot and a ``finished`` signal) to a new, not yet started
    QThread: started → run; finished → quit and deleteLater; thread.finished → the owner."""
    thread = QThread()
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)  # type: ignore[attr-defined]
    # Direct: quit from the worker thread itself, so a GUI thread blocked in wait() cannot deadlock.
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # type: ignore[attr-defined]
    worker.finished.connect(worker.deleteLater)  # type: ignore[attr-defined]
    thread.finished.connect(on_thread_finished)
    return thread
