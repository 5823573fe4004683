"""Regenerate the README screenshot: the app on the demo data, grabbed mid-training.

Run it in a real (virtual) window so it looks as a user sees it:

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python packaging/take_screenshot.py

It uses a temporary runs folder and QSettings of its own, so nothing of the user's is touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "resources" / "screenshot.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--tab", choices=("charts", "predictions"), default="charts")
    parser.add_argument(
        "--after-seconds", type=float, default=25.0, help="grab this long after Start"
    )
    arguments = parser.parse_args()
    os.environ["PTM_STUDIO_HOME"] = tempfile.mkdtemp(prefix="ptm_screenshot_")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

    from PySide6.QtCore import QCoreApplication, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(
        QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.environ["PTM_STUDIO_HOME"]
    )
    QCoreApplication.setOrganizationName("PTM Studio screenshot")
    QCoreApplication.setApplicationName("PTM Studio")
    app = QApplication(sys.argv[:1])

    from ptm_studio.gui import theme
    from ptm_studio.gui.main_window import MainWindow

    theme.apply_style(app)
    window = MainWindow(use_demo=True)
    window.resize(1400, 900)
    window.show()

    def show_tab() -> None:
        window.layout_parts.tabs.setCurrentIndex(1 if arguments.tab == "predictions" else 0)

    def grab_and_quit() -> None:
        window.grab().save(str(arguments.output))
        print(f"saved {arguments.output}")
        window.session.shutdown()
        app.quit()

    QTimer.singleShot(1500, window.training_panel.start_button.click)
    grab_at = int(1500 + 1000 * arguments.after_seconds)
    QTimer.singleShot(grab_at - 2000, show_tab)  # thumbnails load lazily once the grid is shown
    QTimer.singleShot(grab_at, grab_and_quit)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
