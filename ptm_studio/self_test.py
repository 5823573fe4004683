"""``ptm-studio --self-test``: does this installation work? It makes a few tiny pictures,
trains a small model on them, predicts with it, exports it, and opens the window offscreen;
each step prints ✓ or ✗ with what went wrong, and the exit code is 0 only when all passed.

Everything it writes goes to a temporary folder, removed at the end: the user's runs, settings
and log are neither read nor written. It needs no internet and no graphics card; a packaged
app runs it to prove that the bundle holds what the app needs (Qt's plugins included).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED = 0, 1
# Three classes of tiny pictures a small network tells apart within two epochs.
CLASS_COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210)}
PICTURES_PER_CLASS = 8
PICTURE_SIZE = 16


def make_pictures(folder: Path) -> Path:
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(0)
    for name, colour in CLASS_COLOURS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(PICTURES_PER_CLASS):
            noise = generator.integers(-40, 40, size=(PICTURE_SIZE, PICTURE_SIZE, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{name}_{index}.png")
    return folder


def train_tiny_model(pictures: Path, runs_root: Path) -> Path:
    from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig
    from ptm_studio.core.engine.trainer import Trainer

    config = RunConfig(
        data=DataConfig(data_dir=str(pictures), image_size=PICTURE_SIZE, batch_size=4),
        optim=OptimConfig(num_epochs=2, learning_rate=3e-3),
        device=DeviceConfig(device="cpu", cpu_threads=1),
        seed=0,
    ).validate()
    finished = Trainer.new_run(config, runs_root=runs_root).run()
    if finished.status != "completed" or finished.run_dir is None:
        raise RuntimeError(f"the run ended {finished.status}: {finished.error_message}")
    return Path(finished.run_dir)


def predict(run_dir: Path, pictures: Path) -> str:
    from ptm_studio.core.inference import predict_pictures

    result = predict_pictures(run_dir, [pictures], device="cpu")
    failed = [p for p in result.predictions if p.error]
    if failed or len(result.predictions) != len(CLASS_COLOURS) * PICTURES_PER_CLASS:
        raise RuntimeError(f"{len(failed)} of {len(result.predictions)} pictures had no answer")
    right = sum(p.predicted_class == p.path.parent.name for p in result.predictions)
    return f"{len(result.predictions)} pictures, {right} answered right"


def export(run_dir: Path, destination: Path) -> str:
    from ptm_studio.core.export import export_model

    result = export_model(run_dir, destination)
    mismatched = [report.problem() for report in result.parity if not report.is_ok]
    if mismatched or not result.files:
        raise RuntimeError("; ".join(mismatched) or "no file was written")
    written = ", ".join(sorted(result.files))
    missing = "; ".join(f"{name} not written: {why}" for name, why in result.not_written.items())
    return written + (
        f" (answers as the app does). {missing}" if missing else ", all answering as the app does"
    )


def open_window(pictures: Path, runs_root: Path) -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QStandardPaths, QTimer
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    QStandardPaths.setTestModeEnabled(True)  # Qt's settings go to a test folder, not the user's
    _app = QApplication.instance() or QApplication([sys.argv[0]])
    from ptm_studio.gui.main_window import MainWindow

    window = MainWindow(runs_root=runs_root, initial_folder=pictures)
    window.show()
    deadline = time.monotonic() + 60
    while window.dataset_panel.summary is None and time.monotonic() < deadline:
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec()
    seen = window.dataset_panel.summary
    window.session.shutdown()
    window.dataset_panel.shutdown()
    window.close()
    if seen is None:
        raise RuntimeError("the window did not finish checking the pictures within 60 s")
    return (
        f"{QGuiApplication.platformName()} platform; the window checked {seen.num_images} pictures"
    )


@contextlib.contextmanager
def app_home(folder: Path) -> Iterator[None]:
    """PTM Studio's own files (runs, the log) under ``folder`` while the test runs."""
    from ptm_studio.core.locations import HOME_VARIABLE

    before = os.environ.get(HOME_VARIABLE)
    os.environ[HOME_VARIABLE] = str(folder / "home")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(HOME_VARIABLE, None)
        else:
            os.environ[HOME_VARIABLE] = before


def run_step(name: str, step: Callable[[], Any]) -> tuple[bool, Any]:
    started = time.perf_counter()
    try:
        result = step()
    except Exception as error:
        print(f"✗ {name}: {type(error).__name__}: {error}", flush=True)
        traceback.print_exc(file=sys.stderr)
        return False, None
    detail = f" — {result}" if isinstance(result, str) else ""
    print(f"✓ {name} ({time.perf_counter() - started:.1f} s){detail}", flush=True)
    return True, result


def main() -> int:
    from ptm_studio import __version__

    print(f"PTM Studio {__version__} self-test (Python {sys.version.split()[0]})", flush=True)
    with tempfile.TemporaryDirectory(prefix="ptm-self-test-") as folder, app_home(Path(folder)):
        home = Path(folder)
        ok, pictures = run_step("make test pictures", lambda: make_pictures(home / "pictures"))
        if not ok:
            return EXIT_FAILED
        ok, run_dir = run_step("train a small model", lambda: train_tiny_model(pictures, home))
        results = [ok]
        if ok:
            results.append(run_step("predict", lambda: predict(run_dir, pictures))[0])
            results.append(run_step("export", lambda: export(run_dir, home / "export"))[0])
        results.append(run_step("open the window", lambda: open_window(pictures, home))[0])
    passed = all(results)
    print("Self-test passed." if passed else "Self-test FAILED: see the ✗ lines above.")
    return EXIT_OK if passed else EXIT_FAILED
