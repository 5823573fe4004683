"""What every reliability test checks besides its own message: nothing the user had is lost.

"Nothing lost" (docs/fault-catalogue.md) means the user's picture folder is byte-for-byte
unchanged and the last good checkpoint still loads. ``nothing_lost`` gives each test a trained run
and a snapshot of its picture folder; ``nothing_lost.check()`` asserts both at the end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ptm_studio.core.checkpoints import LoadedCheckpoint, load_checkpoint
from ptm_studio.core.config import (
    DataConfig,
    DeviceConfig,
    OptimConfig,
    RunConfig,
    replace_field,
)
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory


def folder_digest(folder: Path) -> str:
    """A hash of every name, link target and byte under ``folder`` (links are not followed)."""
    digest = hashlib.sha256()
    for directory, subfolders, files in os.walk(folder, followlinks=False):
        subfolders.sort()
        for name in sorted(files + [s for s in subfolders if Path(directory, s).is_symlink()]):
            path = Path(directory, name)
            digest.update(str(path.relative_to(folder)).encode("utf-8", "surrogateescape"))
            if path.is_symlink():
                digest.update(b"->" + os.readlink(path).encode("utf-8", "surrogateescape"))
            elif path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def assert_checkpoint_loads(folder: Path) -> LoadedCheckpoint:
    loaded = load_checkpoint(folder)
    assert loaded.trainer_state is not None or folder.name == "best"
    for name, tensor in loaded.model_state.items():
        if tensor.is_floating_point():
            assert bool(tensor.isfinite().all()), f"{name} holds NaN or Inf"
    return loaded


@dataclass
class NothingLost:
    """A trained run and a picture folder, with their state recorded before the test acts."""

    pictures: Path
    run_dir: RunDirectory
    config: RunConfig
    pictures_digest: str
    last_checkpoint_step: int

    def check(self) -> LoadedCheckpoint:
        """The pictures are unchanged and the last good checkpoint still loads, at its step."""
        assert folder_digest(self.pictures) == self.pictures_digest, "the user's folder changed"
        loaded = assert_checkpoint_loads(self.run_dir.last_checkpoint_dir)
        assert int(loaded.meta["global_step"]) >= self.last_checkpoint_step
        return loaded

    def refresh(self) -> None:
        """Record the picture folder again (after the test deliberately planted a bad file)."""
        self.pictures_digest = folder_digest(self.pictures)


@pytest.fixture(scope="session")
def _trained_run_template(
    tmp_path_factory: pytest.TempPathFactory, image_folder_maker: Callable[..., Path]
) -> tuple[Path, Path]:
    """One tiny run, trained once per session, that every test copies."""
    root = tmp_path_factory.mktemp("reliability_template")
    pictures = image_folder_maker(root / "pictures")
    config = RunConfig(
        data=DataConfig(
            data_dir=str(pictures), image_size=16, batch_size=4, validation_fraction=0.25
        ),
        optim=OptimConfig(num_epochs=1, learning_rate=3e-3),
        device=DeviceConfig(device="cpu", cpu_threads=1),
        seed=7,
    ).validate()
    finished = Trainer.new_run(config, runs_root=root / "runs").run()
    assert finished.status == "completed", finished.error_details
    assert finished.run_dir is not None
    return pictures, finished.run_dir


@pytest.fixture
def nothing_lost(_trained_run_template: tuple[Path, Path], tmp_path: Path) -> NothingLost:
    template_pictures, template_run = _trained_run_template
    pictures = tmp_path / "pictures"
    shutil.copytree(template_pictures, pictures)
    run_path = tmp_path / "runs" / template_run.name
    shutil.copytree(template_run, run_path)
    run_dir = RunDirectory(run_path)
    config = replace_field(run_dir.read_config(), "data.data_dir", str(pictures))
    run_dir.write_config(config)
    step = int(load_checkpoint(run_dir.last_checkpoint_dir).meta["global_step"])
    return NothingLost(pictures, run_dir, config, folder_digest(pictures), step)
