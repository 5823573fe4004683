"""A frozen backbone's features computed once (engine/feature_cache.py): the head learns what
it would have learnt on the pictures, the pictures are read once, a resumed run is the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from training_helpers import StopAt, train_and_record

from ptm_studio.core import devices
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data.dataset import ImageDataset
from ptm_studio.core.engine import feature_cache
from ptm_studio.core.engine.control import StopRequest
from ptm_studio.core.engine.events import BatchFinished, EpochFinished, TrainingAdjusted

ConfigFactory = Callable[..., RunConfig]


def _frozen(config: RunConfig, *, cached: bool = True, changes: tuple[str, ...] = ()) -> RunConfig:
    config = replace_field(config, "model.training_mode", "feature_extraction")
    config = replace_field(config, "data.augmentations", changes)
    return replace_field(config, "model.cache_frozen_features", cached)


def _head_weights(run_dir: Path | None) -> dict[str, torch.Tensor]:
    assert run_dir is not None
    weights = load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))
    return {name: tensor for name, tensor in weights.items() if name.startswith("head.")}


def _epoch_results(events: Any) -> list[tuple[float, float]]:
    return [(e.train_loss, e.val_accuracy) for e in events.of_type(EpochFinished)]


class _CountReads:
    """Counts the training and validation pictures decoded (ImageDataset.__getitem__)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = ImageDataset.__getitem__

        def counted(dataset: ImageDataset, index: int) -> Any:
            self.count += 1
            return original(dataset, index)

        monkeypatch.setattr(ImageDataset, "__getitem__", counted)


def _slow_and_fast(config: RunConfig, folder: Path) -> tuple[Any, Any, Any, Any]:
    slow, slow_events = train_and_record(_frozen(config, cached=False), folder / "slow")
    fast, fast_events = train_and_record(_frozen(config), folder / "fast")
    assert slow.status == fast.status == "completed"
    return slow, slow_events, fast, fast_events


def test_one_epoch_on_cached_features_gives_the_head_weights_of_the_slow_path(
    tiny_config: ConfigFactory, tmp_path: Path
) -> None:
    # In full precision: on cached features the head always runs in float32 (see the next test)
    config = replace_field(tiny_config(num_epochs=1), "device.precision", "off")
    slow, slow_events, fast, fast_events = _slow_and_fast(config, tmp_path)
    slow_head, fast_head = _head_weights(slow.run_dir), _head_weights(fast.run_dir)
    assert slow_head.keys() == fast_head.keys() and slow_head
    for name, tensor in slow_head.items():
        assert torch.allclose(tensor, fast_head[name], atol=1e-5), name
    slow_losses = [event.loss for event in slow_events.of_type(BatchFinished)]
    fast_losses = [event.loss for event in fast_events.of_type(BatchFinished)]
    assert np.allclose(slow_losses, fast_losses, atol=1e-5)
    assert _epoch_results(slow_events)[0][1] == _epoch_results(fast_events)[0][1]


def test_with_bf16_the_head_on_cached_features_runs_in_float32_and_learns_the_same(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pictures' path runs the head under bf16 autocast (its inputs and weights rounded to
    8 bits of mantissa); on cached features it runs in float32, which costs less there. The
    two learn the same head up to bf16's rounding, and the cached one is not rounded."""
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    config = replace_field(tiny_config(num_epochs=1), "device.precision", "bf16")
    seen: list[torch.dtype] = []
    original_forward = torch.nn.Linear.forward

    def recorded(layer: torch.nn.Linear, inputs: torch.Tensor) -> torch.Tensor:
        outputs = original_forward(layer, inputs)
        seen.append(outputs.dtype)
        return outputs

    monkeypatch.setattr(torch.nn.Linear, "forward", recorded)
    slow, slow_events = train_and_record(_frozen(config, cached=False), tmp_path / "slow")
    assert set(seen) == {torch.bfloat16}  # the pictures' path runs its head under autocast
    seen.clear()
    fast, fast_events = train_and_record(_frozen(config), tmp_path / "fast")
    assert seen and set(seen) == {torch.float32}  # every head output on cached features
    slow_head, fast_head = _head_weights(slow.run_dir), _head_weights(fast.run_dir)
    # Adam moves a weight by up to the rate a step whatever its gradient's size: where bf16
    # turns a gradient near zero the other way, the two differ by a few times the rate.
    for name, tensor in slow_head.items():
        assert torch.allclose(tensor, fast_head[name], atol=4 * config.optim.learning_rate), name
    slow_losses = [event.loss for event in slow_events.of_type(BatchFinished)]
    fast_losses = [event.loss for event in fast_events.of_type(BatchFinished)]
    assert np.allclose(slow_losses, fast_losses, atol=2e-2)


def test_the_pictures_are_read_once_however_many_epochs(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _CountReads(monkeypatch)
    config = _frozen(tiny_config(num_epochs=4))
    finished, _ = train_and_record(config, tmp_path)
    assert finished.status == "completed"
    pictures = 3 * 8  # tiny_dataset: 3 classes of 8
    # One pass over training and validation pictures, and one picture to learn the feature
    # size; the slow path reads them all again every epoch (4 x 24).
    assert reads.count == pictures + 1


def test_with_random_changes_a_few_copies_are_computed_each_with_its_own_draws(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _CountReads(monkeypatch)
    config = _frozen(tiny_config(num_epochs=6), changes=("flip", "colour_changes"))
    finished, events = train_and_record(config, tmp_path)
    assert finished.status == "completed"
    copies = feature_cache.COPIES_WITH_RANDOM_CHANGES
    training, validation = 18, 6  # tiny_config keeps a quarter of each class for validation
    assert reads.count == copies * training + validation + 1
    assert len(_epoch_results(events)) == 6


@pytest.mark.parametrize("dropout", [0.0, 0.5], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("stop_at_step", [3, 7], ids=["first-copy", "second-copy"])
def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights(
    tiny_config: ConfigFactory, tmp_path: Path, stop_at_step: int, dropout: float
) -> None:
    # With dropout the head draws random numbers every step: the resumed run must draw the
    # same ones (the batches' random state is put back where the uninterrupted run had it).
    config = _frozen(tiny_config(num_epochs=3), changes=("flip", "colour_changes"))
    config = replace_field(config, "model.dropout", dropout)
    straight, _ = train_and_record(config, tmp_path / "straight")
    stop = StopRequest()
    stopped, _ = train_and_record(
        config, tmp_path / "resumed", StopAt(stop, step=stop_at_step), stop_request=stop
    )
    assert stopped.status == "stopped"
    resumed, _ = train_and_record(config, tmp_path / "resumed", resume_from=stopped.run_dir)
    assert resumed.status == "completed"
    for name, tensor in _head_weights(straight.run_dir).items():
        assert torch.allclose(tensor, _head_weights(resumed.run_dir)[name], atol=1e-6), name


def test_freeze_then_unfreeze_uses_the_features_only_while_frozen(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _CountReads(monkeypatch)
    config = replace_field(
        _frozen(tiny_config(num_epochs=4)), "model.training_mode", "freeze_then_unfreeze"
    )
    config = replace_field(config, "model.unfreeze_after_epochs", 2)
    finished, _ = train_and_record(config, tmp_path)
    assert finished.status == "completed"
    # Frozen epochs 1-2: one pass; learning epochs 3-4 read every picture (training and
    # validation) each epoch.
    assert reads.count == (24 + 1) + 2 * 24


def test_features_too_large_for_memory_fall_back_to_the_pictures_and_say_so(
    tiny_config: ConfigFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feature_cache, "MAX_CACHE_BYTES", 16)
    config = _frozen(tiny_config(num_epochs=2))
    finished, events = train_and_record(config, tmp_path)
    assert finished.status == "completed"
    said = [event for event in events.of_type(TrainingAdjusted) if event.kind == "feature_cache"]
    assert len(said) == 1 and "runs over every picture each epoch" in said[0].message
    _slow, slow_events = train_and_record(_frozen(config, cached=False), tmp_path / "slow")
    assert _epoch_results(events) == _epoch_results(slow_events)
