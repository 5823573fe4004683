"""Issue 11, case 3 in the app: SIGTERM (logout, shutdown, ``kill``) ends the app as its close
button does, answered yes: a run stops after its batch with a checkpoint, then the window closes.
The signals are real (sent to this process); the handlers are those the app installs."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.events import STATUS_STOPPED
from ptm_studio.core.runs import RunDirectory, find_interrupted_runs
from ptm_studio.gui.app import stop_and_quit_on_signals

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="no SIGTERM here")


def test_sigterm_stops_the_run_with_a_checkpoint_then_closes_the_window(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, dialog_calls: list[Any]
) -> None:
    window = make_window()
    window.show()
    restore = stop_and_quit_on_signals(QApplication.instance(), window)
    batches: list[Any] = []
    window.session.batch_finished.connect(batches.append)
    try:
        window.run_controller.start_run(
            replace_field(tiny_config, "optim.num_epochs", 200), resume_from=None
        )
        qtbot.waitUntil(lambda: len(batches) >= 2, timeout=60_000)
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(
            lambda: not window.isVisible() and not window.session.is_running, timeout=60_000
        )
    finally:
        restore()
    finished = window.session.last_finished
    assert finished is not None and finished.status == STATUS_STOPPED, finished
    assert finished.epochs_completed < 200 and finished.run_dir is not None
    run = RunDirectory(finished.run_dir)
    assert run.read_status()["status"] == STATUS_STOPPED
    assert (run.last_checkpoint_dir / "meta.json").is_file()
    assert find_interrupted_runs(run.path.parent) == []  # stopped cleanly, not crashed
    assert [call for call in dialog_calls if call[0] in ("ask_yes_no", "show_error")] == []


def test_sigterm_wakes_an_idle_event_loop_and_closes_the_window(
    qtbot: Any, make_window: Any
) -> None:
    """Python handlers run only when the interpreter gets control: the wake-up socket gives it
    while the event loop waits in C++."""
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    restore = stop_and_quit_on_signals(QApplication.instance(), window)
    loop = QEventLoop()
    window.windowHandle().visibleChanged.connect(lambda visible: visible or loop.quit())
    QTimer.singleShot(20_000, loop.quit)  # a failsafe, never reached when it works
    sender = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    try:
        sender.start()
        loop.exec()
    finally:
        sender.join()
        restore()
    assert not window.isVisible()
    assert time.monotonic() - started < 10


def test_the_app_collects_cycles_only_on_the_gui_thread(qtbot: Any) -> None:
    import gc

    from ptm_studio.gui.collector import GuiThreadCollector

    gc.enable()
    collector = GuiThreadCollector()
    assert not gc.isenabled()  # no collection on whichever thread allocates
    kept: list[list[int]] = []
    while gc.get_count()[0] <= gc.get_threshold()[0]:
        kept.append([])  # allocations that make a collection due
    collector.collect_if_due()
    assert gc.get_count()[0] < gc.get_threshold()[0]  # collected here, on the GUI thread
    collector.deleteLater()
    qtbot.waitUntil(gc.isenabled, timeout=5000)
    gc.disable()  # as the fixture keeps it during a GUI test
