"""The window appears before torch has loaded (issue 14, B5): building and showing it imports
neither torch nor torchvision on the GUI thread; they load on the warm-up thread, and a run
started before they are ready waits for them on its own thread. pyqtgraph loads once the window
is on screen, and the charts are made then. Checked in a fresh
interpreter, where any import of torch on the GUI thread fails with the chain that asked for it;
benchmarks/start_up.py holds the seconds against the target."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

SHOW_WINDOW_WITHOUT_TORCH = """
import os, sys, threading, traceback
os.environ["QT_QPA_PLATFORM"] = "offscreen"

class TorchOnTheGuiThread:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision") and (
            threading.current_thread() is threading.main_thread()
        ):
            chain = [f"{f.filename}:{f.lineno} {f.line}" for f in traceback.extract_stack()
                     if "ptm_studio" in f.filename]
            print("torch imported on the GUI thread from:\\n" + "\\n".join(chain), flush=True)
            os._exit(3)
        return None

sys.meta_path.insert(0, TorchOnTheGuiThread())
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from types import SimpleNamespace
from ptm_studio.gui import device_probe
from ptm_studio.gui.main_window import MainWindow

probe_started = threading.Event()

def probe_without_torch(setting):  # the real probe loads torch on its own thread
    probe_started.set()
    return SimpleNamespace(kind="cpu", name="CPU", note="")

device_probe.probe_device = probe_without_torch
app = QApplication([])
window = MainWindow(use_demo=USE_DEMO, auto_for_a_new_user=True)
window.show()
print("NO PLOTS YET" if "pyqtgraph" not in sys.modules else "PYQTGRAPH BEFORE SHOW", flush=True)
QTimer.singleShot(1500, app.quit)  # the launch-time timers (device probe, estimates) run too
app.exec()
print("PROBE STARTED" if probe_started.wait(10) else "NO PROBE", flush=True)
charts = window.metrics_panel.plots
print("CHARTS MADE" if all(plot.plot_is_made for plot in charts) else "CHARTS MISSING", flush=True)
window.session.shutdown()
os._exit(0)  # background jobs (the time estimate) may have loaded torch on their threads
"""


@pytest.mark.parametrize("use_demo", [True, False])
def test_the_window_shows_without_torch_on_the_gui_thread(use_demo: bool, tmp_path: Path) -> None:
    script = SHOW_WINDOW_WITHOUT_TORCH.replace("USE_DEMO", str(use_demo))
    environment = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PROBE STARTED" in result.stdout
    # pyqtgraph (~0.4 s to import) waits for the window too; the charts are made once it shows.
    assert "NO PLOTS YET" in result.stdout and "CHARTS MADE" in result.stdout
