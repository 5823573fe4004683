"""The window never changes a setting behind the user's back (issue 11).

- The mouse wheel scrolls the settings column; it changes no field under the pointer (unless
  the field has the keyboard focus), whichever field it is, including ones added later.
- A task switched because a folder had no classes is switched back by a folder with classes,
  and the images panel says so; a task the user chose is never changed by a folder.
- A folder with nothing to train on is never "Ready" and Start stays off.
- The moment another folder is chosen, nothing of the folder before stays on screen and Start
  waits until the new one has been checked.
- The folder check says how far it is: "N of M pictures, about T left".
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QScrollArea,
    QScrollBar,
    QSpinBox,
    QWidget,
)

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.gui.dataset_summary import DatasetSummary, scan_dataset
from ptm_studio.gui.panels import dataset_panel as dataset_panel_module
from ptm_studio.gui.panels._preview import make_sample_images
from ptm_studio.gui.panels.dataset_panel import DatasetPanel
from ptm_studio.gui.widgets import job_progress

from .conftest import FakeTrainer

FIELD_KINDS = (QAbstractSpinBox, QComboBox, QAbstractSlider)
"""Widgets whose value Qt changes on a wheel turn (scroll bars only scroll)."""


def _fields(column: QWidget) -> list[QWidget]:
    """Every field a wheel could change that the user can see in the settings column."""
    return [
        widget
        for widget in column.findChildren(QWidget)
        if isinstance(widget, FIELD_KINDS)
        and not isinstance(widget, QScrollBar)
        and widget.isVisibleTo(column)
    ]


def _value_of(field: QWidget) -> object:
    if isinstance(field, QComboBox):
        return field.currentIndex()
    return field.value()  # type: ignore[attr-defined]


def _turn_wheel_over(window: QWidget, widget: QWidget, notches: int) -> None:
    """A real wheel turn (through the window system, as a mouse sends it) over ``widget``."""
    where = widget.mapTo(window, widget.rect().center())
    QTest.wheelEvent(window.windowHandle(), QPointF(where), QPoint(0, 120 * notches))
    QApplication.processEvents()


def _bring_into_view(scroll: QScrollArea, field: QWidget) -> None:
    """Scroll until the pointer can rest on ``field`` (laid out again first, when it just came)."""
    viewport = scroll.viewport()
    for _ in range(3):
        QApplication.processEvents()
        scroll.ensureWidgetVisible(field, 0, 60)
        QApplication.processEvents()
        center = field.mapTo(viewport, field.rect().center())
        if viewport.rect().contains(center):
            return
    raise AssertionError(f"{field!r} cannot be scrolled into view")


def _shown_window(qtbot: Any, make_window: Callable[..., Any], **options: Any) -> Any:
    window = make_window(**options)
    window.resize(1200, 560)  # short: the settings column must scroll
    window.show()
    qtbot.waitExposed(window)
    return window


def _choose(qtbot: Any, window: Any, folder: Path) -> DatasetSummary:
    with qtbot.waitSignal(window.dataset_panel.dataset_changed, timeout=30_000) as blocker:
        window.dataset_panel.set_folder(folder)
    assert blocker.args[0] is not None
    return blocker.args[0]


def _can_start(window: Any) -> bool:
    start_button, start_action = window.training_panel.start_button, window.start_action
    assert start_button.isEnabled() == start_action.isEnabled()  # button and Ctrl+Return agree
    return bool(start_button.isEnabled())


# ----------------------------------------------------------------------------- the wheel

SETTINGS_SHOWN = {
    "finetuning": {},
    "contrastive pretraining": {"objective.task": "pretrain", "objective.loss": "nt_xent"},
    "pretraining with a margin": {
        "objective.task": "pretrain",
        "objective.loss": "contrastive_margin",
    },
    "an earlier run's weights, last layer first": {
        "model.weights": "run",
        "model.training_mode": "freeze_then_unfreeze",
    },
}
"""Settings that show different rows, so every field of every panel is turned over once."""


@pytest.mark.parametrize("shown", list(SETTINGS_SHOWN))
def test_the_wheel_scrolls_the_settings_column_over_every_field_and_changes_nothing(
    qtbot: Any, make_window: Callable[..., Any], shown: str
) -> None:
    window = _shown_window(qtbot, make_window)
    config = window.settings.config
    for field_path, value in SETTINGS_SHOWN[shown].items():
        config = replace_field(config, field_path, value)
    window.settings.replace(config)
    window.objective_panel.advanced.set_open(True)  # every field: the Advanced ones too
    qtbot.wait(50)  # the column grows
    scroll = window.layout_parts.settings_scroll
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0, "the column must be taller than the window for this test"
    fields = _fields(scroll.widget())
    assert len(fields) >= 10, [type(field).__name__ for field in fields]
    window.dataset_panel.choose_button.setFocus()  # the keyboard is somewhere else
    before = window.settings.config
    for field in fields:
        _bring_into_view(scroll, field)
        start, value = bar.value(), _value_of(field)
        notches = -1 if start < bar.maximum() else 1  # down, unless already at the bottom
        _turn_wheel_over(window, field, notches)
        name = f"{type(field).__name__} {field.toolTip()[:50]!r}"
        assert window.settings.config == before, f"the wheel changed a setting over {name}"
        assert _value_of(field) == value, name
        assert not field.hasFocus(), f"the wheel gave {name} the focus"
        moved = bar.value() > start if notches < 0 else bar.value() < start
        assert moved, f"the column did not scroll over {name}"


def test_a_field_with_the_keyboard_focus_takes_the_wheel(
    qtbot: Any, make_window: Callable[..., Any]
) -> None:
    window = _shown_window(qtbot, make_window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    spin = window.objective_panel.epochs_spin
    _bring_into_view(window.layout_parts.settings_scroll, spin)
    spin.setFocus(Qt.FocusReason.TabFocusReason)  # the user tabbed to it
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    epochs = spin.value()
    _turn_wheel_over(window, spin, 1)
    assert spin.value() == epochs + 1
    assert window.settings.config.optim.num_epochs == epochs + 1  # meant, so written


def test_fields_added_to_a_panel_later_are_guarded_too(
    qtbot: Any, make_window: Callable[..., Any]
) -> None:
    window = _shown_window(qtbot, make_window)
    spin = QSpinBox()
    spin.setRange(0, 100)
    spin.setValue(50)
    row = QWidget()  # a field inside a new container, built before it is added
    combo = QComboBox(row)
    combo.addItems(["one", "two", "three"])
    QHBoxLayout(row).addWidget(combo)
    form = window.objective_panel.layout()
    form.insertRow(0, "Added later:", spin)
    form.insertRow(1, "Added later too:", row)
    QApplication.processEvents()
    scroll = window.layout_parts.settings_scroll
    bar = scroll.verticalScrollBar()
    for field in (spin, combo):
        policy = field.focusPolicy()
        assert policy == Qt.FocusPolicy.StrongFocus, f"{field!r} takes the focus on a wheel"
        _bring_into_view(scroll, field)
        start, value = bar.value(), _value_of(field)
        notches = -1 if start < bar.maximum() else 1
        _turn_wheel_over(window, field, notches)
        assert _value_of(field) == value
        assert bar.value() != start, f"{field!r}: {start} of {bar.maximum()}, {notches}"


# ----------------------------------------------------------------------------- the task


def test_a_task_switched_for_a_folder_without_classes_is_switched_back_and_said_so(
    qtbot: Any,
    make_window: Callable[..., Any],
    make_unlabelled_folder: Callable[..., Path],
    tiny_dataset: Path,
    fake_trainer: type[FakeTrainer],
) -> None:
    window = make_window(trainer_factory=fake_trainer)
    panel, notice = window.dataset_panel, window.dataset_panel.notice_label
    assert window.settings.config.objective.task == "finetune"
    assert not notice.isVisibleTo(panel)

    told: list[str] = []
    panel.readiness_changed.connect(lambda ready: told.append(f"ready {ready}"))
    panel.dataset_changed.connect(lambda summary: told.append("dataset"))
    _choose(qtbot, window, make_unlabelled_folder())
    assert told == ["ready False", "dataset", "ready True"]  # the switch tells nothing early
    objective = window.settings.config.objective
    assert (objective.task, objective.loss) == ("pretrain", "nt_xent")
    assert notice.isVisibleTo(panel)
    assert "no class subfolders" in notice.text() and "Learn from unlabelled" in notice.text()
    assert panel.is_ready and _can_start(window)  # it can pretrain, as the notice says
    # What is remembered for the next launch is the user's own task (that folder switches
    # it again, and says so).
    assert panel.folder_task.remembered_config().objective.task == "finetune"

    _choose(qtbot, window, tiny_dataset)
    objective = window.settings.config.objective
    assert (objective.task, objective.loss) == ("finetune", "cross_entropy")
    assert window.objective_panel.task_combo.currentData() == "finetune"  # shown as it is
    assert notice.isVisibleTo(panel) and "back to" in notice.text()
    window.settings.config.validate()
    with qtbot.waitSignal(window.session.training_finished, timeout=10_000):
        window.start_training()
    assert window.session.last_request.config.objective.task == "finetune"


def test_a_task_the_user_chose_is_never_changed_by_a_folder(
    qtbot: Any,
    make_window: Callable[..., Any],
    make_unlabelled_folder: Callable[..., Path],
    tiny_dataset: Path,
) -> None:
    window = make_window()
    panel, combo = window.dataset_panel, window.objective_panel.task_combo
    combo.setCurrentIndex(combo.findData("pretrain"))  # the user's own choice, on labels
    _choose(qtbot, window, make_unlabelled_folder("flat"))
    _choose(qtbot, window, tiny_dataset)
    assert window.settings.config.objective.task == "pretrain"
    assert not panel.notice_label.isVisibleTo(panel)

    # The other way round: the user wants to finetune, and the folder has no classes. It is
    # their choice: the folder does not train that way, and the panel says why.
    combo.setCurrentIndex(combo.findData("finetune"))
    _choose(qtbot, window, make_unlabelled_folder("flat again"))
    assert window.settings.config.objective.task == "finetune"
    assert not panel.is_ready and not _can_start(window)
    assert panel.blocker is not None and "not sorted into classes" in panel.blocker.message
    assert "not sorted into classes" in panel.summary_label.text()
    # Choosing pretraining makes it ready at once, without looking at the folder again.
    combo.setCurrentIndex(combo.findData("pretrain"))
    assert panel.is_ready and _can_start(window)


# ----------------------------------------------------------------------------- nothing to train on


def _empty(folder: Path) -> Path:
    folder.mkdir()
    return folder


def _only_documents(folder: Path) -> Path:
    folder.mkdir()
    (folder / "notes.txt").write_text("no pictures here")
    (folder / "sub").mkdir()
    (folder / "sub" / "table.csv").write_text("a,b\n")
    return folder


def _only_broken_pictures(folder: Path) -> Path:
    folder.mkdir()
    for index in range(3):
        (folder / f"broken_{index}.jpg").write_bytes(b"not a picture")
    return folder


UNUSABLE = {
    "an empty folder": (_empty, "No pictures were found"),
    "only documents": (_only_documents, "No pictures were found"),
    "only broken pictures": (_only_broken_pictures, "can be read"),
}


@pytest.mark.parametrize("kind", list(UNUSABLE))
def test_a_folder_with_nothing_to_train_on_is_never_ready(
    qtbot: Any,
    make_window: Callable[..., Any],
    fake_trainer: type[FakeTrainer],
    tmp_path: Path,
    dialog_calls: list[tuple[str, tuple[Any, ...]]],
    kind: str,
) -> None:
    make_folder, reason = UNUSABLE[kind]
    window = make_window(trainer_factory=fake_trainer)
    assert _can_start(window)
    _choose(qtbot, window, make_folder(tmp_path / "unusable"))
    panel = window.dataset_panel
    assert not panel.is_ready and not _can_start(window)
    assert reason in panel.summary_label.text()
    status = window.training_panel.status_label.text()
    assert "Ready" not in status and reason in status
    assert window.training_panel.progress_bar.format() == "Not ready"
    found = [
        panel.problem_tree.topLevelItem(i).text(0)
        for i in range(panel.problem_tree.topLevelItemCount())
    ]
    assert found and found[0].startswith("Must fix") and reason in found[0], found
    assert not any("No problems found" in text for text in found)
    assert window.settings.config.objective.task == "finetune"  # nothing to switch for
    window.start_training()  # the shortcut's way in, were it enabled
    assert window.session.last_request is None
    assert dialog_calls and dialog_calls[-1][0] == "show_info"


# ----------------------------------------------------------------------------- another folder


def test_choosing_another_folder_clears_the_old_one_and_start_waits_for_the_check(
    qtbot: Any,
    make_window: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_dataset: Path,
) -> None:
    release = threading.Event()

    def held_scan(root: Path, **options: Any) -> DatasetSummary:
        """The real scan, held for the second folder until the test has looked."""
        while Path(root).name == "second" and not release.wait(0.01):
            if options["should_stop"]():
                break
        return scan_dataset(root, **options)

    monkeypatch.setattr(dataset_panel_module, "scan_dataset", held_scan)
    window = make_window()
    panel = window.dataset_panel
    assert panel.class_table.rowCount() == 3 and panel.thumbnail_model.rowCount() > 0
    assert _can_start(window)
    told: list[tuple[str, object]] = []
    panel.readiness_changed.connect(lambda ready: told.append(("ready", ready)))
    panel.dataset_changed.connect(lambda summary: told.append(("dataset", summary)))
    make_sample_images(tmp_path / "second", classes=("ant", "bee"), per_class=6)

    panel.set_folder(tmp_path / "second")
    assert told == [("ready", False)]  # at once, before the new folder has been looked at
    assert panel.summary is None and panel.is_checking
    assert panel.class_table.rowCount() == 0
    assert panel.thumbnail_model.rowCount() == 0
    assert panel.problem_tree.topLevelItemCount() == 0
    assert "Looking at" in panel.summary_label.text()
    assert not _can_start(window)
    assert "Start is possible once" in window.training_panel.status_label.text()
    assert str(tiny_dataset) not in window.statusBar().currentMessage()  # "18 images found in"
    qtbot.waitUntil(lambda: panel.scan_progress.isVisibleTo(panel), timeout=5000)

    release.set()
    qtbot.waitUntil(lambda: panel.is_ready, timeout=30_000)
    assert [kind for kind, _ in told] == ["ready", "dataset", "ready"]
    assert told[-1] == ("ready", True)
    assert [panel.class_table.item(row, 0).text() for row in range(2)] == ["ant", "bee"]
    assert _can_start(window)
    assert panel.scan_job.wait()


# ----------------------------------------------------------------------------- progress


def test_the_folder_check_says_how_many_pictures_of_how_many_and_the_time_left(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = types.SimpleNamespace(now=100.0)
    monkeypatch.setattr(job_progress, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    steps = [threading.Event() for _ in range(3)]

    def scan(root: Path, *, progress: Any, should_stop: Any) -> DatasetSummary:
        reports = ((7, 0), (0, 40), (20, 40))  # counted while listing, then checked
        for (done, total), go_on in zip(reports, steps, strict=True):
            time.sleep(0.15)  # the Job passes on at most ten reports a second
            progress(done, total)
            while not go_on.wait(0.01):
                if should_stop():
                    break
        return DatasetSummary(root, (), "")

    panel = DatasetPanel(scan_function=scan)
    qtbot.addWidget(panel)
    panel.show()
    label = panel.scan_progress.label
    panel.set_folder(tmp_path)
    qtbot.waitUntil(lambda: label.text() == "7 pictures found so far…", timeout=5000)
    steps[0].set()
    qtbot.waitUntil(lambda: label.text() == "0 of 40 pictures", timeout=5000)
    clock.now += 10.0  # 20 pictures in 10 s: 20 more take about 10 s
    steps[1].set()
    qtbot.waitUntil(lambda: label.text() == "20 of 40 pictures, about 10 s left", timeout=5000)
    assert panel.scan_progress.bar.maximum() == 40 and panel.scan_progress.bar.value() == 20
    with qtbot.waitSignal(panel.dataset_changed, timeout=5000):
        steps[2].set()
    qtbot.waitUntil(lambda: not panel.scan_progress.isVisible(), timeout=5000)  # thread ended
    panel.shutdown()


def test_a_small_folder_reports_its_check_before_the_end(tmp_path: Path) -> None:
    make_sample_images(tmp_path / "small", classes=("ant", "bee"), per_class=20)
    reports: list[tuple[int, int]] = []
    scan_dataset(tmp_path / "small", progress=lambda done, total: reports.append((done, total)))
    assert (16, 40) in reports and reports[-1] == (40, 40)  # not only at the very end


def test_an_empty_folder_shown_alone_is_not_ready_either(qtbot: Any, tmp_path: Path) -> None:
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.dataset_changed, timeout=30_000):
        panel.settings.replace(replace_field(RunConfig(), "data.data_dir", str(tmp_path)))
    assert not panel.is_ready and panel.blocker is not None
    assert "No problems found." not in panel.problem_tree.topLevelItem(0).text(0)
    panel.shutdown()
