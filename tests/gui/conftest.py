"""Fixtures for the GUI tests: offscreen Qt, isolated settings, no blocking dialogs, no leaked threads."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QSettings, QStandardPaths, QThread

import ptm_studio.core.data.dataset  # noqa: F401 - torch once on the main thread (slow in a thread)
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_STOPPED,
    CheckpointSaved,
    TrainingFinished,
)
from ptm_studio.gui import dialogs, resume_offer
from ptm_studio.gui.jobs.training import TrainingRequest
from ptm_studio.gui.panels._preview import (
    fake_batch,
    fake_epoch,
    fake_predictions,
    fake_started,
    make_sample_images,
)

pytestmark = pytest.mark.gui
TINY_CLASSES = ("cat", "dog", "bird")


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """QSettings and QStandardPaths point at a temporary place: tests never touch the user's."""
    QStandardPaths.setTestModeEnabled(True)
    QCoreApplication.setOrganizationName("PTM Studio Tests")
    QCoreApplication.setApplicationName("PTM Studio Tests")
    folder = tmp_path_factory.mktemp("settings")
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.NativeFormat, scope, str(folder))
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(folder))
    yield


@pytest.fixture(autouse=True)
def dialog_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """Message boxes would block offscreen: record them instead (ask_yes_no answers Yes, the
    offer to resume an interrupted run answers "Not now")."""
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def record(name: str, answer: Any = None) -> Any:
        def fake(*args: Any) -> Any:
            calls.append((name, args))
            return answer

        return fake

    monkeypatch.setattr(dialogs, "show_error", record("show_error"))
    monkeypatch.setattr(dialogs, "show_info", record("show_info"))
    monkeypatch.setattr(dialogs, "ask_yes_no", record("ask_yes_no", True))
    monkeypatch.setattr(
        resume_offer, "ask_to_resume", record("ask_to_resume", resume_offer.ResumeChoice.LATER)
    )
    return calls


@pytest.fixture(autouse=True)
def no_dangling_qthreads(monkeypatch: pytest.MonkeyPatch, qapp: Any) -> Iterator[None]:
    """Fail a test that leaves a QThread running (napari style)."""
    started: list[QThread] = []
    original_start = QThread.start

    def tracking_start(self: QThread, *args: Any) -> None:
        started.append(self)
        original_start(self, *args)

    monkeypatch.setattr(QThread, "start", tracking_start)
    yield
    deadline = time.monotonic() + 10
    running = started
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        running = [thread for thread in started if _is_running(thread)]
        if not running:
            break
        time.sleep(0.01)
    assert not running, (
        f"QThreads still running after the test: {[t.objectName() for t in running]}"
    )


def _is_running(thread: QThread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # already deleted by deleteLater: it ended
        return False


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    make_sample_images(root, classes=TINY_CLASSES, per_class=6, size=16)
    return root


@pytest.fixture
def make_unlabelled_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make(name, count=8)``: a folder of ``count`` tiny pictures and no class subfolders."""

    def make(name: str = "flat", count: int = 8) -> Path:
        root = tmp_path / name
        images = make_sample_images(root, classes=("only",), per_class=count)
        for path in images["only"]:
            path.rename(root / path.name)
        (root / "only").rmdir()
        return root

    return make


@pytest.fixture
def tiny_config(tiny_dataset: Path) -> RunConfig:
    config = RunConfig()
    for field_path, value in (
        ("data.data_dir", str(tiny_dataset)),
        ("data.image_size", 32),
        ("data.batch_size", 4),
        ("optim.num_epochs", 2),
        ("model.backbone", "small_cnn"),
    ):
        config = replace_field(config, field_path, value)
    return config


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of the small CNN on tiny pictures (trained once per session, ~2 s): for the
    tabs that use a trained model. Tests may add files beside its checkpoints, not change it."""
    from ptm_studio.core.engine.trainer import Trainer

    root = tmp_path_factory.mktemp("trained")
    make_sample_images(root / "images", classes=TINY_CLASSES, per_class=6, size=16)
    config = RunConfig()
    for field_path, value in (
        ("data.data_dir", str(root / "images")),
        ("data.image_size", 16),
        ("data.batch_size", 4),
        ("optim.num_epochs", 2),
        ("model.backbone", "small_cnn"),
        ("device.device", "cpu"),
    ):
        config = replace_field(config, field_path, value)
    finished = Trainer.new_run(config, runs_root=root / "runs").run()
    assert finished.status == STATUS_COMPLETED and finished.run_dir is not None
    return finished.run_dir


class FakeTrainer:
    """Speaks the Trainer's events in the Trainer's order, without torch: fast, deterministic,
    controllable (test_fake_trainer.py holds it to the real Trainer's order)."""

    num_batches = 3
    delay_s = 0.0
    error: BaseException | None = None

    def __init__(
        self, request: TrainingRequest, callbacks: list[Any], stop_request: StopRequest
    ) -> None:
        self.request = request
        self.config = request.config
        self.callbacks = list(callbacks)
        self.stop_request = stop_request
        self.control = TrainingControl()
        self.run_dir = (request.runs_root or Path(".")) / "fake-run"

    def _emit(self, event: Any) -> None:
        for callback in self.callbacks:
            callback.on_event(event, self.control)

    def run(self) -> TrainingFinished:
        epochs = self.config.optim.num_epochs
        steps = self.num_batches
        self._emit(fake_started(self.run_dir, num_epochs=epochs, steps=steps))
        status, step = STATUS_COMPLETED, 0
        for epoch in range(1, epochs + 1):
            for _ in range(steps):
                if self.error is not None:
                    raise self.error
                step += 1
                time.sleep(self.delay_s)
                self._emit(fake_batch(step, steps_per_epoch=steps, num_epochs=epochs))
                if self.stop_request.is_requested:
                    status = STATUS_STOPPED
                    break
            if status == STATUS_STOPPED:
                self._emit(CheckpointSaved(epoch, step, self.run_dir, "stopped"))
                break
            self._emit(fake_epoch(epoch, num_epochs=epochs))
            self._emit(fake_predictions({name: [] for name in TINY_CLASSES}, epoch=epoch))
            self._emit(CheckpointSaved(epoch, step, self.run_dir, "epoch"))
        finished = TrainingFinished(status, self.run_dir, epoch, 0.5, 0.5, 1.0)
        self._emit(finished)
        return finished


@pytest.fixture
def fake_trainer() -> Iterator[type[FakeTrainer]]:
    class Trainer(FakeTrainer):
        pass

    yield Trainer


@pytest.fixture
def make_window(qtbot: Any, tmp_path: Path, tiny_dataset: Path) -> Iterator[Any]:
    """Build a MainWindow on the tiny dataset with a temporary runs folder; always shut down cleanly."""
    from ptm_studio.gui.main_window import MainWindow

    windows: list[Any] = []

    def build(**kwargs: Any) -> Any:
        kwargs.setdefault("runs_root", tmp_path / "runs")
        kwargs.setdefault("initial_folder", tiny_dataset)
        window = MainWindow(**kwargs)
        qtbot.addWidget(window)
        windows.append(window)
        qtbot.waitUntil(lambda: window.dataset_panel.summary is not None, timeout=20_000)
        return window

    yield build
    for window in windows:
        try:
            window.session.shutdown()
            window.dataset_panel.shutdown()
            window.predictions_panel.shutdown()
        except RuntimeError:
            pass
