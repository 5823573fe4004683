"""ImageNet weights download progress: throttled on the training thread (the Trainer fires at
most ten DownloadProgressed events a second: tests/core/test_trainer.py), shown in the training
panel as "Downloading ImageNet weights… 45 of 98 MB", no thread left behind."""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Slot

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.events import STATUS_COMPLETED, DownloadProgressed
from ptm_studio.core.engine.progress import REPORT_INTERVAL_S, ProgressThrottle
from ptm_studio.gui.panels.training_panel import TrainingPanel
from ptm_studio.gui.wording import format_megabytes

from .conftest import FakeTrainer

TOTAL_BYTES = 98_000_000
HALFWAY_BYTES = 45_000_000
REPORTS_PER_HALF = 200


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_passes_the_first_one_every_interval_and_the_final_report() -> None:
    clock = FakeClock()
    passed: list[tuple[int, int]] = []
    throttle = ProgressThrottle(lambda done, total: passed.append((done, total)), 0.1, clock)
    for index in range(1, 301):  # 300 reports, 1 ms apart
        clock.now = index / 1000
        throttle(index * 1000, 300_000)
    assert passed[0] == (1000, 300_000)
    assert passed[-1] == (300_000, 300_000)
    assert len(passed) == 4  # 1 ms, 101 ms, 201 ms and the final one at 300 ms


def test_throttle_with_an_unknown_total_still_reports_now_and_then() -> None:
    clock = FakeClock()
    passed: list[tuple[int, int]] = []
    throttle = ProgressThrottle(lambda done, total: passed.append((done, total)), 0.125, clock)
    for index in range(50):
        clock.now = index * 0.0625  # exact in binary: no rounding at the interval's edge
        throttle(index, 0)
    assert [done for done, _ in passed] == list(range(0, 50, 2))


def test_panel_shows_download_sizes_in_megabytes(qtbot: Any) -> None:
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.show_download(DownloadProgressed(HALFWAY_BYTES, TOTAL_BYTES))
    assert panel.progress_bar.format() == "Downloading ImageNet weights… 45 of 98 MB"
    assert panel.progress_bar.value() == 459
    assert "ImageNet" in panel.status_label.text()
    panel.show_download(DownloadProgressed(12_300_000, 0))  # the server did not say how big
    assert panel.progress_bar.format() == "Downloading ImageNet weights… 12 MB"
    panel.show_download(DownloadProgressed(TOTAL_BYTES, TOTAL_BYTES))
    assert panel.progress_bar.format() == "ImageNet weights downloaded (98 MB)"
    assert panel.progress_bar.value() == 1000
    assert (format_megabytes(4_500_000), format_megabytes(0)) == ("4.5", "0.0")


class _Recorder(QObject):
    """Lives in the GUI thread: the session's signals land here like in the training panel."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[tuple[int, int]] = []

    @Slot(object)
    def record(self, event: DownloadProgressed) -> None:
        self.reports.append((event.done_bytes, event.total_bytes))


class DownloadingTrainer(FakeTrainer):
    """Reports a download in quick small steps through the Trainer's throttle, pausing halfway
    until the test has looked."""

    halfway = threading.Event()
    reported_for_s = 0.0

    def run(self) -> Any:
        throttle = ProgressThrottle(lambda done, total: self._emit(DownloadProgressed(done, total)))
        started = time.monotonic()
        self._download(throttle, 0, HALFWAY_BYTES)
        time.sleep(1.1 * REPORT_INTERVAL_S)
        throttle(HALFWAY_BYTES, TOTAL_BYTES)  # due again: shown, not dropped
        paused = time.monotonic()
        type(self).halfway.wait(timeout=10)
        resumed = time.monotonic()
        self._download(throttle, HALFWAY_BYTES, TOTAL_BYTES)
        type(self).reported_for_s = (paused - started) + (time.monotonic() - resumed)
        return super().run()

    def _download(self, throttle: ProgressThrottle, start: int, end: int) -> None:
        step = (end - start) // REPORTS_PER_HALF
        for index in range(1, REPORTS_PER_HALF + 1):
            throttle(start + index * step, TOTAL_BYTES)
            time.sleep(0.001)


def test_download_progress_reaches_the_panel_throttled(
    qtbot: Any, make_window: Any, tiny_config: RunConfig
) -> None:
    class Trainer(DownloadingTrainer):
        halfway = threading.Event()

    window = make_window(trainer_factory=Trainer)
    recorder = _Recorder()
    window.session.download_progressed.connect(recorder.record)
    bar = window.training_panel.progress_bar
    try:
        window.run_controller.start_run(tiny_config, resume_from=None)
        qtbot.waitUntil(lambda: (HALFWAY_BYTES, TOTAL_BYTES) in recorder.reports, timeout=10_000)
        qtbot.waitUntil(
            lambda: bar.format() == "Downloading ImageNet weights… 45 of 98 MB", timeout=5000
        )
    finally:
        Trainer.halfway.set()
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=10_000)
    assert window.session.last_finished.status == STATUS_COMPLETED
    reports = recorder.reports
    assert reports[-1] == (TOTAL_BYTES, TOTAL_BYTES)  # the final report is never dropped
    # 400 calls in about half a second: at most one per interval, plus the first, the one after
    # the pause and the final one.
    allowed = Trainer.reported_for_s / REPORT_INTERVAL_S + 3
    assert 3 <= len(reports) <= allowed < 400
    assert [done for done, _ in reports] == sorted(done for done, _ in reports)
