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


class DeviceProbe(QObject):
    """Warms torch up and finds the device on a plain thread; the result arrives as a queued signal.

    ``device_found`` carries a ``DeviceInfo`` (kind, name, note). The probe object lives in the GUI
    thread, so connected slots run there.
    """

    device_found = Signal(object)

    def start(self, setting: str) -> None:
        threading.Thread(
            target=self._probe, args=(setting,), name="ptm-device-probe", daemon=True
        ).start()

    def _probe(self, setting: str) -> None:
        warm_up()
        try:
            from ptm_studio.core.devices import describe_device

            info: Any = describe_device(setting)
        except Exception as error:
            info = SimpleNamespace(kind="cpu", name="CPU", note=f"Device check failed: {error}")
        with contextlib.suppress(RuntimeError):  # the window closed while the probe ran
            self.device_found.emit(info)
