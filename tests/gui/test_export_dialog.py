"""Export from the window: the folder is written, the parity result is shown, a file that
disagrees is an error in words, and Cancel (or closing) leaves no thread and no folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core import export as core_export  # the dialog imports it on use
from ptm_studio.core.export import ExportCancelled, ExportResult, ParityReport
from ptm_studio.gui.export_dialog import ExportDialog, default_destination


def test_export_from_the_window_writes_the_folder_and_shows_the_parity_result(
    qtbot: Any, make_window: Any, trained_run: Path
) -> None:
    window = make_window()
    window.model_tabs.use_run(trained_run)
    assert window.evaluation_panel.export_button.isEnabled()
    window.evaluation_panel.export_button.click()
    dialog = window.model_tabs.export_dialog
    assert dialog is not None and dialog.destination == trained_run / "export"
    assert dialog.model_combo.currentText().startswith("Best (epoch")
    with qtbot.waitSignal(dialog.job.succeeded, timeout=120_000):
        dialog.export_button.click()
    qtbot.waitUntil(lambda: not dialog.job.is_running)
    result = dialog.export_result
    assert result is not None and result.is_ok, result.problems
    folder = trained_run / "export"
    for name in (
        "model.safetensors",
        "model.torchscript.pt",
        "model.onnx",
        "model.json",
        "README.md",
    ):
        assert (folder / name).is_file(), name
    assert "Every file answers as the app does" in dialog.status_label.text()
    assert dialog.parity_table.rowCount() == 3
    verdicts = {dialog.parity_table.item(row, 3).text() for row in range(3)}
    assert verdicts == {"matches the app"}
    assert dialog.folder_edit.text() == str(trained_run / "export 2")  # the next one offered
    dialog.close()


def test_a_file_that_disagrees_is_shown_as_an_error(qtbot: Any, tmp_path: Path) -> None:
    dialog = ExportDialog(tmp_path)
    qtbot.addWidget(dialog)
    bad = ParityReport("onnx", "model.onnx", 9, 7, 0.31, 9, 1e-7)
    dialog.show_result(ExportResult(folder=tmp_path / "export", files={}, parity=(bad,)))
    assert "with problems" in dialog.status_label.text() and "model.onnx" in (
        dialog.status_label.text()
    )
    assert dialog.parity_table.item(0, 3).text() == "DISAGREES: do not use it"
    assert dialog.parity_table.item(0, 1).text() == "7 of 9"


def test_closing_cancels_the_export_and_leaves_no_thread(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def slow_export(
        run_dir: Path, destination: Path, *, on_progress: Any, should_stop: Any, **options: Any
    ) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if should_stop():
                raise ExportCancelled("The export was cancelled; nothing was kept.")
            on_progress(1, 8)
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(core_export, "export_model", slow_export)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "something").write_text("taken", encoding="utf-8")
    assert default_destination(tmp_path) == tmp_path / "export 2"
    dialog = ExportDialog(tmp_path)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.export_button.click()
    qtbot.waitUntil(lambda: "of 8 steps" in dialog.progress.label.text())
    assert not dialog.export_button.isEnabled()
    dialog.reject()  # Esc or Close while it runs
    assert not dialog.job.is_running
