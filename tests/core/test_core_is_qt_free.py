"""The core never imports Qt: the CLI, benchmarks and tests depend on it staying that way."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import ptm_studio.core

FORBIDDEN = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "pyqtgraph", "superqt", "ptm_studio.gui")


def test_importing_every_core_module_and_the_cli_loads_no_qt() -> None:
    modules = [
        info.name for info in pkgutil.walk_packages(ptm_studio.core.__path__, "ptm_studio.core.")
    ]
    modules += ["ptm_studio.cli", "ptm_studio.cli_output"]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m.startswith('ptm_studio.gui'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert len(modules) > 10
    assert result.stdout.strip() == "", f"core pulled in: {result.stdout}"
