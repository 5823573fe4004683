"""M3: a damaged last checkpoint names the problem and offers the intact one saved before it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ptm_studio.cli import main
from ptm_studio.core.checkpoints import (
    MODEL_FILE,
    DamagedCheckpointError,
    load_checkpoint,
    previous_checkpoint_dir,
    use_previous_checkpoint,
)
from ptm_studio.core.config import replace_field
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.run_models import read_resume_point
from ptm_studio.core.runs import find_interrupted_runs

from .conftest import NothingLost, assert_checkpoint_loads, folder_digest


def train_two_epochs(nothing_lost: NothingLost) -> Path:
    """Resume the fixture's run for a second epoch, so that an epoch-1 checkpoint is 'previous'."""
    config = replace_field(nothing_lost.config, "optim.num_epochs", 2)
    nothing_lost.run_dir.write_config(config)
    finished = Trainer.resume(nothing_lost.run_dir.path).run()
    assert finished.status == "completed", finished.error_details
    return nothing_lost.run_dir.last_checkpoint_dir


def cut(path: Path, keep: str) -> None:
    """Cut a file to nothing, to its first 7 bytes, or to half its length."""
    data = path.read_bytes()
    length = {"zero": 0, "seven_bytes": 7, "half": len(data) // 2}[keep]
    path.write_bytes(data[:length])


@pytest.mark.parametrize("keep", ["zero", "seven_bytes", "half"])
def test_m3_a_cut_last_checkpoint_is_reported_and_the_previous_one_is_offered(
    nothing_lost: NothingLost, keep: str
) -> None:
    last = train_two_epochs(nothing_lost)
    previous = previous_checkpoint_dir(last)
    assert load_checkpoint(previous).meta["epoch"] == 1
    cut(last / MODEL_FILE, keep)

    with pytest.raises(DamagedCheckpointError) as caught:
        load_checkpoint(last)
    message = str(caught.value)
    assert "model.safetensors is incomplete or corrupt" in message
    assert "(epoch 1, step" in message and "training can go on from there" in message
    assert caught.value.previous == previous
    assert folder_digest(nothing_lost.pictures) == nothing_lost.pictures_digest
    assert_checkpoint_loads(previous)


def test_m3_the_cli_offers_the_previous_checkpoint_and_goes_on_from_it(
    nothing_lost: NothingLost, capsys: pytest.CaptureFixture[str]
) -> None:
    last = train_two_epochs(nothing_lost)
    damaged_bytes = (last / MODEL_FILE).read_bytes()[:100]
    (last / MODEL_FILE).write_bytes(damaged_bytes)
    config = replace_field(nothing_lost.config, "optim.num_epochs", 3)
    nothing_lost.run_dir.write_config(config)
    run = str(nothing_lost.run_dir.path)

    assert main(["train", "--resume", run, "--quiet"]) == 1
    error = capsys.readouterr().err
    assert "incomplete or corrupt" in error and "--use-previous-checkpoint" in error

    assert main(["train", "--resume", run, "--quiet", "--use-previous-checkpoint"]) == 0
    epochs = [record["epoch"] for record in nothing_lost.run_dir.read_metrics("epoch")]
    assert epochs == [1, 2, 3]  # epoch 2 was trained again from the epoch-1 checkpoint
    kept_aside = list(last.parent.glob("last-damaged-*"))
    assert len(kept_aside) == 1 and (kept_aside[0] / MODEL_FILE).read_bytes() == damaged_bytes
    assert nothing_lost.check().meta["epoch"] == 3


def test_m3_without_an_intact_previous_checkpoint_the_message_says_so(
    nothing_lost: NothingLost,
) -> None:
    last = nothing_lost.run_dir.last_checkpoint_dir  # the first checkpoint: nothing before it
    cut(last / MODEL_FILE, "half")
    with pytest.raises(DamagedCheckpointError, match="No earlier checkpoint of this run is intact"):
        load_checkpoint(last)
    assert_checkpoint_loads(nothing_lost.run_dir.best_checkpoint_dir)
    assert folder_digest(nothing_lost.pictures) == nothing_lost.pictures_digest


def test_m3_an_interrupted_run_whose_last_save_is_unreadable_is_still_offered(
    nothing_lost: NothingLost,
) -> None:
    last = train_two_epochs(nothing_lost)
    (last / "meta.json").write_text("{not json", encoding="utf-8")
    nothing_lost.run_dir.write_status(status="running")  # the app died

    (interrupted,) = find_interrupted_runs(nothing_lost.run_dir.path.parent)
    assert interrupted.path == nothing_lost.run_dir.path
    point = read_resume_point(interrupted.path)
    assert point is not None and point.epochs_completed == 1  # the save before it
    with pytest.raises(DamagedCheckpointError, match=r"meta\.json cannot be read"):
        load_checkpoint(last)
    assert folder_digest(nothing_lost.pictures) == nothing_lost.pictures_digest


def test_m3_a_missing_last_save_with_an_intact_previous_one_offers_it(
    nothing_lost: NothingLost,
) -> None:
    last = train_two_epochs(nothing_lost)
    shutil.rmtree(last)
    with pytest.raises(DamagedCheckpointError, match=r"\(epoch 1, step"):
        load_checkpoint(last)
    use_previous_checkpoint(last)
    assert nothing_lost.check().meta["epoch"] == 1


def test_m3_using_the_previous_save_survives_a_kill_halfway(
    nothing_lost: NothingLost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the damaged folder was moved aside and before the copy took its place: the
    complete copy is put in place at the next start."""
    last = train_two_epochs(nothing_lost)
    cut(last / MODEL_FILE, "half")
    real_rename = Path.rename

    def killed_at_the_second_rename(self: Path, target: Path) -> Path:
        if self.name == ".last.partial":
            raise KeyboardInterrupt  # stands for the kill
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_at_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        use_previous_checkpoint(last)
    monkeypatch.undo()
    assert not last.exists()

    assert nothing_lost.check().meta["epoch"] == 1  # loading recovers the complete copy first
    assert len(list(last.parent.glob("last-damaged-*"))) == 1
