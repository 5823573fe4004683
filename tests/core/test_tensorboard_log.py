"""TensorBoard event files as an option (issue 13): the curves a run logs, readable by
TensorBoard, written only when asked for, and a missing tensorboardX said in plain words."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from training_helpers import train_and_record

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine import tensorboard_log
from ptm_studio.core.engine.events import EpochFinished, TrainingAdjusted

ConfigFactory = Callable[..., RunConfig]


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files (TFRecord: length, crc, Event protobuf, crc).
    tensorboardX comes with the dev extra, as CI installs it."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_a_run_asked_for_tensorboard_logs_writes_its_curves(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    config = replace_field(tiny_config(num_epochs=2), "saving.tensorboard", True)
    finished, events = train_and_record(config, tmp_path)
    assert finished.status == "completed" and finished.run_dir is not None
    scalars = read_scalars(finished.run_dir / "tensorboard")
    epochs = events.of_type(EpochFinished)
    assert [step for step, _ in scalars["val/accuracy"]] == [e.global_step for e in epochs]
    assert [value for _, value in scalars["val/accuracy"]] == pytest.approx(
        [e.val_accuracy for e in epochs]
    )
    assert [value for _, value in scalars["train/loss"]] == pytest.approx(
        [e.train_loss for e in epochs]
    )
    steps = [step for step, _ in scalars["train/batch_loss"]]
    assert steps == list(range(1, epochs[-1].global_step + 1))
    assert "train/learning_rate" in scalars


def test_no_tensorboard_folder_unless_asked_for(tiny_config: ConfigFactory, tmp_path: Path) -> None:
    finished, _ = train_and_record(tiny_config(num_epochs=1), tmp_path)
    assert finished.run_dir is not None and not (finished.run_dir / "tensorboard").exists()


def test_without_tensorboardx_the_run_trains_and_says_how_to_install_it(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tensorboard_log, "tensorboard_writer_available", lambda: False)
    from ptm_studio.core.engine import trainer

    monkeypatch.setattr(trainer, "tensorboard_writer_available", lambda: False)
    config = replace_field(tiny_config(num_epochs=1), "saving.tensorboard", True)
    finished, events = train_and_record(config, tmp_path)
    assert finished.status == "completed" and finished.run_dir is not None
    told = [e for e in events.of_type(TrainingAdjusted) if e.kind == "tensorboard"]
    assert len(told) == 1 and "pip install" in told[0].message
    assert not (finished.run_dir / "tensorboard").exists()
