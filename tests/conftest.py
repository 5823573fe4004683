"""Fixtures shared by every test folder: tiny generated image datasets and a private runs folder."""

from __future__ import annotations

import gc
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig

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


@pytest.fixture(autouse=True)
def collect_only_on_the_gui_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a test with widgets, as in the app (gui/collector.py): no automatic cycle collection,
    so a widget an earlier test left in a reference cycle is never destroyed on a worker
    thread (a deadlock); all is collected here, on the GUI thread, before and after."""
    if "qtbot" not in request.fixturenames:
        yield
        return
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()


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


@pytest.fixture(scope="session")
def image_folder_maker() -> Callable[..., Path]:
    """``make_image_folder`` for fixtures in other folders (test folders are not packages)."""
    return make_image_folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "tiny_dataset")


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
