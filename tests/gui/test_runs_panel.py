"""The Runs tab: every run listed by a readable name; rename, compare, reopen, resume, delete,
start from a run's settings, settings out to a file and back. The runs are real tiny runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.events import STATUS_COMPLETED
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.run_catalog import NAME_FILE
from ptm_studio.core.runs import RunDirectory
from ptm_studio.gui.panels import runs_panel
from ptm_studio.gui.panels.runs_panel import NAME_COLUMN, RunsPanel
from tests.gui.run_makers import choose_tiny_training, make_stopped_run

pytestmark = pytest.mark.slow


def _train(config: RunConfig, runs_root: Path, **changes: Any) -> Path:
    for field_path, value in changes.items():
        config = replace_field(config, field_path.replace("__", "."), value)
    finished = Trainer.new_run(config, runs_root=runs_root).run()
    assert finished.status == STATUS_COMPLETED and finished.run_dir is not None
    return finished.run_dir


@pytest.fixture
def two_runs(tiny_config: RunConfig, tmp_path: Path) -> tuple[Path, Path]:
    """A finished classifier and a finished rotation pretraining, in the window's runs folder."""
    runs_root = tmp_path / "runs"
    config = replace_field(tiny_config, "device.device", "cpu")
    classifier = _train(config, runs_root, optim__num_epochs=2)
    pretraining = _train(
        config,
        runs_root,
        optim__num_epochs=1,
        objective__task="pretrain",
        objective__loss="rotation",
    )
    return classifier, pretraining


def _runs_tab(window: Any, qtbot: Any) -> RunsPanel:
    window.show()
    window.show_tab(window.runs_panel)
    qtbot.waitUntil(lambda: window.runs_panel.isVisible())
    return window.runs_panel


def _row_of(panel: RunsPanel, path: Path) -> int:
    rows = [row for row in range(panel.table.rowCount()) if panel._row_path(row) == path]
    assert rows, f"{path} is not listed"
    return rows[0]


def _cell(panel: RunsPanel, path: Path, column: int) -> str:
    item = panel.table.item(_row_of(panel, path), column)
    assert item is not None
    return item.text()


def test_the_runs_are_listed_by_readable_names_with_their_facts(
    qtbot: Any, make_window: Any, two_runs: tuple[Path, Path]
) -> None:
    classifier, pretraining = two_runs
    panel = _runs_tab(make_window(), qtbot)
    assert panel.table.rowCount() == 2 and not panel.empty_label.isVisible()
    headers = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]  # type: ignore[union-attr]
    assert headers == ["Name", "Started", "Pictures", "Network", "Task", "Status", "Best", "Time"]
    name = _cell(panel, classifier, NAME_COLUMN)
    assert " · Small CNN · " in name and name.endswith("%"), name
    assert _cell(panel, classifier, 5) == "finished"
    assert _cell(panel, classifier, 6).endswith("%") and _cell(panel, classifier, 7).endswith("s")
    assert _cell(panel, pretraining, NAME_COLUMN).endswith("Small CNN · pretraining (rotation)")
    assert _cell(panel, pretraining, 4) == "pretraining (rotation)"
    assert _cell(panel, pretraining, 6) == "–"  # a pretraining run has no accuracy to show
    # Nothing chosen: only opening settings from a file can be done.
    enabled = {key for key, action in panel.actions_.items() if action.isEnabled()}
    assert enabled == {"import", "refresh"}


def test_an_empty_runs_folder_says_what_the_tab_is_for(qtbot: Any, make_window: Any) -> None:
    panel = _runs_tab(make_window(), qtbot)
    assert panel.table.rowCount() == 0 and panel.empty_label.isVisible()
    assert "Each training you start is kept here" in panel.empty_label.text()


def test_renaming_in_the_table_keeps_the_name_beside_the_run(
    qtbot: Any, make_window: Any, two_runs: tuple[Path, Path]
) -> None:
    classifier, _ = two_runs
    panel = _runs_tab(make_window(), qtbot)
    made_name = _cell(panel, classifier, NAME_COLUMN)
    item = panel.table.item(_row_of(panel, classifier), NAME_COLUMN)
    assert item is not None and item.flags() & Qt.ItemFlag.ItemIsEditable
    panel.table.setFocus()
    panel.select_runs([classifier])
    panel.actions_["rename"].trigger()  # as F2 or the Rename button: the name cell's editor
    editor = panel.table.findChild(QLineEdit)
    assert editor is not None and editor.isVisible()
    editor.selectAll()
    qtbot.keyClicks(editor, "  tulips,   first try ")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: (classifier / NAME_FILE).exists())
    assert (classifier / NAME_FILE).read_text().strip() == "tulips, first try"
    assert _cell(panel, classifier, NAME_COLUMN) == "tulips, first try"
    assert classifier.is_dir() and RunDirectory(classifier).read_status()["status"] == "completed"
    panel.rename(classifier, "")  # an empty name goes back to the made one
    assert not (classifier / NAME_FILE).exists()
    assert _cell(panel, classifier, NAME_COLUMN) == made_name


def test_comparing_two_runs_overlays_their_curves_and_marks_the_settings_that_differ(
    qtbot: Any, make_window: Any, two_runs: tuple[Path, Path]
) -> None:
    classifier, pretraining = two_runs
    window = make_window()
    panel = _runs_tab(window, qtbot)
    panel.select_runs([classifier, pretraining])
    assert panel.actions_["compare"].isEnabled() and not panel.actions_["reopen"].isEnabled()
    panel.actions_["compare"].trigger()
    dialog = window.compare_dialog
    assert dialog is not None and dialog.isVisible()
    titles = [entry.path for entry in dialog.entries]
    assert sorted(titles) == sorted([classifier, pretraining])
    by_path = {entry.path: str(index) for index, entry in enumerate(dialog.entries)}
    assert dialog.loss_plot.point_count(by_path[classifier]) == 2  # one point per epoch
    assert dialog.loss_plot.point_count(by_path[pretraining]) == 1
    assert dialog.accuracy_plot.point_count(by_path[classifier]) == 2
    shown = dialog.shown_settings()
    assert {"objective.task", "objective.loss", "optim.num_epochs"} <= set(shown)
    assert "data.image_size" not in shown  # the same in both: hidden until asked for
    assert all(row.differs for row in dialog.rows if row.name in shown)
    dialog.only_differences.setChecked(False)
    assert len(dialog.shown_settings()) == len(dialog.rows) > len(shown)
    task_row = [row.name for row in dialog.rows].index("objective.task")
    item = dialog.settings_table.item(task_row, 0)
    assert item is not None and item.font().bold() and item.background().color().alpha() > 0
    dialog.close()


def test_reopening_a_run_brings_back_its_curves_predictions_and_evaluation(
    qtbot: Any, make_window: Any, two_runs: tuple[Path, Path]
) -> None:
    classifier, _ = two_runs
    window = make_window()
    assert window.metrics_panel.accuracy_plot.point_count("val") == 0  # a fresh window
    panel = _runs_tab(window, qtbot)
    panel.select_runs([classifier])
    panel.table.cellDoubleClicked.emit(_row_of(panel, classifier), 0)
    assert window.layout_parts.tabs.currentWidget() is window.metrics_panel
    assert window.metrics_panel.accuracy_plot.point_count("val") == 2
    gallery = window.predictions_panel
    assert len(gallery.model.records) > 0
    assert "validation images correct" in gallery.summary_label.text()
    assert window.model_tabs.run_dir == classifier
    evaluation = window.evaluation_panel
    assert evaluation.run_dir == classifier
    qtbot.waitUntil(lambda: evaluation.evaluation is not None, timeout=60_000)
    assert not window.session.is_running  # reopening starts no training


def test_a_stopped_run_resumes_from_the_runs_tab(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path
) -> None:
    stopped = make_stopped_run(
        replace_field(tiny_config, "device.device", "cpu"), tmp_path / "runs", after_epoch=1
    )
    window = make_window()
    panel = _runs_tab(window, qtbot)
    assert _cell(panel, stopped, 5) == "stopped (can be resumed)"
    panel.select_runs([stopped])
    assert panel.actions_["resume"].isEnabled()
    with qtbot.waitSignal(window.session.running_changed, timeout=30_000):
        panel.actions_["resume"].trigger()
    assert not panel.actions_["resume"].isEnabled()  # nothing else starts while it trains
    qtbot.waitUntil(
        lambda: window.session.last_finished is not None and not window.session.is_running,
        timeout=120_000,
    )
    assert window.session.last_finished.status == STATUS_COMPLETED
    assert RunDirectory(stopped).read_status()["epochs_completed"] == 3
    assert window.layout_parts.tabs.currentWidget() is window.metrics_panel  # it showed the run
    window.show_tab(panel)  # back to the list: read again, as the run changed while away
    assert _cell(panel, stopped, 5) == "finished"


def test_deleting_moves_the_run_to_the_trash_after_asking(
    qtbot: Any,
    make_window: Any,
    two_runs: tuple[Path, Path],
    private_trash: Path,
    dialog_calls: list[Any],
) -> None:
    classifier, pretraining = two_runs
    window = make_window()
    panel = _runs_tab(window, qtbot)
    panel.select_runs([classifier])
    panel.reopen_selected()  # the model tabs use it: deleting it must let go of it
    qtbot.waitUntil(lambda: not window.evaluation_panel.job.is_running, timeout=60_000)
    panel.actions_["delete"].trigger()
    questions = [args for name, args in dialog_calls if name == "ask_yes_no"]
    assert questions and "Move this run to the trash?" in questions[-1][2]
    assert not classifier.exists() and pretraining.is_dir()
    assert any(private_trash.glob(f"files/{classifier.name}*"))  # restorable from the trash
    assert panel.table.rowCount() == 1
    assert window.model_tabs.run_dir is None and window.evaluation_panel.run_dir is None


def test_deleting_asks_first_and_no_keeps_the_run(
    qtbot: Any,
    make_window: Any,
    two_runs: tuple[Path, Path],
    private_trash: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    classifier, _ = two_runs
    panel = _runs_tab(make_window(), qtbot)
    monkeypatch.setattr(runs_panel.dialogs, "ask_yes_no", lambda *args: False)
    panel.select_runs([classifier])
    panel.delete_selected()
    assert classifier.is_dir() and panel.table.rowCount() == 2


def test_starting_from_a_runs_settings_fills_the_window_and_starts_nothing(
    qtbot: Any, make_window: Any, two_runs: tuple[Path, Path]
) -> None:
    classifier, _ = two_runs
    window = make_window()
    window.objective_panel.image_size_spin.setValue(48)  # unlike the run's 32
    panel = _runs_tab(window, qtbot)
    panel.select_runs([classifier])
    panel.actions_["start_from"].trigger()
    config = window.settings.config
    assert config.data.image_size == 32 and config.optim.num_epochs == 2
    assert config.model.backbone == "small_cnn" and config.run_name is None
    assert window.objective_panel.image_size_spin.value() == 32  # the panels show them
    assert not window.session.is_running
    assert "press Start" in window.statusBar().currentMessage()


def test_settings_go_out_to_a_file_and_come_back_in(
    qtbot: Any,
    make_window: Any,
    two_runs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    classifier, _ = two_runs
    window = make_window()
    panel = _runs_tab(window, qtbot)
    target = tmp_path / "my settings.json"
    suggested: list[str] = []
    monkeypatch.setattr(
        runs_panel,
        "choose_settings_destination",
        lambda _parent, name: suggested.append(name) or str(target),
    )
    panel.select_runs([classifier])
    panel.actions_["export"].trigger()
    assert json.loads(target.read_text())["data"]["image_size"] == 32
    assert "/" not in Path(suggested[0]).name.removesuffix(".json").replace(" - ", "")
    window.objective_panel.image_size_spin.setValue(48)
    monkeypatch.setattr(runs_panel, "choose_settings_file", lambda *_args: str(target))
    panel.actions_["import"].trigger()
    assert window.settings.config.data.image_size == 32
    assert not window.session.is_running


def test_a_damaged_settings_file_is_refused_by_name(
    qtbot: Any,
    make_window: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    dialog_calls: list[Any],
) -> None:
    window = make_window()
    panel = _runs_tab(window, qtbot)
    before = window.settings.config
    broken = tmp_path / "broken.json"
    broken.write_text('{"optim": {"num_epochs": "many"}}')
    monkeypatch.setattr(runs_panel, "choose_settings_file", lambda *_args: str(broken))
    panel.import_settings_file()
    errors = [args for name, args in dialog_calls if name == "show_error"]
    assert errors and "broken.json" in errors[-1][2]
    assert window.settings.config == before  # nothing changed behind the user's back


def test_the_runs_list_follows_a_new_run(
    qtbot: Any, make_window: Any, dialog_calls: list[Any]
) -> None:
    """A run started in the window appears in the list without asking for it."""
    window = make_window()
    choose_tiny_training(window, image_size=16, epochs=1)
    panel = _runs_tab(window, qtbot)
    assert panel.table.rowCount() == 0
    window.start_training()
    qtbot.waitUntil(
        lambda: window.session.last_finished is not None and not window.session.is_running,
        timeout=120_000,
    )
    assert window.session.last_finished.status == STATUS_COMPLETED, dialog_calls
    window.show_tab(panel)
    assert panel.table.rowCount() == 1
    run_dir = panel._row_path(0)
    assert run_dir is not None and _cell(panel, run_dir, 5) == "finished"


def test_at_launch_the_last_run_is_shown_as_it_was_left(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path
) -> None:
    config = replace_field(tiny_config, "device.device", "cpu")
    _train(config, tmp_path / "runs", optim__num_epochs=1)
    last = _train(config, tmp_path / "runs", optim__num_epochs=2)
    window = make_window()
    window.show_last_run()  # what the app does once its window is on screen
    assert window.metrics_panel.accuracy_plot.point_count("val") == 2  # the newest run's
    assert len(window.predictions_panel.model.records) > 0
    assert window.model_tabs.run_dir == last
    assert not window.evaluation_panel.job.is_running  # nothing is measured by itself
    assert "Showing your last run" in window.statusBar().currentMessage()
    assert not window.session.is_running


def test_at_launch_nothing_is_shown_without_runs(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    window.show_last_run()
    assert window.metrics_panel.accuracy_plot.point_count("val") == 0
    assert window.model_tabs.run_dir is None
