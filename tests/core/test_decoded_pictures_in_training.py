"""A run keeps its pictures decoded between epochs (core/data/decoded_cache.py): it trains to
the same weights as decoding every epoch, wherever the pictures are kept, and says so when
not all of them fit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import train_and_record

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data import decoded_cache
from ptm_studio.core.engine.events import EpochFinished, TrainingAdjusted

ConfigFactory = Callable[..., RunConfig]


def _weights(run_dir: Path | None) -> dict[str, torch.Tensor]:
    assert run_dir is not None
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


def _with_changes(config: RunConfig, keep: bool) -> RunConfig:
    config = replace_field(config, "data.augmentations", ("random_crop", "flip"))
    return replace_field(config, "data.keep_decoded", keep)


class _CountDecodes:
    """Counts the pictures decoded (ImageDataset's calls to load_for_model)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from ptm_studio.core.data import dataset

        self.count = 0
        original = dataset.load_for_model

        def counted(*arguments: object, **options: object) -> object:
            self.count += 1
            return original(*arguments, **options)  # type: ignore[arg-type]

        monkeypatch.setattr(dataset, "load_for_model", counted)


@pytest.mark.parametrize("where", ["memory", "scratch file"])
def test_kept_pictures_train_to_the_weights_of_decoding_every_epoch(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    config = tiny_config(num_epochs=3)
    slow, slow_events = train_and_record(_with_changes(config, keep=False), tmp_path / "slow")
    if where == "scratch file":
        monkeypatch.setattr(decoded_cache, "MEMORY_SHARE", 0.0)
    decodes = _CountDecodes(monkeypatch)
    fast, fast_events = train_and_record(_with_changes(config, keep=True), tmp_path / "fast")
    assert slow.status == fast.status == "completed"
    slow_weights, fast_weights = _weights(slow.run_dir), _weights(fast.run_dir)
    assert slow_weights.keys() == fast_weights.keys()
    for name, tensor in slow_weights.items():
        assert torch.equal(tensor, fast_weights[name]), name
    results = [(e.train_loss, e.val_accuracy) for e in fast_events.of_type(EpochFinished)]
    assert results == [(e.train_loss, e.val_accuracy) for e in slow_events.of_type(EpochFinished)]
    # Each picture was decoded once, in the first epoch; none was said to be left out.
    assert decodes.count == _pictures_in(config)
    assert not fast_events.of_type(TrainingAdjusted)


def _pictures_in(config: RunConfig) -> int:
    assert config.data.data_dir is not None
    return sum(1 for path in Path(config.data.data_dir).rglob("*") if path.is_file())


def test_pictures_that_fit_nowhere_are_read_every_epoch_and_the_user_is_told(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(decoded_cache, "MEMORY_SHARE", 0.0)
    monkeypatch.setattr(decoded_cache, "MAX_DISK_BYTES", 0)
    decodes = _CountDecodes(monkeypatch)
    config = tiny_config(num_epochs=2)
    finished, events = train_and_record(_with_changes(config, keep=True), tmp_path)
    assert finished.status == "completed"
    told = [event for event in events.of_type(TrainingAdjusted) if event.kind == "decoded_cache"]
    assert len(told) == 1 and "read from their files every epoch" in told[0].message
    assert decodes.count == 2 * _pictures_in(config)


def test_background_loading_processes_keep_no_pictures(tiny_config: ConfigFactory) -> None:
    from ptm_studio.core.engine.setup import keeps_decoded_pictures

    config = tiny_config()
    assert keeps_decoded_pictures(config)
    assert not keeps_decoded_pictures(replace_field(config, "data.num_workers", 2))
    assert not keeps_decoded_pictures(replace_field(config, "data.keep_decoded", False))
