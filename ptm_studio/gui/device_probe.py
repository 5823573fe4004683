"""Launch-time helpers: where the demo images are, and which device training will use."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import QObject, Signal

from ptm_studio.gui import theme
from ptm_studio.gui.warmup import warm_up


def demo_folder() -> Path | None:
    """The demo images shipped with the app, or None when this copy has none."""
    try:
        from ptm_studio.core.data.demo import demo_data_dir

        folder = Path(demo_data_dir())
    except Exception:
        folder = theme.resources_dir() / "demo_data"
    return folder if folder.is_dir() else None


def probe_device(setting: str) -> Any:
    """Warm torch up (its first imports are slow) and describe the device training will use."""
    warm_up()
    try:
        from ptm_studio.core.devices import describe_device

        return describe_device(setting)
    except Exception as error:
        return SimpleNamespace(kind="cpu", name="CPU", note=f"Device check failed: {error}")


class DeviceProbe(QObject):
    """Finds the device on a daemon thread; ``device_found`` carries a ``DeviceInfo`` (kind,
    name, note), queued to the GUI thread.

    The one piece of background work that is not a Job (gui/jobs/job.py): it has no point at
    which it could stop (a graphics driver can take its time or hang while it starts), and the
    app must be able to quit without waiting for it; a QThread cannot be left behind, a daemon
    thread can.
    """

    device_found = Signal(object)

    def start(self, setting: str) -> None:
        threading.Thread(
            target=self._probe, args=(setting,), name="ptm-device-probe", daemon=True
        ).start()

    def _probe(self, setting: str) -> None:
        info = probe_device(setting)
        with contextlib.suppress(RuntimeError):  # the window closed while the probe ran
            self.device_found.emit(info)
