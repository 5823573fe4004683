"""I14: pictures deleted during a run are skipped and reported; a vanished folder pauses the run."""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable
from pathlib import Path

from ptm_studio.cli_output import print_summary
from ptm_studio.core.checkpoints import load_checkpoint
from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback, EventRecorder
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import BatchFinished, CheckpointSaved, PredictionsReady
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory

from .conftest import assert_checkpoint_loads, folder_digest


def summary_of(finished: object) -> str:
    """The summary table the CLI prints at the end of a run."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print_summary(finished, [])  # type: ignore[arg-type]
    return buffer.getvalue()


class AfterFirstBatch(Callback):
    def __init__(self, action: Callable[[], None]) -> None:
        self.action, self.done = action, False

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        if not self.done:
            self.done = True
            self.action()


def test_pictures_deleted_mid_run_are_skipped_and_reported(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(num_epochs=2)
    victims = sorted((tiny_dataset / "square").glob("*.png"))
    deleted: list[str] = []

    after_deletion: list[str] = []

    def delete_all_squares() -> None:  # whichever of them are training pictures get skipped
        for victim in victims:
            victim.unlink()
            deleted.append(str(victim))
        after_deletion.append(folder_digest(tiny_dataset))

    recorder = EventRecorder()
    finished = Trainer.new_run(
        config, callbacks=[recorder, AfterFirstBatch(delete_all_squares)], runs_root=tmp_path
    ).run()
    # Training squares met after the deletion are replaced by other pictures; validation squares
    # are left out of the measurements. Both are reported; the run completes.
    assert finished.status == "completed", finished.error_details
    # Every square is met again after the deletion: in epoch 2 or in a validation pass.
    assert set(finished.skipped_files) == set(deleted)
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert set(status["skipped_files"]) == set(finished.skipped_files)
    assert "Skipped (unreadable)" in summary_of(finished)
    # Nothing lost: the pictures that are left are untouched, the last checkpoint loads.
    assert folder_digest(tiny_dataset) == after_deletion[0]
    assert_checkpoint_loads(RunDirectory(finished.run_dir).last_checkpoint_dir)  # type: ignore[arg-type]
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
    after_deletion: list[str] = []

    def delete_two() -> None:
        for path in training_pictures:
            path.unlink()
        after_deletion.append(folder_digest(tiny_dataset))

    finished = Trainer.new_run(
        config, callbacks=[AfterFirstBatch(delete_two)], runs_root=tmp_path
    ).run()
    assert finished.status == "completed", finished.error_details
    assert set(finished.skipped_files) == {str(path) for path in training_pictures}
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert set(status["skipped_files"]) == {str(path) for path in training_pictures}
    assert "could not be" not in finished.error_message
    assert folder_digest(tiny_dataset) == after_deletion[0]
    assert_checkpoint_loads(RunDirectory(finished.run_dir).last_checkpoint_dir)  # type: ignore[arg-type]


def test_a_vanished_folder_pauses_with_a_checkpoint_and_resumes(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(num_epochs=2)
    pictures_before = folder_digest(tiny_dataset)
    moved = tmp_path / "unplugged"
    recorder = EventRecorder()
    finished = Trainer.new_run(
        config,
        callbacks=[recorder, AfterFirstBatch(lambda: shutil.move(str(tiny_dataset), str(moved)))],
        runs_root=tmp_path / "runs",
    ).run()
    assert finished.status == "stopped", finished.error_details
    assert "no longer there" in finished.error_message and "Resume" in finished.error_message
    saved = [event for event in recorder.of_type(CheckpointSaved) if event.reason == "stopped"]
    assert saved and load_checkpoint(saved[0].path).trainer_state is not None

    shutil.move(str(moved), str(tiny_dataset))  # the drive is plugged back in
    assert folder_digest(tiny_dataset) == pictures_before
    resumed = Trainer.resume(finished.run_dir).run()
    assert resumed.status == "completed", resumed.error_details
    assert folder_digest(tiny_dataset) == pictures_before
    assert_checkpoint_loads(RunDirectory(finished.run_dir).last_checkpoint_dir)  # type: ignore[arg-type]


def test_pictures_skipped_in_a_background_loading_process_are_reported_too(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    """Each loading process skips on its own; the skips travel back with the batches."""
    from ptm_studio.core.config import replace_field
    from ptm_studio.core.engine.setup import prepare_split

    config = replace_field(tiny_config(num_epochs=2), "data.num_workers", 1)
    victim = prepare_split(config).train[0].path
    finished = Trainer.new_run(
        config, callbacks=[AfterFirstBatch(victim.unlink)], runs_root=tmp_path
    ).run()
    assert finished.status == "completed", finished.error_details
    assert finished.skipped_files == (str(victim),)
    status = RunDirectory(finished.run_dir).read_status()  # type: ignore[arg-type]
    assert list(status["skipped_files"]) == [str(victim)]


def test_a_skip_outside_a_batch_is_not_reported_by_the_next_run(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, image_folder_maker: Callable[..., Path]
) -> None:
    """Pictures read outside a batch (the pretraining preview) must not leak into another run."""
    from ptm_studio.core.data import ImageDataset, build_transform, make_split, scan_folder
    from ptm_studio.core.data.skipping import SkipUnreadable

    other = image_folder_maker(tmp_path / "other folder")
    split = make_split(scan_folder(other), 0.25, seed=0)
    transform = build_transform(16, mean=(0.5,) * 3, std=(0.5,) * 3, train=False)
    previewed = SkipUnreadable(ImageDataset(split.train, split.class_names, transform), other)
    split.train[0].path.write_bytes(b"")  # broken after the scan
    previewed[0]  # skipped, outside any batch

    finished = Trainer.new_run(tiny_config(num_epochs=1), runs_root=tmp_path / "runs").run()
    assert finished.status == "completed", finished.error_details
    assert finished.skipped_files == ()


def test_a_labelled_picture_deleted_during_pretraining_is_left_out_of_the_measure(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    """Pretraining measures k-NN accuracy on the folder's classes; a picture gone mid-run is
    left out of that measure instead of failing the run."""
    from ptm_studio.core.config import replace_field

    config = replace_field(tiny_config(num_epochs=2), "objective.task", "pretrain")
    config = replace_field(config, "objective.loss", "rotation")
    victims = sorted((tiny_dataset / "circle").glob("*.png"))[:3]
    recorder = EventRecorder()
    finished = Trainer.new_run(
        config,
        callbacks=[recorder, AfterFirstBatch(lambda: [path.unlink() for path in victims])],
        runs_root=tmp_path / "runs",
    ).run()
    assert finished.status == "completed", finished.error_details
    assert set(finished.skipped_files) <= {str(path) for path in victims}
    assert_checkpoint_loads(RunDirectory(finished.run_dir).last_checkpoint_dir)  # type: ignore[arg-type]
