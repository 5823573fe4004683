"""End to end with the real core Trainer: the Start button trains a tiny CNN on CPU.

Marked slow: a few seconds each on two CPU cores.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from PySide6.QtCore import QObject, Slot

from ptm_studio.core.engine.events import STATUS_COMPLETED, STATUS_STOPPED
from ptm_studio.core.runs import RunDirectory
from ptm_studio.gui.event_loop_probe import EventLoopProbe
from ptm_studio.gui.warmup import warm_up
from tests.gui.run_makers import choose_tiny_training

pytestmark = pytest.mark.slow


class _MomentRecorder(QObject):
    def __init__(self, probe: EventLoopProbe, moments: list[tuple[float, str]]) -> None:
        super().__init__()
        self.probe, self.moments = probe, moments

    def _note(self, what: str) -> None:
        self.moments.append((round(time.perf_counter() - self.probe.started_at, 3), what))

    @Slot(object)
    def started(self, event: Any) -> None:
        self._note("started")

    @Slot(object)
    def epoch(self, event: Any) -> None:
        self._note(f"epoch {event.epoch}")

    @Slot(object)
    def finished(self, event: Any) -> None:
        self._note("finished")


def _prepare(window: Any) -> None:
    choose_tiny_training(window)


def test_start_button_trains_for_real_and_fills_plots_and_predictions(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window()
    _prepare(window)
    session = window.session
    with qtbot.waitSignals(
        [
            session.training_started,
            session.batch_finished,
            session.epoch_finished,
            session.training_finished,
        ],
        order="simple",
        timeout=120_000,
    ):
        window.training_panel.start_button.click()
    qtbot.waitUntil(lambda: not session.is_running, timeout=30_000)
    assert session.last_finished.status == STATUS_COMPLETED, session.last_finished.error_details
    assert session.last_finished.run_dir is not None
    assert str(session.last_finished.run_dir).startswith(str(window.session.runs_root))
    metrics = window.metrics_panel
    metrics.refresh_all()
    steps = metrics.step_loss_plot.point_count("raw")
    assert steps >= 2
    assert metrics.step_loss_plot.drawn_point_count("raw") == steps
    assert metrics.accuracy_plot.point_count("val") == 2
    assert metrics.epoch_loss_plot.drawn_point_count("train") == 2
    assert window.predictions_panel.model.rowCount() > 0
    assert window.training_panel.start_button.isEnabled()
    # The finished run is evaluated by itself; the gallery then shows calibrated confidences.
    evaluation_panel = window.evaluation_panel
    qtbot.waitUntil(lambda: evaluation_panel.evaluation is not None, timeout=60_000)
    assert evaluation_panel.run_dir == session.last_finished.run_dir
    assert evaluation_panel.evaluation.num_pictures == window.predictions_panel.model.rowCount()
    assert "Evaluated (best model)" in window.predictions_panel.summary_label.text()
    qtbot.waitUntil(lambda: not evaluation_panel.job.is_running)
    # The evaluated model explains its answers in the large view.
    gallery = window.predictions_panel
    gallery.grid.clicked.emit(gallery.model.index(0))
    assert gallery.viewer is not None and gallery.viewer.heatmap.switch.isEnabled()
    with qtbot.waitSignal(gallery.viewer.heatmap.job.succeeded, timeout=30_000):
        gallery.viewer.heatmap.switch.setChecked(True)
    gallery.close_viewer()


def test_event_order_is_strict_for_a_one_epoch_run(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    _prepare(window)
    window.objective_panel.epochs_spin.setValue(1)
    session = window.session
    # 18 images, 20 % validation → 12–15 training images → 3–4 batches of 4.
    with qtbot.waitSignals(
        [
            session.training_started,
            session.batch_finished,
            session.batch_finished,
            session.batch_finished,
        ],
        order="strict",
        timeout=120_000,
    ):
        window.start_training()
    with qtbot.waitSignals(
        [session.epoch_finished, session.predictions_ready, session.training_finished],
        order="simple",
        timeout=120_000,
    ):
        pass
    qtbot.waitUntil(lambda: not session.is_running, timeout=30_000)
    assert session.last_finished.status == STATUS_COMPLETED


def test_the_gui_thread_is_never_blocked_during_a_tiny_run(qtbot: Any, make_window: Any) -> None:
    warm_up()  # the app does this at launch; see gui/warmup.py
    window = make_window()
    window.show()
    _prepare(window)
    qtbot.wait(300)  # let the launch-time device probe finish
    probe = EventLoopProbe()
    moments: list[tuple[float, str]] = []
    recorder = _MomentRecorder(probe, moments)
    window.session.training_started.connect(recorder.started)
    window.session.epoch_finished.connect(recorder.epoch)
    window.session.training_finished.connect(recorder.finished)
    probe.start()
    qtbot.wait(50)
    moments.append((round(time.perf_counter() - probe.started_at, 3), "click"))
    window.training_panel.start_button.click()  # the click itself is measured too
    qtbot.waitUntil(
        lambda: window.session.last_finished is not None and not window.session.is_running,
        timeout=120_000,
    )
    qtbot.wait(200)
    max_gap = probe.stop()
    assert window.session.last_finished.status == STATUS_COMPLETED, (
        window.session.last_finished.error_details
    )
    # Catches real blocking (work on the GUI thread stalling it for a second or more), not speed:
    # at least 7x the largest gap seen on a busy 2-core CI machine (137 ms). The speed figures
    # (p99 <= 50 ms, max <= 100 ms) are measured by benchmarks/event_loop_responsiveness.py.
    assert max_gap < 1.0, (
        f"the GUI event loop was blocked for {1000 * max_gap:.0f} ms; long gaps {probe.long_gaps}, "
        f"events {moments}"
    )


def test_stop_then_resume_continues_the_run(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    _prepare(window)
    window.objective_panel.epochs_spin.setValue(3)
    session = window.session
    with qtbot.waitSignal(session.batch_finished, timeout=120_000):
        window.start_training()
    with qtbot.waitSignal(session.training_finished, timeout=60_000) as blocker:
        window.stop_training()
    assert blocker.args[0].status == STATUS_STOPPED, blocker.args[0].error_details
    qtbot.waitUntil(lambda: not session.is_running, timeout=30_000)
    assert window.training_panel.resume_button.isEnabled()
    with qtbot.waitSignal(session.training_finished, timeout=120_000) as blocker:
        window.training_panel.resume_button.click()
    assert blocker.args[0].status == STATUS_COMPLETED, blocker.args[0].error_details
    qtbot.waitUntil(lambda: not session.is_running, timeout=30_000)


def test_training_for_minutes_from_the_window_plans_the_epochs_and_says_so(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window()
    _prepare(window)
    schedule = window.objective_panel.schedule
    schedule.train_for_combo.setCurrentIndex(schedule.train_for_combo.findData("minutes"))
    window.settings.set("optim.time_budget_minutes", 0.1)  # shorter than the box offers
    assert window.objective_panel.minutes_spin.value() == 0.1
    session = window.session
    with qtbot.waitSignal(session.training_finished, timeout=120_000):
        window.training_panel.start_button.click()
    qtbot.waitUntil(lambda: not session.is_running, timeout=30_000)
    finished = session.last_finished
    assert finished.status == STATUS_COMPLETED, finished.error_details
    notice = window.training_panel.notice_label.text()
    assert "Time budget 0.1 minutes: about" in notice, notice
    planned = RunDirectory(finished.run_dir).read_config().optim.num_epochs
    assert f"so {planned} epoch" in notice  # the run trains the epochs it planned and said
    assert 1 <= finished.epochs_completed <= planned
