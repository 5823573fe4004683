"""B5, start-up: how long a user waits for the window and the quick commands, and how scanning
grows with the folder.

Each launch is a fresh interpreter, timed from just before it is started to the moment asked
for: a command's exit, or the window's first paint (offscreen unless QT_QPA_PLATFORM says
otherwise; the demo pictures; settings, runs and logs in a temporary folder). Python's bytecode
cache is on, as in an installed app, and one launch of each kind runs first uncounted (it
writes that cache). Medians of --repeats launches. Scanning: a folder of small generated PNGs
at two sizes, four times apart, scanned as the window does (every picture checked); the time per
file at the larger size over the smaller says whether it grows linearly.

    python -m benchmarks.start_up [--repeats 5] [--files 100000] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.table import Row, add_table_flags, report, seconds

TARGETS = {"window": 1.0, "--version": 0.2, "--help": 0.2, "models": 0.5}
LINEAR_TARGET = 1.25  # time per file at 4× the files, over the smaller folder's

# Prints the wall-clock time of the main window's first paint, then ends the process.
FIRST_PAINT = """
import os, sys, time
from PySide6.QtCore import QEvent, QObject
import ptm_studio.gui.main_window as main_window

class FirstPaint(QObject):
    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            print(f"PAINTED {time.time():.6f}", flush=True)
            os._exit(0)
        return False

original_show = main_window.MainWindow.show
def show(window):
    window._first_paint = FirstPaint(window)
    window.installEventFilter(window._first_paint)
    original_show(window)
main_window.MainWindow.show = show
from ptm_studio.gui.app import main
main(["--demo"])
"""


def launch_environment(home: Path) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"
    }
    environment.setdefault("QT_QPA_PLATFORM", "offscreen")
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        environment[variable] = str(home / variable.lower())
    return environment


def command_seconds(arguments: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ptm_studio", *arguments],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def window_seconds(environment: dict[str, str]) -> float:
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    painted = [line for line in result.stdout.splitlines() if line.startswith("PAINTED ")]
    if not painted:
        raise RuntimeError(f"the window did not paint:\n{result.stdout}\n{result.stderr[-3000:]}")
    return float(painted[0].split()[1]) - started


def launch_rows(repeats: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as home:
        environment = launch_environment(Path(home))
        measures = {
            "window": lambda: window_seconds(environment),
            "--version": lambda: command_seconds(["--version"], environment),
            "--help": lambda: command_seconds(["--help"], environment),
            "models": lambda: command_seconds(["models"], environment),
        }
        for measure in measures.values():
            measure()  # writes the bytecode cache; not counted
        times: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(repeats):  # alternated: noise hits every kind alike
            for name, measure in measures.items():
                times[name].append(measure())
    for name, values in times.items():
        median, target = statistics.median(values), TARGETS[name]
        shown = "window shown (first paint)" if name == "window" else f"ptm-studio {name}"
        rows.append(
            Row(
                f"B5 {shown}",
                seconds(median),
                f"range {min(values):.3f}–{max(values):.3f} s",
                float("nan"),
                f"≤ {target} s",
                median <= target,
            )
        )
    return rows


def make_small_pictures(folder: Path, count: int) -> None:
    from PIL import Image

    picture = Image.new("RGB", (8, 8), (120, 160, 200))
    for index in range(count):
        class_folder = folder / f"class_{index % 4}"
        class_folder.mkdir(exist_ok=True)
        picture.save(class_folder / f"{index:06d}.png")


def scan_seconds(count: int) -> float:
    from ptm_studio.core.data import scan_folder

    with tempfile.TemporaryDirectory() as folder:
        make_small_pictures(Path(folder), count)
        started = time.perf_counter()
        scan = scan_folder(folder)
        elapsed = time.perf_counter() - started
    assert len(scan.records) == count, (len(scan.records), count)
    return elapsed


def scan_row(files: int) -> Row:
    small, large = files // 4, files
    small_seconds, large_seconds = scan_seconds(small), scan_seconds(large)
    growth = (large_seconds / large) / (small_seconds / small)
    return Row.ratio_at_most(
        f"B5 scan {large:,} small files (time per file, ×4 files)",
        f"{large / large_seconds:,.0f} files/s",
        f"{small:,} files: {small / small_seconds:,.0f} files/s",
        growth,
        LINEAR_TARGET,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--files", type=int, default=100_000)
    add_table_flags(parser)
    arguments = parser.parse_args()
    repeats, files = (3, 10_000) if arguments.quick else (arguments.repeats, arguments.files)
    report([*launch_rows(repeats), scan_row(files)], arguments)


if __name__ == "__main__":
    main()
