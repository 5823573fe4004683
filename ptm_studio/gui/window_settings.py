"""What the main window remembers between launches (QSettings): geometry, layout, the last folder
and the last settings."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

from ptm_studio.core.config import ConfigError, RunConfig, replace_field
from ptm_studio.gui.settings_model import SettingsModel

DEFAULT_SIZE = (1400, 900)


def restore_window_settings(
    window: QMainWindow, splitter: QSplitter, settings: SettingsModel
) -> str:
    """Geometry, layout and the last settings; returns the last folder ("" if none)."""
    stored = QSettings()
    geometry = stored.value("window/geometry")
    if isinstance(geometry, QByteArray):
        window.restoreGeometry(geometry)
    else:
        window.resize(*DEFAULT_SIZE)
    for key, restore in (
        ("window/state", window.restoreState),
        ("window/splitter", splitter.restoreState),
    ):
        value = stored.value(key)
        if isinstance(value, QByteArray):
            restore(value)
    folder = str(stored.value("last/folder", "") or "")
    try:
        saved = RunConfig.from_json(str(stored.value("last/config", ""))).validate()
    except (ConfigError, TypeError):
        return folder  # none yet, or written by another version: the defaults then
    # The folder is chosen by the caller (it may be gone, or the demo may be asked for).
    settings.replace(replace_field(saved.for_another_run(), "data.data_dir", None))
    return folder


def has_saved_settings() -> bool:
    """Whether an earlier launch left its settings (False the first time the app runs)."""
    return QSettings().contains("last/config")


def save_window_settings(window: QMainWindow, splitter: QSplitter, config: RunConfig) -> None:
    """``config``: the settings to start from next time (the user's own choices: an automatic
    task switch is undone by the caller, so it is made again, and said, for that folder)."""
    stored = QSettings()
    stored.setValue("window/geometry", window.saveGeometry())
    stored.setValue("window/state", window.saveState())
    stored.setValue("window/splitter", splitter.saveState())
    stored.setValue("last/folder", config.data.data_dir or "")
    stored.setValue("last/config", config.for_another_run().to_json())
