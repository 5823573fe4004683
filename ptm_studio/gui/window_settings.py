"""What the main window remembers between launches (QSettings): geometry, layout, the last folder
and the last settings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings

from ptm_studio.core.config import ConfigError, RunConfig
from ptm_studio.gui.device_probe import demo_folder

if TYPE_CHECKING:
    from ptm_studio.gui.main_window import MainWindow

DEFAULT_SIZE = (1400, 900)


def restore_window_settings(
    window: MainWindow, *, use_demo: bool, initial_folder: Path | None
) -> None:
    """Geometry, layout and the last settings; then the folder (the demo images at first launch)."""
    settings = QSettings()
    geometry = settings.value("window/geometry")
    if isinstance(geometry, QByteArray):
        window.restoreGeometry(geometry)
    else:
        window.resize(*DEFAULT_SIZE)
    for key, restore in (
        ("window/state", window.restoreState),
        ("window/splitter", window.splitter.restoreState),
    ):
        value = settings.value(key)
        if isinstance(value, QByteArray):
            restore(value)
    try:
        saved = RunConfig.from_json(str(settings.value("last/config", "")))
        window.model_panel.load_from(saved)
        window.objective_panel.load_from(saved)
    except (ConfigError, TypeError):
        pass
    folder = str(initial_folder or settings.value("last/folder", "") or "")
    if use_demo or not folder or not Path(folder).is_dir():
        if demo_folder() is not None:
            window.use_demo_data()
            window.statusBar().showMessage(
                "Showing the demo images. Choose your own folder with Ctrl+O.", 15000
            )
    else:
        window.dataset_panel.set_folder(folder)


def save_window_settings(window: MainWindow) -> None:
    settings = QSettings()
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState())
    settings.setValue("window/splitter", window.splitter.saveState())
    settings.setValue("last/folder", window.dataset_panel.folder)
    settings.setValue("last/config", window.current_config().to_json())
