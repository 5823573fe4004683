"""SettingsModel: the one RunConfig being edited in the window.

Panels show it and write their part into it as the user changes a box; nothing else keeps
settings. Auto, resuming a run and restoring the last session replace it whole, and every panel
shows the new values. Only the settings a panel offers live in widgets; the others (set by the
command line, a resumed run, Auto) are kept here as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from ptm_studio.core.config import RunConfig, replace_field


class SettingsModel(QObject):
    changed = Signal(object)
    """The new RunConfig, after any change (a panel's or a replacement): panels show it."""

    def __init__(self, config: RunConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = config or RunConfig()
        self._is_telling = False  # ``changed`` is being emitted
        self._changed_meanwhile = False

    @property
    def config(self) -> RunConfig:
        return self._config

    def update(self, change: Callable[[RunConfig], RunConfig]) -> None:
        """Apply ``change`` (config → new config); nothing is signalled when it changes nothing."""
        new = change(self._config)
        if new != self._config:
            self._config = new
            self._tell()

    def set(self, field_path: str, value: Any) -> None:
        """Set one dotted setting (``optim.learning_rate``)."""
        self.update(lambda config: replace_field(config, field_path, value))

    def replace(self, config: RunConfig) -> None:
        """Replace every setting at once (Auto, a resumed run's own settings, the last session);
        the panels show all of it again, even when nothing changed."""
        self._config = config
        self._tell()

    def _tell(self) -> None:
        """Emit ``changed``; a change made by a listener meanwhile is told once the listeners
        of this one have all heard it, so no panel is left showing an older config."""
        if self._is_telling:
            self._changed_meanwhile = True
            return
        self._is_telling = True
        try:
            self._changed_meanwhile = True
            while self._changed_meanwhile:
                self._changed_meanwhile = False
                self.changed.emit(self._config)
        finally:
            self._is_telling = False
