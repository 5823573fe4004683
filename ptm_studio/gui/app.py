"""Entry point of the desktop app: environment for the Qt binding, QApplication, the main window."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

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

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APP_NAME)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *qt_args])
    app.setApplicationDisplayName(APP_NAME)
    theme.apply_style(app)
    _install_excepthook()

    from ptm_studio.gui.main_window import MainWindow

    window = MainWindow(use_demo=args.demo)
    app.aboutToQuit.connect(window.session.shutdown)
    window.show()
    # Once the window is on screen: a run a crash interrupted is offered for resuming (T5).
    QTimer.singleShot(0, window.run_controller.offer_to_resume_interrupted_runs)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
