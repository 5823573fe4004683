"""Hostile and broken weight files (faults M1–M5, M7, M9, docs/fault-catalogue.md) are refused
in plain words."""

from __future__ import annotations

import io
import os
import pickle
import resource
import struct
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from model_test_helpers import assert_same_state, clone_state
from PIL import Image
from torch import nn

from ptm_studio.core.config import ModelConfig
from ptm_studio.core.models import (
    ImageClassifier,
    WeightsError,
    load_initial_weights,
    load_state_dict_file,
    safe_load,
)

UNSAFE_OVERRIDE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


class MarkerWriter:
    """Unpickling this object would call ``open(marker, "w")``: code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def tiny_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"layer.weight": torch.randn(4, 3), "layer.bias": torch.randn(4)}


def save_torch(path: Path, payload: object, *, legacy: bool = False) -> Path:
    with open(path, "wb") as handle:
        torch.save(payload, handle, _use_new_zipfile_serialization=not legacy)
    return path


# --- M1: code hidden in a pickle never runs ---


@pytest.mark.parametrize("file_format", ["zip", "legacy", "raw_pickle"])
@pytest.mark.parametrize("override_set", [False, True], ids=["plain", "env_override"])
def test_malicious_pickle_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str, override_set: bool
) -> None:
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / "evil.pt"
    payload = {"weight": MarkerWriter(marker)}
    if file_format == "raw_pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        save_torch(path, payload, legacy=file_format == "legacy")
    if override_set:
        monkeypatch.setenv(UNSAFE_OVERRIDE, "1")
    with pytest.raises(WeightsError, match="could run code") as caught:
        load_state_dict_file(path)
    assert not marker.exists()
    assert "state_dict" in caught.value.advice
    assert caught.value.path == path
    assert UNSAFE_OVERRIDE not in os.environ


def test_explicit_weights_only_alone_resists_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.14 honours an explicit weights_only=True even with the variable set."""
    marker = tmp_path / "code_ran.txt"
    path = save_torch(tmp_path / "evil.pt", {"weight": MarkerWriter(marker)})
    monkeypatch.setattr(safe_load, "disable_unsafe_load_override", lambda: None)
    monkeypatch.setenv(UNSAFE_OVERRIDE, "1")
    with pytest.raises(WeightsError):
        load_state_dict_file(path)
    assert not marker.exists()


def test_both_torch_override_variables_do_not_break_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch raises "Only one of … should be set" when both are set; removing ours avoids it.
    monkeypatch.setenv(UNSAFE_OVERRIDE, "1")
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    path = save_torch(tmp_path / "good.pt", tiny_state_dict())
    assert load_state_dict_file(path).keys() == tiny_state_dict().keys()


def test_malicious_file_leaves_the_model_unchanged(
    tmp_path: Path, small_model: ImageClassifier
) -> None:
    marker = tmp_path / "code_ran.txt"
    path = save_torch(tmp_path / "evil.pth", {"state_dict": {"x": MarkerWriter(marker)}})
    before = clone_state(small_model)
    config = ModelConfig(backbone="small_cnn", weights="file", weights_path=str(path))
    with pytest.raises(WeightsError):
        load_initial_weights(small_model, config)
    assert not marker.exists()
    assert_same_state(clone_state(small_model), before)


# --- M2: programs and whole models are not weights ---


def test_whole_pickled_module_is_refused(tmp_path: Path) -> None:
    path = save_torch(tmp_path / "whole_model.pt", nn.Linear(3, 4))
    with pytest.raises(WeightsError, match="whole pickled model") as caught:
        load_state_dict_file(path)
    assert "model.state_dict()" in caught.value.advice
    assert ".safetensors" in caught.value.advice


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        # torch.jit.script is deprecated; making the fixture is the only place it is used.
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(nn.Linear(3, 4)).save(str(path))
    with pytest.raises(WeightsError, match="TorchScript program") as caught:
        load_state_dict_file(path)
    assert "state_dict" in caught.value.advice


@pytest.fixture(scope="module")
def exported_program_bytes() -> bytes:
    buffer = io.BytesIO()
    program = torch.export.export(nn.Linear(3, 4), (torch.randn(1, 3),))
    torch.export.save(program, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("filename", ["exported.pt2", "exported_renamed.pt"])
def test_exported_program_is_refused(
    tmp_path: Path, exported_program_bytes: bytes, filename: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(exported_program_bytes)
    with pytest.raises(WeightsError, match="exported program") as caught:
        load_state_dict_file(path)
    assert "safetensors" in caught.value.advice


# --- M3: empty and truncated files ---


def _write_valid(path: Path) -> None:
    if path.suffix == ".safetensors":
        safetensors.torch.save_file(tiny_state_dict(), str(path))
    else:
        save_torch(path, tiny_state_dict(), legacy="legacy" in path.name)


@pytest.mark.parametrize("filename", ["zip.pt", "legacy.pth", "weights.safetensors"])
@pytest.mark.parametrize("cut", ["zero", "seven", "half"])
def test_truncated_files_are_incomplete_or_corrupt(tmp_path: Path, filename: str, cut: str) -> None:
    path = tmp_path / filename
    _write_valid(path)
    assert load_state_dict_file(path).keys() == tiny_state_dict().keys()
    data = path.read_bytes()
    keep = {"zero": 0, "seven": 7, "half": len(data) // 2}[cut]
    path.write_bytes(data[:keep])
    with pytest.raises(WeightsError, match="incomplete or corrupt") as caught:
        load_state_dict_file(path)
    assert filename in caught.value.message
    assert caught.value.advice


# --- M4: files that are not model files ---


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 46830571\n"
)


@pytest.mark.parametrize(
    ("filename", "content", "what"),
    [
        ("photo.pt", _jpeg_bytes(), "JPEG"),
        ("weights.pth", LFS_POINTER, "Git LFS pointer"),
        ("weights.safetensors", LFS_POINTER, "Git LFS pointer"),
    ],
)
def test_renamed_non_model_files_are_not_model_files(
    tmp_path: Path, filename: str, content: bytes, what: str
) -> None:
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="is not a model file") as caught:
        load_state_dict_file(path)
    assert what in caught.value.message


def test_unknown_file_type_is_not_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("class A: cells with round nuclei\n", encoding="utf-8")
    with pytest.raises(WeightsError, match="not a model file"):
        load_state_dict_file(path)


def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load_state_dict_file(tmp_path / "nowhere.pt")
    with pytest.raises(WeightsError, match="is a folder"):
        load_state_dict_file(tmp_path)


# --- M5: hostile safetensors headers ---


def _peak_memory_kilobytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_huge_safetensors_header_length_is_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(struct.pack("<Q", 2**62) + b"junk" * 32)
    peak_before = _peak_memory_kilobytes()
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        load_state_dict_file(path)
    assert time.perf_counter() - started < 10.0  # "no hang", not a speed target
    assert _peak_memory_kilobytes() - peak_before < 50 * 1024


def test_safetensors_offsets_past_the_end_are_refused(tmp_path: Path) -> None:
    header = b'{"w":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,40000000000]}}'
    path = tmp_path / "offsets.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        load_state_dict_file(path)


# --- M6 (file side): wrappers and prefixes ---


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
        lambda sd: {f"module._orig_mod.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": sd, "epoch": 7},
        lambda sd: {"model": OrderedDict(sd), "optimizer": {"lr": 0.1}},
        lambda sd: {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {**sd, "step": 12, "note": "hello"},
    ],
    ids=["module", "orig_mod", "both", "state_dict", "model", "model_state_dict", "extras"],
)
def test_wrappers_and_prefixes_are_removed(
    tmp_path: Path, wrap: Callable[[dict[str, torch.Tensor]], object]
) -> None:
    original = tiny_state_dict()
    path = save_torch(tmp_path / "wrapped.ckpt", wrap(original))
    loaded = load_state_dict_file(path)
    assert_same_state(loaded, original)


def test_file_without_tensors_is_refused(tmp_path: Path) -> None:
    path = save_torch(tmp_path / "settings.pt", {"epoch": 3, "lr": 0.1})
    with pytest.raises(WeightsError, match="No weights were found"):
        load_state_dict_file(path)


# --- M7: NaN and infinity ---


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_non_finite_weights_are_refused_naming_the_tensor(
    tmp_path: Path, bad_value: float, suffix: str
) -> None:
    state = tiny_state_dict()
    state["layer.bias"][2] = bad_value
    path = tmp_path / f"diverged{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        save_torch(path, state)
    with pytest.raises(WeightsError, match="NaN or infinity") as caught:
        load_state_dict_file(path)
    assert "layer.bias" in caught.value.message
    assert "layer.weight" not in caught.value.message


# --- M9: unicode, spaces and long paths ---


def _awkward_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "Données d'été" / "Zellkerne – Hühner 🐔 ✓"
    folder.mkdir(parents=True)
    return folder


def _long_name(suffix: str) -> str:
    stem = "Mikroskopie Aufnahme Gewebe Probe ñandú 細胞 " * 5
    name = (stem[: 200 - len(suffix)]).rstrip() + suffix
    assert len(name.encode("utf-8")) < 255  # the usual file-name limit
    return name


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_unicode_spaces_and_long_names_round_trip(tmp_path: Path, suffix: str) -> None:
    path = _awkward_folder(tmp_path) / _long_name(suffix)
    assert len(path.name) >= 190
    original = tiny_state_dict()
    if suffix == ".safetensors":
        with open(path, "wb") as handle:
            handle.write(safetensors.torch.save(original))
    else:
        save_torch(path, original)
    loaded = load_state_dict_file(path)
    assert_same_state(loaded, original)
    for key in original:
        assert loaded[key].numpy().tobytes() == original[key].numpy().tobytes()


def test_zip_that_is_not_torch_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "images.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat/1.txt", "not a picture")
    with pytest.raises(WeightsError, match="incomplete or corrupt"):
        load_state_dict_file(path)


def test_safetensors_whose_first_byte_looks_like_a_pickle(tmp_path: Path) -> None:
    # A header of 128 + 256·k bytes starts the file with 0x80, pickle's protocol opcode.
    original = tiny_state_dict()
    for padding in range(300):
        data = safetensors.torch.save(original, metadata={"note": "x" * padding})
        if data[0] == 0x80:
            break
    assert data[0] == 0x80
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert_same_state(load_state_dict_file(path), original)
