"""Checkpoints: atomic folder swap, completeness marker, hashes, safe trainer state, recovery."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from ptm_studio.core.checkpoints import (
    CheckpointError,
    SerializedWeights,
    capture_rng_state,
    is_complete_checkpoint,
    load_checkpoint,
    recover_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _model_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return nn.Linear(3, 2).state_dict()


def _trainer_state(model: nn.Module) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return {
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng_state(),
        "progress": {"epoch_index": 2},
    }


def test_round_trip_with_trainer_state_loadable_weights_only(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    folder = save_checkpoint(
        tmp_path / "last", model.state_dict(), {"class_names": ["a", "b"]}, _trainer_state(model)
    )
    loaded = load_checkpoint(folder)
    assert loaded.meta["class_names"] == ["a", "b"]
    assert loaded.meta["complete"] is True and "torch_version" in loaded.meta
    assert torch.equal(loaded.model_state["weight"], model.state_dict()["weight"])
    assert loaded.trainer_state is not None and loaded.trainer_state["progress"] == {
        "epoch_index": 2
    }
    # The trainer state must open with the safe unpickler alone.
    torch.load(folder / "trainer_state.pt", weights_only=True)


def test_saving_again_replaces_the_checkpoint_and_leaves_no_temp_folders(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "last", _model_state(1), {})
    save_checkpoint(tmp_path / "last", _model_state(2), {})
    assert torch.equal(
        load_checkpoint(tmp_path / "last").model_state["weight"], _model_state(2)["weight"]
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last"]


def test_a_damaged_file_is_detected_by_its_checksum(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "last", _model_state(1), {})
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert not is_complete_checkpoint(folder)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(folder)


def test_weights_serialized_once_make_two_intact_checkpoints(tmp_path: Path) -> None:
    # "last" and "best" of an improving epoch share one serialization: each checkpoint's
    # recorded hash must still be that of its own file on disk, and the weights the same.
    state = _model_state(3)
    weights = SerializedWeights.of(state)
    last = save_checkpoint(tmp_path / "last", weights, {}, {"progress": {"epoch_index": 1}})
    best = save_checkpoint(tmp_path / "best", weights, {})
    for folder in (last, best):
        assert is_complete_checkpoint(folder)
        assert torch.equal(load_checkpoint(folder).model_state["weight"], state["weight"])
    assert (last / "model.safetensors").read_bytes() == (best / "model.safetensors").read_bytes()


def test_tied_and_sliced_weights_are_saved_apart_and_the_others_as_they_are(
    tmp_path: Path,
) -> None:
    # safetensors refuses tensors that share memory: tied weights (one tensor under two
    # names) and views of one buffer are copied apart; a weight read back is its own values.
    shared = torch.arange(12.0).reshape(3, 4)
    state = {"encoder": shared, "decoder": shared, "first": shared[0], "plain": torch.ones(2)}
    folder = save_checkpoint(tmp_path / "last", SerializedWeights.of(state), {})
    loaded = load_checkpoint(folder).model_state
    assert set(loaded) == set(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor)
    assert torch.equal(shared, torch.arange(12.0).reshape(3, 4))  # the model's own untouched


def test_a_folder_without_its_completeness_marker_is_refused(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "last", _model_state(1), {})
    (folder / "meta.json").unlink()
    with pytest.raises(CheckpointError, match=r"meta\.json is missing"):
        load_checkpoint(folder)


def test_a_swap_cut_short_is_recovered_from_the_old_folder(tmp_path: Path) -> None:
    """Simulates a kill between 'rename last aside' and 'rename the new one in'."""
    folder = save_checkpoint(tmp_path / "last", _model_state(1), {})
    folder.rename(tmp_path / ".last.old")
    (tmp_path / ".last.partial").mkdir()
    (tmp_path / ".last.partial" / "model.safetensors").write_bytes(b"half written")
    loaded = load_checkpoint(tmp_path / "last")
    assert torch.equal(loaded.model_state["weight"], _model_state(1)["weight"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last"]


def test_recover_removes_an_incomplete_old_folder(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "last", _model_state(1), {})
    shutil.copytree(tmp_path / "last", tmp_path / ".last.old")
    recover_checkpoint(tmp_path / "last")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last"]


def test_a_checkpoint_from_a_newer_app_is_refused_with_that_reason(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "last", _model_state(1), {"format_version": 99})
    with pytest.raises(CheckpointError, match="newer PTM Studio"):
        load_checkpoint(folder)


def test_rng_state_round_trip_reproduces_random_numbers(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "last", _model_state(1), {}, {"rng": capture_rng_state()})
    expected = (torch.rand(3), random.random())
    trainer_state = load_checkpoint(folder).trainer_state
    assert trainer_state is not None
    restore_rng_state(trainer_state["rng"])
    again = (torch.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and expected[1] == again[1]
