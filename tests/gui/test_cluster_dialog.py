""" "Run on a cluster…": the window's settings as a file and the commands that train them."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QGuiApplication

from ptm_studio.core.config import RunConfig
from ptm_studio.gui import cluster_dialog


def test_the_dialog_shows_the_command_for_the_settings_in_the_window(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    window.objective_panel.batch_spin.setValue(32)
    window.open_cluster_dialog()
    dialog = window.cluster_dialog
    assert dialog is not None and dialog.isVisible()
    assert not window.session.is_running  # nothing starts from here
    words = shlex.split(dialog.torchrun_text.toPlainText())
    assert words[:3] == ["torchrun", "--nproc_per_node=2", "--standalone"]
    assert not dialog.first_machine.isEnabled()
    dialog.machines.setValue(2)
    assert dialog.first_machine.isEnabled()
    assert "address of the first one" in dialog.problems_label.text()
    qtbot.keyClicks(dialog.first_machine, "node01")
    assert "--rdzv-endpoint=node01:29500" in dialog.torchrun_text.toPlainText()
    assert "#SBATCH --nodes=2" in dialog.slurm_text.toPlainText()
    assert dialog.problems_label.isHidden()
    dialog.processes.setValue(3)  # 6 processes cannot share 32 pictures evenly
    assert "multiple of the 6 processes" in dialog.problems_label.text()
    target = tmp_path / "for the cluster.json"
    monkeypatch.setattr(cluster_dialog, "choose_settings_path", lambda *_args: str(target))
    dialog.save_button.click()
    assert RunConfig.load(target).data.batch_size == 32
    assert str(target) in dialog.torchrun_text.toPlainText()
    dialog.copy(dialog.torchrun_text)
    assert QGuiApplication.clipboard().text() == dialog.torchrun_text.toPlainText()
    dialog.close()
