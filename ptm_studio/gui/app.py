"""Entry point of the desktop app: environment for the Qt binding, QApplication, the main window."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

APP_NAME = "PTM Studio"
ORGANIZATION = "PTM Studio"


def _prepare_environment() -> None:
    # pyqtgraph must pick PySide6 even if another binding is installed.
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    os.environ.setdefault("QT_API", "pyside6")
    # Qt 6 scales for HiDPI by itself; keep fractional factors (1.25, 1.5) instead of rounding.
    os.environ.setdefault("QT_SCALE_FACTOR_ROUNDING_POLICY", "PassThrough")


def _install_excepthook() -> None:
    """An exception in a GUI slot is logged and shown; the app keeps running (fault Q2,
    docs/fault-catalogue.md)."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, error, trace)
            return
        details = "".join(traceback.format_exception(kind, error, trace))
        logging.getLogger("ptm_studio.gui").error("Unhandled error in the app:\n%s", details)
        from ptm_studio.gui import dialogs

        try:
            dialogs.show_error(None, "Something went wrong", _unexpected_error_text(error), details)
        except Exception:
            previous(kind, error, trace)

    sys.excepthook = hook


def _unexpected_error_text(error: BaseException) -> str:
    where = _log_file_path()
    log = f" The details are in the log file {where}." if where else ""
    return (
        f"PTM Studio ran into an unexpected problem and skipped what it was doing "
        f"({type(error).__name__}: {error}).\n\n"
        f"You can keep working: a training run that is going carries on, and your pictures and "
        f"saved models are not touched.{log} If it happens again, please send that file with a "
        "note of what you did."
    )


def _log_file_path() -> str:
    """The app's log file (see ptm_studio.core.app_logging), or "" when none is set up."""
    from ptm_studio.core.app_logging import LOG_FILE_NAME

    for handler in reversed(logging.getLogger().handlers):  # the latest one set up
        path = getattr(handler, "baseFilename", None)
        if path and Path(path).name == LOG_FILE_NAME:
            return str(path)
    return ""


# Signals that end the app as its close button does: a polite kill (logout, shutdown, `kill PID`),
# the terminal it was started from closing, and Ctrl-C in that terminal.
QUIT_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)
)


def stop_and_quit_on_signals(app: Any, window: Any) -> Callable[[], None]:
    """A quit signal closes the window without asking: a run in progress stops after its batch
    with a checkpoint saved (as when the window is closed and the user says yes), then the app
    quits. Returns what puts the earlier handlers back (for tests).

    Python runs a signal handler only when the interpreter gets control, and the Qt event loop
    keeps it in C++; ``signal.set_wakeup_fd`` writes a byte to a socket when a signal arrives,
    and a QSocketNotifier on the other end wakes the loop, which lets the handler run."""
    from PySide6.QtCore import QSocketNotifier, QTimer

    receiver, sender = socket.socketpair()
    receiver.setblocking(False)
    sender.setblocking(False)
    notifier = QSocketNotifier(receiver.fileno(), QSocketNotifier.Type.Read, app)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while receiver.recv(512):
                pass

    notifier.activated.connect(drain)
    previous_wakeup = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)

    def handle(signal_number: int, _frame: FrameType | None) -> None:
        logging.getLogger("ptm_studio.gui").warning(
            "%s received: stopping the run (if any) with a checkpoint, then quitting",
            signal.Signals(signal_number).name,
        )
        QTimer.singleShot(0, lambda: _close_for_signal(window))

    previous = {  # a signal ignored on purpose (`nohup`) stays ignored
        number: signal.signal(number, handle)
        for number in QUIT_SIGNALS
        if signal.getsignal(number) is not signal.SIG_IGN
    }

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(previous_wakeup)
        notifier.setEnabled(False)
        notifier.deleteLater()
        receiver.close()
        sender.close()

    return restore


def _close_for_signal(window: Any, attempts: int = 20) -> None:
    """Close as the close button does, answering its question with yes: open dialogs are
    dismissed, a run stops with a checkpoint, the window closes once it has ended."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialog

    window.run_controller.is_closing = True  # no more questions from here on
    modal = QApplication.activeModalWidget()
    if modal is not None and modal is not window and attempts > 0:
        # Dismissed first; the window closes once the code that opened it has gone on.
        modal.reject() if isinstance(modal, QDialog) else modal.close()
        QTimer.singleShot(0, lambda: _close_for_signal(window, attempts - 1))
        return
    window.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ptm-studio", description="Train image classifiers on your own pictures."
    )
    parser.add_argument("--demo", action="store_true", help="open on the demo images")
    args, qt_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    _prepare_environment()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from ptm_studio.core.app_logging import configure_logging

    configure_logging()  # the log file (idempotent: python -m ptm_studio has done it already)

    from PySide6.QtCore import QCoreApplication, QTimer
    from PySide6.QtWidgets import QApplication

    from ptm_studio.gui import theme
    from ptm_studio.system_libraries import qt_start_problem

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APP_NAME)
    existing = QApplication.instance()
    if existing is None and (problem := qt_start_problem()):
        # Qt would abort with a message naming some other library: say what is missing and
        # the command that installs it instead.
        print(problem, file=sys.stderr)
        return 1
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *qt_args])
    app.setApplicationDisplayName(APP_NAME)
    theme.apply_style(app)
    _install_excepthook()

    from ptm_studio.gui.collector import GuiThreadCollector
    from ptm_studio.gui.main_window import MainWindow

    collector = GuiThreadCollector(app)  # no widget is ever collected on a worker thread
    window = MainWindow(use_demo=args.demo, auto_for_a_new_user=True)
    app.aboutToQuit.connect(window.session.shutdown)
    # Kept until the loop ends: the wake-up socket must outlive every signal that can arrive.
    restore_signals = stop_and_quit_on_signals(app, window)
    window.show()
    # Once the window is on screen: a run a crash interrupted is offered for resuming (T5).
    QTimer.singleShot(0, window.run_controller.offer_to_resume_interrupted_runs)
    QTimer.singleShot(0, window.show_last_run)  # the curves of the last run, as it was left
    try:
        return app.exec()
    finally:
        restore_signals()
        collector.timer.stop()


if __name__ == "__main__":
    sys.exit(main())
