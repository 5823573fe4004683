"""Fixtures shared by every test folder: tiny generated image datasets and a private runs folder."""

from __future__ import annotations

import faulthandler
import gc
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig, replace_field

CLASS_COLOURS = {"circle": (220, 40, 40), "square": (40, 200, 60), "stripe": (40, 60, 220)}


def make_image_folder(root: Path, images_per_class: int = 8, size: int = 16, seed: int = 0) -> Path:
    """Class folders whose images differ clearly (colour + noise), so a tiny model can learn them."""
    generator = np.random.default_rng(seed)
    for class_name, colour in CLASS_COLOURS.items():
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(images_per_class):
            noise = generator.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{class_name}_{index:03d}.png")
    return root


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")

# No test comes near this (the slowest takes under a minute here): one still running after it is
# stuck. The whole run then stops at once, leaving every thread's stack in the hang report under
# the name of the test; .ci/run prints it (.ci/hang_report.py). A C-level timer, so a deadlock
# that holds Python's lock (the GIL) is caught too.
HANG_LIMIT_SECONDS = float(os.environ.get("PTM_TEST_HANG_LIMIT_SECONDS", "600"))
HANG_REPORT = Path(__file__).resolve().parent.parent / ".pytest-hang-report.txt"
_hang_report_key = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_hang_report_key] = os.open(HANG_REPORT, os.O_RDWR | os.O_CREAT | os.O_TRUNC)


def pytest_unconfigure(config: pytest.Config) -> None:
    descriptor = config.stash.get(_hang_report_key, None)
    if descriptor is not None:
        os.close(descriptor)
        HANG_REPORT.unlink(missing_ok=True)  # the run ended: nothing hung


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    descriptor = item.config.stash[_hang_report_key]
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, f"{item.nodeid}\n{HANG_LIMIT_SECONDS:g}\n".encode())
    faulthandler.dump_traceback_later(HANG_LIMIT_SECONDS, exit=True, file=descriptor)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def collect_only_on_the_gui_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """As in the app (gui/collector.py), cycles are collected on the GUI thread, never on a
    worker thread, where destroying a widget left in a cycle deadlocks. In a test with widgets
    the automatic collection is off and all is collected before and after. Before any test
    once Qt is up too: what a widget test left is released only after its fixtures (when
    pytest drops the test's arguments), and the next test's threads could otherwise collect it."""
    with_widgets = "qtbot" in request.fixturenames
    if with_widgets or _qt_application_exists():
        gc.collect()
    if not with_widgets:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()


def _qt_application_exists() -> bool:
    qt_widgets = sys.modules.get("PySide6.QtWidgets")
    return qt_widgets is not None and qt_widgets.QApplication.instance() is not None


@pytest.fixture(autouse=True)
def block_network_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network: any connection beyond this machine fails loudly."""
    original_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK_HOSTS:
            raise AssertionError(f"a test tried to reach the network ({address!r})")
        return original_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(autouse=True)
def private_runs_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Never write runs into the real user data folder during tests."""
    home = tmp_path_factory.mktemp("ptm_home")
    monkeypatch.setenv("PTM_STUDIO_HOME", str(home))
    return home


@pytest.fixture
def private_trash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The freedesktop trash send2trash uses, moved under tmp_path (send2trash reads
    XDG_DATA_HOME when imported, so the environment alone would not do)."""
    plat_other = pytest.importorskip("send2trash.plat_other")
    share = tmp_path / "share"
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(share))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", os.fsencode(share / "Trash"))
    monkeypatch.setattr(plat_other, "HOMETRASH", str(share / "Trash"))
    return share / "Trash"


@pytest.fixture(scope="session")
def image_folder_maker() -> Callable[..., Path]:
    """``make_image_folder`` for fixtures in other folders (test folders are not packages)."""
    return make_image_folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "tiny_dataset")


@pytest.fixture
def pretraining_run_folder(tmp_path: Path) -> Path:
    """A run folder whose config says pretraining; it holds no weights (for what reads only
    the run's settings, e.g. the transfer recipe)."""
    from ptm_studio.core.runs import RunDirectory

    run = RunDirectory.create(tmp_path / "runs", "pretrained")
    config = replace_field(RunConfig(), "objective.task", "pretrain")
    run.write_config(replace_field(config, "objective.loss", "rotation"))
    return run.path


@pytest.fixture
def tiny_config(tiny_dataset: Path) -> Callable[..., RunConfig]:
    """A config that trains the small CNN on the tiny dataset in about a second on CPU."""

    def build(**optim_overrides: object) -> RunConfig:
        settings: dict[str, object] = {"num_epochs": 2, "learning_rate": 3e-3, **optim_overrides}
        optim = OptimConfig(**settings)  # type: ignore[arg-type]
        return RunConfig(
            data=DataConfig(
                data_dir=str(tiny_dataset), image_size=16, batch_size=4, validation_fraction=0.25
            ),
            optim=optim,
            device=DeviceConfig(device="cpu", cpu_threads=1),
            seed=7,
        ).validate()

    return build
