"""ask_for_run: the folder dialog for "Choose a run…", with the check that it is one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from ptm_studio.core.runs import RunDirectory


def ask_for_run(parent: QWidget, start: Path) -> tuple[Path | None, str]:
    """The run folder the user chose and "", or None and why it cannot be used ("" when the
    dialog was cancelled)."""
    folder = QFileDialog.getExistingDirectory(parent, "Choose a run folder", str(start))
    if not folder:
        return None, ""
    if not RunDirectory(folder).config_path.is_file():
        return None, f"{folder} is not a PTM Studio run folder (it has no config.json)."
    return Path(folder), ""
