"""Look and feel: Fusion + a small palette-based style sheet, SVG icons, plot colours per theme."""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication


def resources_dir() -> Path:
    """resources/ next to the package (source tree) or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


@cache
def icon(name: str) -> QIcon:
    """An icon from resources/icons/<name>.svg (an empty icon if it is missing: never a crash)."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def apply_style(app: QApplication) -> None:
    """Fusion follows the system light/dark palette; the sheet only uses palette() colours."""
    if not os.environ.get("PTM_STUDIO_NATIVE_STYLE"):
        app.setStyle("Fusion")
    sheet = resources_dir() / "styles" / "app.qss"
    if sheet.is_file():
        app.setStyleSheet(sheet.read_text(encoding="utf-8"))
    app.setWindowIcon(icon("app"))


def is_dark() -> bool:
    app = QGuiApplication.instance()
    if app is None:
        return False
    window = QGuiApplication.palette().color(QPalette.ColorRole.Window)
    return window.lightness() < 128


@cache
def plotting() -> ModuleType:
    """pyqtgraph, its colours from the palette and antialiasing on (curves are downsampled
    anyway). Every plot is made through this, once the window is on screen: importing
    pyqtgraph takes ~0.4 s, which the window must not wait for (issue 14, B5)."""
    import pyqtgraph as pg

    palette = QGuiApplication.palette()
    pg.setConfigOptions(
        background=palette.color(QPalette.ColorRole.Base),
        foreground=palette.color(QPalette.ColorRole.Text),
        antialias=True,
    )
    return pg


# Colour-blind friendly pairs (Okabe–Ito): train is blue, validation is orange.
TRAIN_COLOUR = QColor("#0072B2")
VALIDATION_COLOUR = QColor("#E69F00")
SMOOTH_COLOUR = QColor("#D55E00")
LEARNING_RATE_COLOUR = QColor("#009E73")
BASELINE_COLOUR = QColor("#AAAAAA")  # a level the curves are read against (grey: not a curve)
CORRECT_COLOUR = QColor("#2e9d4f")
INCORRECT_COLOUR = QColor("#d9443a")
