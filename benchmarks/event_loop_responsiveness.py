"""How long the window's event loop goes without running while a real training run trains.

Opens the real MainWindow (offscreen unless QT_QPA_PLATFORM is set) on a small generated picture
folder (or --data DIR), sets the tiny run of tests/gui/test_training_e2e.py (Small CNN, 32 px,
batch 4, 2 epochs) and presses Start, as that test does. A 10 ms QTimer on the GUI thread records
the time between its ticks, from just before the click to just after the run has ended: a gap far
above 10 ms is time in which the window could not repaint or answer a click. The run is repeated
--repeats times in the same window and the gaps of all runs are pooled. Prints p50, p99 and the
largest gap against issue 14's B3 targets (p99 ≤ 25 ms, max ≤ 50 ms). Settings, runs and logs
go to a temporary folder; the user's own are never read or written. (B3's other figure, the
window's training throughput against a headless run, is not measured here yet.)

    python -m benchmarks.event_loop_responsiveness [--data DIR] [--epochs 2] [--repeats 3]
        [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings, QStandardPaths, QTimer
from PySide6.QtWidgets import QApplication

from benchmarks.table import Row, add_table_flags, report

TARGET_P99_MS = 25.0
TARGET_MAX_MS = 50.0
PROBE_INTERVAL_MS = 10


def spin(milliseconds: int) -> None:
    """Run the event loop for a while (as pytest-qt's ``qtbot.wait`` does)."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def spin_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up after {timeout_s:.0f} s waiting for {what}")
        spin(10)


def isolate(home: Path) -> None:
    """Settings, runs and logs in ``home``; dialogs print instead of blocking offscreen."""
    os.environ["PTM_STUDIO_HOME"] = str(home)
    QStandardPaths.setTestModeEnabled(True)
    QCoreApplication.setOrganizationName("PTM Studio Benchmarks")
    QCoreApplication.setApplicationName("PTM Studio Benchmarks")
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        for settings_format in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            QSettings.setPath(settings_format, scope, str(home / "settings"))

    from ptm_studio.gui import dialogs

    def report(kind: str) -> Callable[..., Any]:
        def shown(_parent: Any, title: str, message: str, *_rest: Any) -> bool:
            print(f"[{kind}] {title}: {message}", file=sys.stderr)
            return True

        return shown

    dialogs.show_error = report("error")  # type: ignore[assignment]
    dialogs.show_info = report("info")  # type: ignore[assignment]
    dialogs.ask_yes_no = report("question")  # type: ignore[assignment]


def prepare(window: Any, epochs: int) -> None:
    """The settings of the test's tiny run."""
    window.model_panel.backbone_combo.setCurrentIndex(
        window.model_panel.backbone_combo.findData("small_cnn")
    )
    objective = window.objective_panel
    objective.image_size_spin.setValue(32)
    objective.batch_spin.setValue(4)
    objective.epochs_spin.setValue(epochs)


def measure(data: Path, runs_root: Path, epochs: int, repeats: int) -> tuple[list[float], float]:
    """All gaps (seconds) over ``repeats`` runs, and the median seconds from click to end."""
    from ptm_studio.core.engine.events import STATUS_COMPLETED
    from ptm_studio.gui.event_loop_probe import EventLoopProbe
    from ptm_studio.gui.main_window import MainWindow
    from ptm_studio.gui.warmup import warm_up

    warm_up()  # the app does this at launch; see gui/warmup.py
    window = MainWindow(runs_root=runs_root, initial_folder=data)
    spin_until(lambda: window.dataset_panel.summary is not None, 60, "the folder scan")
    window.show()
    prepare(window, epochs)
    spin(300)  # let the launch-time device probe finish
    finished: list[Any] = []
    window.session.training_finished.connect(finished.append)
    gaps: list[float] = []
    durations: list[float] = []
    try:
        for run in range(repeats):
            probe = EventLoopProbe(PROBE_INTERVAL_MS)
            probe.start()
            spin(50)
            clicked = time.perf_counter()
            window.training_panel.start_button.click()  # the click itself is measured too
            spin_until(
                lambda run=run: len(finished) > run and not window.session.is_running,
                600,
                f"training run {run + 1} to end",
            )
            durations.append(time.perf_counter() - clicked)
            spin(200)
            probe.stop()
            gaps += probe.gaps
            if finished[run].status != STATUS_COMPLETED:
                raise SystemExit(f"run {run + 1} ended {finished[run].status}")
    finally:
        window.session.shutdown()
        window.dataset_panel.shutdown()
        window.predictions_panel.shutdown()
        window.close()
        spin(100)
    return gaps, statistics.median(durations)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: it is one of the measured gaps)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generated pictures")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.repeats = 1
    _app = QApplication.instance() or QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory(prefix="ptm-benchmark-") as folder:
        home = Path(folder)
        isolate(home)
        data = arguments.data
        if data is None:  # the test's folder: 3 classes × 6 pictures of 16 px
            from ptm_studio.gui.panels._preview import make_sample_images

            data = home / "images"
            make_sample_images(data, classes=("cat", "dog", "bird"), per_class=6, size=16)
        gaps, run_seconds = measure(data, home / "runs", arguments.epochs, arguments.repeats)
    p50, p99 = 1000 * statistics.median(gaps), 1000 * percentile(gaps, 0.99)
    largest = 1000 * max(gaps)
    print(
        f"data: {arguments.data or 'generated (3 classes × 6 pictures)'}  epochs: "
        f"{arguments.epochs}  runs: {arguments.repeats} (median {run_seconds:.2f} s click to end)  "
        f"cores: {os.cpu_count()}  platform: {os.environ['QT_QPA_PLATFORM']}"
    )
    print(f"gap = time between ticks of a {PROBE_INTERVAL_MS} ms timer on the GUI thread")
    print("| figure | measured | target | result |")
    print("|---|---|---|---|")
    print(f"| samples | {len(gaps)} | | |")
    print(f"| p50 gap | {p50:.1f} ms | | |")
    rows = []
    for name, value, target in (("p99", p99, TARGET_P99_MS), ("max", largest, TARGET_MAX_MS)):
        result = "pass" if value <= target else "FAIL"
        print(f"| {name} gap | {value:.1f} ms | ≤ {target:.0f} ms | {result} |")
        rows.append(
            Row(
                f"B3 event-loop {name} gap while training",
                f"{value:.1f} ms",
                f"{len(gaps)} ticks of {PROBE_INTERVAL_MS} ms",
                float("nan"),
                f"≤ {target:.0f} ms",
                value <= target,
            )
        )
    report(rows, arguments)


if __name__ == "__main__":
    main()
