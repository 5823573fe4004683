"""The training worker and session: event order, stop, errors, closing during a run (fake trainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.events import STATUS_COMPLETED, STATUS_FAILED, STATUS_STOPPED
from ptm_studio.gui.jobs.training import TrainingSession

from .conftest import FakeTrainer


def _signals(session: TrainingSession) -> list[Any]:
    return [
        session.training_started,
        session.batch_finished,
        session.epoch_finished,
        session.training_finished,
    ]


def test_session_emits_events_in_order(
    qtbot: Any, tiny_config: RunConfig, fake_trainer: type[FakeTrainer]
) -> None:
    fake_trainer.num_batches = 2
    session = TrainingSession(trainer_factory=fake_trainer)
    config = replace_field(tiny_config, "optim.num_epochs", 1)
    with qtbot.waitSignals(
        [
            session.training_started,
            session.batch_finished,
            session.batch_finished,
            session.epoch_finished,
            session.predictions_ready,
            session.checkpoint_saved,
            session.training_finished,
        ],
        order="strict",
        timeout=10_000,
    ):
        session.start(config)
    assert session.last_finished.status == STATUS_COMPLETED
    qtbot.waitUntil(lambda: not session.is_running, timeout=5000)


def test_worker_exception_becomes_a_failed_finish(
    qtbot: Any, tiny_config: RunConfig, fake_trainer: type[FakeTrainer]
) -> None:
    fake_trainer.error = MemoryError("out of memory while loading a batch")
    session = TrainingSession(trainer_factory=fake_trainer)
    with qtbot.waitSignal(session.training_finished, timeout=10_000) as blocker:
        session.start(tiny_config)
    event = blocker.args[0]
    assert event.status == STATUS_FAILED
    assert "out of memory" in event.error_message
    assert "MemoryError" in event.error_details
    qtbot.waitUntil(lambda: not session.is_running, timeout=5000)


def test_start_button_runs_and_the_window_returns_to_idle(
    qtbot: Any, make_window: Any, fake_trainer: type[FakeTrainer]
) -> None:
    window = make_window(trainer_factory=fake_trainer)
    session = window.session
    with qtbot.waitSignals(
        [
            session.training_started,
            session.batch_finished,
            session.epoch_finished,
            session.training_finished,
        ],
        order="simple",
        timeout=10_000,
    ):
        window.training_panel.start_button.click()
    assert not window.model_panel.isEnabled() or session.is_running is False
    qtbot.waitUntil(lambda: not session.is_running, timeout=5000)
    assert window.training_panel.start_button.isEnabled()
    assert window.model_panel.isEnabled() and window.objective_panel.isEnabled()


def test_settings_are_frozen_while_running(
    qtbot: Any, make_window: Any, fake_trainer: type[FakeTrainer]
) -> None:
    fake_trainer.delay_s = 0.05
    fake_trainer.num_batches = 100
    window = make_window(trainer_factory=fake_trainer)
    with qtbot.waitSignal(window.session.batch_finished, timeout=10_000):
        window.start_training()
    assert not window.dataset_panel.isEnabled()
    assert not window.model_panel.isEnabled()
    assert not window.objective_panel.isEnabled()
    assert window.training_panel.frozen_banner.isVisibleTo(window.training_panel)
    assert not window.start_action.isEnabled() and window.stop_action.isEnabled()
    with qtbot.waitSignal(window.session.running_changed, timeout=10_000):
        window.stop_training()


def test_stop_mid_run_ends_stopped_and_reenables_controls(
    qtbot: Any, make_window: Any, fake_trainer: type[FakeTrainer]
) -> None:
    fake_trainer.delay_s = 0.02
    fake_trainer.num_batches = 500
    window = make_window(trainer_factory=fake_trainer)
    with qtbot.waitSignal(window.session.batch_finished, timeout=10_000):
        window.training_panel.start_button.click()
    with qtbot.waitSignal(window.session.training_finished, timeout=10_000) as blocker:
        window.training_panel.stop_button.click()
    assert blocker.args[0].status == STATUS_STOPPED
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=5000)
    assert window.training_panel.start_button.isEnabled()
    assert window.training_panel.resume_button.isEnabled()
    assert window.model_panel.isEnabled()
    assert "Stopped" in window.training_panel.progress_bar.format()


def test_exception_in_the_worker_shows_the_error_and_returns_to_idle(
    qtbot: Any, make_window: Any, fake_trainer: type[FakeTrainer], dialog_calls: list[Any]
) -> None:
    fake_trainer.error = RuntimeError("the graphics card went away")
    window = make_window(trainer_factory=fake_trainer)
    with qtbot.waitSignal(
        window.session.running_changed, timeout=10_000, check_params_cb=lambda running: not running
    ):
        window.training_panel.start_button.click()
    errors = [args for name, args in dialog_calls if name == "show_error"]
    assert len(errors) == 1
    _, _title, message, details = errors[0]
    assert "the graphics card went away" in message
    assert "RuntimeError" in details
    assert window.training_panel.start_button.isEnabled()
    assert "Failed" in window.training_panel.progress_bar.format()


def test_closing_during_a_run_asks_stops_and_leaves_no_thread(
    qtbot: Any, make_window: Any, fake_trainer: type[FakeTrainer], dialog_calls: list[Any]
) -> None:
    fake_trainer.delay_s = 0.02
    fake_trainer.num_batches = 1000
    window = make_window(trainer_factory=fake_trainer)
    window.show()
    with qtbot.waitSignal(window.session.batch_finished, timeout=10_000):
        window.start_training()
    window.close()
    assert any(name == "ask_yes_no" for name, _ in dialog_calls)
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=10_000)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert window.session.last_finished.status == STATUS_STOPPED
    # The dangling-thread fixture checks that no QThread is left running.


def test_closing_while_idle_saves_choices_for_next_launch(
    qtbot: Any, make_window: Any, tiny_dataset: Path
) -> None:
    window = make_window()
    window.objective_panel.epochs_spin.setValue(7)
    window.close()
    from ptm_studio.gui.main_window import MainWindow

    again = MainWindow(runs_root=None)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.dataset_panel.summary is not None, timeout=10_000)
    assert again.objective_panel.epochs_spin.value() == 7
    assert Path(again.dataset_panel.folder) == tiny_dataset
    again.close()


def test_start_without_a_dataset_explains_instead_of_crashing(
    qtbot: Any, make_window: Any, dialog_calls: list[Any], fake_trainer: type[FakeTrainer]
) -> None:
    window = make_window(trainer_factory=fake_trainer)
    window.dataset_panel.summary = None
    window.start_training()
    assert not window.session.is_running
    assert any(name == "show_info" for name, _ in dialog_calls)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [(["train", "--help"], "cli"), (["models"], "cli"), ([], "gui"), (["--demo"], "gui")],
)
def test_main_dispatches_cli_commands_and_otherwise_opens_the_app(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str
) -> None:
    from ptm_studio import cli
    from ptm_studio.__main__ import main
    from ptm_studio.core import app_logging
    from ptm_studio.gui import app

    # No log file for the rest of the test session (it would collect every later test's logs).
    monkeypatch.setattr(app_logging, "configure_logging", lambda *_args, **_kwargs: Path())
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(cli, "main", lambda arguments: calls.append(("cli", list(arguments))) or 0)
    monkeypatch.setattr(app, "main", lambda arguments: calls.append(("gui", list(arguments))) or 0)
    assert main(argv) == 0
    assert calls == [(expected, argv)]


def test_first_launch_opens_on_the_demo_images(qtbot: Any, tmp_path: Path) -> None:
    from ptm_studio.gui.device_probe import demo_folder
    from ptm_studio.gui.main_window import MainWindow

    demo = demo_folder()
    if demo is None:
        pytest.skip("the demo images are not in this checkout")
    window = MainWindow(runs_root=tmp_path / "runs")  # fresh settings: a first launch
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.dataset_panel.summary is not None, timeout=20_000)
    assert Path(window.dataset_panel.folder) == demo
    assert window.dataset_panel.summary.is_labeled
    assert "demo images" in window.training_panel.status_label.text()
    window.close()


def test_dropping_a_folder_on_the_dataset_panel_scans_it(qtbot: Any, tiny_dataset: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    from ptm_studio.gui.panels.dataset_panel import DatasetPanel

    panel = DatasetPanel()
    qtbot.addWidget(panel)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_dataset))])
    event = QDropEvent(
        QPointF(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(panel.dataset_changed, timeout=20_000) as blocker:
        panel.dropEvent(event)
    assert Path(panel.folder) == tiny_dataset
    assert len(blocker.args[0].classes) == 3
    panel.shutdown()


def test_an_error_in_a_gui_slot_is_shown_and_the_app_keeps_running(
    monkeypatch: pytest.MonkeyPatch, dialog_calls: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from ptm_studio.gui import app

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    app._install_excepthook()
    try:
        raise ValueError("bad value in a slot")
    except ValueError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    errors = [args for name, args in dialog_calls if name == "show_error"]
    assert errors and "bad value in a slot" in errors[0][2]
    assert "ValueError" in errors[0][3]
    assert "bad value in a slot" in caplog.text


OUT_OF_MEMORY_MESSAGE = (
    "The graphics card ran out of memory: each batch is now processed in 2 parts "
    "(the same results, a little slower)."
)


def test_an_adjustment_during_training_is_shown_and_stays_visible(
    qtbot: Any,
    make_window: Any,
    fake_trainer: type[FakeTrainer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from PySide6.QtCore import Qt

    from ptm_studio.core.engine.events import BatchFinished, TrainingAdjusted

    class AdjustingTrainer(fake_trainer):  # type: ignore[misc, valid-type]
        adjust_at_step = 2

        def _emit(self, event: Any) -> None:
            super()._emit(event)
            if isinstance(event, BatchFinished) and event.global_step == self.adjust_at_step:
                adjusted = TrainingAdjusted("out_of_memory", OUT_OF_MEMORY_MESSAGE, 2)
                super()._emit(adjusted)

    window = make_window(trainer_factory=AdjustingTrainer)
    status_messages: list[str] = []
    window.statusBar().messageChanged.connect(status_messages.append)
    notice = window.training_panel.notice_label
    assert not notice.isVisibleTo(window.training_panel)
    with qtbot.waitSignal(window.session.training_adjusted, timeout=10_000) as blocker:
        window.start_training()
    assert blocker.args[0].kind == "out_of_memory"
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=10_000)
    assert window.session.last_finished.status == STATUS_COMPLETED
    assert any(OUT_OF_MEMORY_MESSAGE in message for message in status_messages)
    # Still there after the run ended, in plain text, and in the log.
    assert notice.isVisibleTo(window.training_panel)
    assert OUT_OF_MEMORY_MESSAGE in notice.text()
    assert notice.textFormat() == Qt.TextFormat.PlainText
    assert "out_of_memory" in caplog.text and OUT_OF_MEMORY_MESSAGE in caplog.text
    # The next run (no adjustment this time) starts without the old note.
    AdjustingTrainer.adjust_at_step = 0
    with qtbot.waitSignal(window.session.training_started, timeout=10_000):
        window.start_training()
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=10_000)
    assert not notice.isVisibleTo(window.training_panel) and notice.text() == ""


def test_training_panel_keeps_the_latest_adjustment_of_each_kind(qtbot: Any) -> None:
    from ptm_studio.core.engine.events import TrainingAdjusted
    from ptm_studio.gui.panels._preview import fake_started
    from ptm_studio.gui.panels.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.show_adjustment(TrainingAdjusted("out_of_memory", "in 2 parts", 3))
    panel.show_adjustment(TrainingAdjusted("out_of_memory", "in 4 parts", 9))
    panel.show_adjustment(TrainingAdjusted("data_loader", "<b>no helpers</b>", 12))
    lines = panel.notice_label.text().splitlines()
    assert lines == [
        "Adjusted to keep going: in 4 parts",
        "Adjusted to keep going: <b>no helpers</b>",
    ]
    assert panel.notice_label.toolTip()
    panel.start_run(fake_started())
    assert panel.notice_label.text() == "" and not panel.notice_label.isVisibleTo(panel)


def test_every_engine_event_has_its_signal_and_reaches_it(qtbot: Any) -> None:
    """The session's signals come from the event table: a new event needs no edit in the GUI."""
    from ptm_studio.core.engine.control import TrainingControl
    from ptm_studio.core.engine.events import EVENT_TYPES
    from ptm_studio.gui.jobs.event_signals import EventForwarder
    from ptm_studio.gui.panels._preview import fake_pretrain_samples

    session = TrainingSession()
    for event_type in EVENT_TYPES.values():
        assert session.signal_for(event_type) is not None, event_type.__name__
    event = fake_pretrain_samples(1)
    with qtbot.waitSignal(session.pretrain_samples_ready, timeout=1000) as blocker:
        EventForwarder(session.emit_event).on_event(event, TrainingControl())
    assert blocker.args[0] is event


def test_the_training_panel_says_why_a_run_ended_early(qtbot: Any) -> None:
    from ptm_studio.core.engine.events import EarlyStopRequested
    from ptm_studio.gui.panels.training_panel import TrainingPanel

    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.show_early_stop(EarlyStopRequested("no better validation score for 3 epochs", 7, 140))
    assert panel.notice_label.isVisibleTo(panel)
    assert panel.notice_label.text() == (
        "Ended early after epoch 7: no better validation score for 3 epochs."
    )
