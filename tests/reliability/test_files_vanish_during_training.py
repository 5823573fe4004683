"""I14: pictures deleted during a run are skipped and reported; a vanished folder pauses the run."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.checkpoints import load_checkpoint
from ptm_studio.core.engine.events import BatchFinished, CheckpointSaved, PredictionsReady
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory


class AfterFirstBatch(Callback):
    def __init__(self, action: Callable[[], None]) -> None:
        self.action, self.done = action, False

    def on_batch_finished(self, event: BatchFinished) -> None:
        if not self.done:
            self.done = True
            self.action()


def test_pictures_deleted_mid_run_are_skipped_and_reported(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(num_epochs=2)
    victims = sorted((tiny_dataset / "square").glob("*.png"))
    deleted: list[str] = []

    def delete_all_squares() -> None:  # whichever of them are training pictures get skipped
        for victim in victims:
            victim.unlink()
            deleted.append(str(victim))

    recorder = EventRecorder()
    finished = Trainer(
        config, callbacks=[recorder, AfterFirstBatch(delete_all_squares)], runs_root=tmp_path
    ).run()
    # Training squares met after the deletion are replaced by other pictures; validation squares
    # are left out of the measurements. Both are reported; the run completes.
    assert finished.status == "completed", finished.error_details
    # Every square is met again after the deletion: in epoch 2 or in a validation pass.
    assert set(finished.skipped_files) == set(deleted)
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert set(status["skipped_files"]) == set(finished.skipped_files)
    last_predictions = recorder.of_type(PredictionsReady)[-1]
    assert not {record.path for record in last_predictions.records} & set(deleted)
    assert all(
        not path.startswith(str(tiny_dataset / "square"))
        for path in (
            row["path"]
            for row in RunDirectory(finished.run_dir).read_predictions()  # type: ignore[arg-type]
        )
    )


def test_only_training_pictures_deleted_are_skipped_and_training_completes(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(num_epochs=2)
    from ptm_studio.core.engine.setup import prepare_split

    training_pictures = [record.path for record in prepare_split(config).train][:2]
    finished = Trainer(
        config,
        callbacks=[AfterFirstBatch(lambda: [path.unlink() for path in training_pictures])],
        runs_root=tmp_path,
    ).run()
    assert finished.status == "completed", finished.error_details
    assert set(finished.skipped_files) == {str(path) for path in training_pictures}
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert set(status["skipped_files"]) == {str(path) for path in training_pictures}
    assert "could not be" not in finished.error_message


def test_a_vanished_folder_pauses_with_a_checkpoint_and_resumes(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(num_epochs=2)
    moved = tmp_path / "unplugged"
    recorder = EventRecorder()
    finished = Trainer(
        config,
        callbacks=[recorder, AfterFirstBatch(lambda: shutil.move(str(tiny_dataset), str(moved)))],
        runs_root=tmp_path / "runs",
    ).run()
    assert finished.status == "stopped", finished.error_details
    assert "no longer there" in finished.error_message and "Resume" in finished.error_message
    saved = [event for event in recorder.of_type(CheckpointSaved) if event.reason == "stopped"]
    assert saved and load_checkpoint(saved[0].path).trainer_state is not None

    shutil.move(str(moved), str(tiny_dataset))  # the drive is plugged back in
    resumed = Trainer(config, resume_from=finished.run_dir).run()
    assert resumed.status == "completed", resumed.error_details
