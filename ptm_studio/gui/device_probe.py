"""Launch-time helpers: where the demo images are, and which device training will use."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ptm_studio.gui import theme
from ptm_studio.gui.jobs.job import Job, JobContext
from ptm_studio.gui.warmup import warm_up


def demo_folder() -> Path | None:
    """The demo images shipped with the app, or None when this copy has none."""
    try:
        from ptm_studio.core.data.demo import demo_data_dir

        folder = Path(demo_data_dir())
    except Exception:
        folder = theme.resources_dir() / "demo_data"
    return folder if folder.is_dir() else None


def probe_device(setting: str, _context: JobContext) -> Any:
    """Warm torch up (its first imports are slow) and describe the device training will use."""
    warm_up()
    try:
        from ptm_studio.core.devices import describe_device

        return describe_device(setting)
    except Exception as error:
        return SimpleNamespace(kind="cpu", name="CPU", note=f"Device check failed: {error}")


class DeviceProbe(QObject):
    """Finds the device in a background job; ``device_found`` carries a ``DeviceInfo`` (kind,
    name, note) and is emitted on the GUI thread."""

    device_found = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = Job("ptm-device-probe", self)
        self.job.succeeded.connect(self._on_found)

    def start(self, setting: str) -> None:
        self.job.restart(lambda context: probe_device(setting, context))

    @Slot(object)
    def _on_found(self, info: Any) -> None:
        self.device_found.emit(info)
