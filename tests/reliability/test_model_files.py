"""M1–M10: bad model files, met the way a user meets them (docs/fault-catalogue.md).

A user meets a weights file as the starting point of a finetune (``model.weights = file`` or
``run``, in the app or with ``ptm-studio train --weights …``), and a run's checkpoint when
predicting (``ptm-studio predict --run RUN``) or resuming. Every test goes through one of those
paths, checks the words the user reads, and ends with ``nothing_lost.check()``: the picture folder
is byte-for-byte unchanged and the last good checkpoint of the earlier run still loads.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import pickle
import resource
import shutil
import socket
import struct
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from PIL import Image
from torch import nn
from torchvision.models import get_model

from ptm_studio.core.checkpoints import (
    TRAINER_STATE_FILE,
    load_checkpoint,
    save_checkpoint,
)
from ptm_studio.core.config import ModelConfig, RunConfig, replace_field
from ptm_studio.core.engine.events import TrainingFinished
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.models import (
    ImageClassifier,
    WeightsError,
    build_classifier,
    imagenet_weights_path,
    load_initial_weights,
)
from ptm_studio.core.models import weights as weights_module
from ptm_studio.core.runs import RunDirectory

from .cli_checks import run_cli
from .conftest import NothingLost

UNSAFE_OVERRIDE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
IMAGENET_BACKBONE = "mobilenet_v3_small"  # the smallest torchvision backbone


# ----------------------------------------------------------------------------- helpers


def finetune_from(
    nothing_lost: NothingLost, tmp_path: Path, weights_path: Path, *, source: str = "file"
) -> TrainingFinished:
    """Start a new one-epoch finetune on the user's pictures from ``weights_path``."""
    config = replace_field(nothing_lost.config, "model.weights", source)
    config = replace_field(config, "model.weights_path", str(weights_path))
    return Trainer.new_run(config.validate(), runs_root=tmp_path / "new runs").run()


def file_weights(path: Path) -> ModelConfig:
    """The model settings of a finetune that starts from the file ``path``."""
    return ModelConfig(backbone="small_cnn", weights="file", weights_path=str(path))


def save_config(config: RunConfig, folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text(config.to_json(), encoding="utf-8")
    return path


def cli_finetune(
    capsys: pytest.CaptureFixture[str], nothing_lost: NothingLost, tmp_path: Path, path: Path
) -> tuple[int, str, str]:
    """``ptm-studio train --config <earlier run's config.json> --weights file --weights-path …``."""
    return run_cli(
        capsys,
        "train",
        "--config",
        nothing_lost.run_dir.config_path,
        "--weights",
        "file",
        "--weights-path",
        path,
        "--runs-root",
        tmp_path / "cli runs",
        "--quiet",
    )


def assert_refused(finished: TrainingFinished, *phrases: str) -> str:
    assert finished.status == "failed", finished.error_details
    assert finished.kind == "weights_unusable", finished.error_details
    for phrase in phrases:
        assert phrase in finished.error_message, (phrase, finished.error_message)
    return finished.error_message


def assert_completed(finished: TrainingFinished) -> RunDirectory:
    assert finished.status == "completed", finished.error_details
    assert finished.run_dir is not None
    return RunDirectory(finished.run_dir)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trained_state(nothing_lost: NothingLost) -> dict[str, torch.Tensor]:
    """The weights of the user's earlier run: a realistic file to start a finetune from."""
    return load_checkpoint(nothing_lost.run_dir.best_checkpoint_dir).model_state


def fresh_model(num_classes: int = 3, seed: int = 11) -> ImageClassifier:
    torch.manual_seed(seed)
    return build_classifier("small_cnn", num_classes)


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def assert_same_state(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    for key in left:
        assert left[key].dtype == right[key].dtype, key
        assert left[key].numpy().tobytes() == right[key].numpy().tobytes(), key


def copy_of_run(nothing_lost: NothingLost, tmp_path: Path, name: str) -> Path:
    """A second run folder like the user's, free to damage; the user's own run stays intact."""
    copy = tmp_path / "other runs" / name
    shutil.copytree(nothing_lost.run_dir.path, copy)
    return copy


@pytest.fixture
def torch_load_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every torch.load call's keyword arguments (the call itself goes through unchanged)."""
    calls: list[dict[str, Any]] = []
    original = torch.load

    def recording_load(*arguments: Any, **keywords: Any) -> Any:
        calls.append(keywords)
        return original(*arguments, **keywords)

    monkeypatch.setattr(torch, "load", recording_load)
    return calls


def assert_only_safe_loads(calls: list[dict[str, Any]]) -> None:
    assert calls, "torch.load was expected to be used"
    for keywords in calls:
        assert keywords.get("weights_only") is True, keywords
        assert keywords.get("map_location") == "cpu", keywords


# ----------------------------------------------------------------------------- M1


class MarkerWriter:
    """Unpickling this object calls ``open(marker, "w")``: code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def write_malicious(path: Path, marker: Path, file_format: str) -> Path:
    payload = {"state_dict": {"backbone.features.0.0.weight": MarkerWriter(marker)}}
    if file_format == "raw_pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        with open(path, "wb") as handle:
            torch.save(payload, handle, _use_new_zipfile_serialization=file_format == "zip")
    return path


@pytest.mark.parametrize("file_format", ["zip", "legacy", "raw_pickle"])
@pytest.mark.parametrize("override_set", [False, True], ids=["plain", "env_override"])
def test_m1_a_pickle_that_runs_code_is_refused_and_the_code_never_runs(
    nothing_lost: NothingLost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    torch_load_calls: list[dict[str, Any]],
    file_format: str,
    override_set: bool,
) -> None:
    marker = tmp_path / "code_ran.txt"
    evil = write_malicious(tmp_path / "downloaded weights.pth", marker, file_format)
    evil_digest = sha256(evil)

    def set_override() -> None:
        if override_set:
            monkeypatch.setenv(UNSAFE_OVERRIDE, "1")

    set_override()
    message = assert_refused(
        finetune_from(nothing_lost, tmp_path, evil),
        "'downloaded weights.pth'",
        "could run code",
        "refuses",
        "state_dict()",
        ".safetensors",
    )
    assert "Unexpected error" not in message
    assert not marker.exists(), "code hidden in the file ran"

    set_override()
    code, _, err = cli_finetune(capsys, nothing_lost, tmp_path, evil)
    assert code == 2  # a file given that cannot be used
    assert "downloaded weights.pth" in err and "could run code" in err
    assert not marker.exists(), "code hidden in the file ran"

    # Loading goes into a fresh model; the model the user has stays as it was.
    set_override()
    model = fresh_model()
    before = clone_state(model)
    with pytest.raises(WeightsError, match="could run code"):
        load_initial_weights(model, file_weights(evil))
    assert_same_state(clone_state(model), before)

    assert not marker.exists(), "code hidden in the file ran"
    assert_only_safe_loads(torch_load_calls)  # never a fallback to unsafe loading
    assert sha256(evil) == evil_digest
    assert_really_runs_code(tmp_path, file_format)
    nothing_lost.check()


def assert_really_runs_code(tmp_path: Path, file_format: str) -> None:
    """Control: an unsafe load of such a file does run its code (so the test above means it)."""
    control = tmp_path / "control marker.txt"
    path = write_malicious(tmp_path / "control.pth", control, file_format)
    if file_format == "raw_pickle":
        loaded = pickle.loads(path.read_bytes())
    else:  # torch.serialization.load: the recorded torch.load is for the app's calls only
        loaded = torch.serialization.load(path, weights_only=False)
    loaded["state_dict"]["backbone.features.0.0.weight"].close()
    assert control.exists()


# ----------------------------------------------------------------------------- M2


@pytest.fixture(scope="module")
def exported_program_bytes() -> bytes:
    buffer = io.BytesIO()
    program = torch.export.export(nn.Linear(3, 4), (torch.randn(1, 3),))
    torch.export.save(program, buffer)
    return buffer.getvalue()


def write_program(kind: str, folder: Path, exported_program_bytes: bytes) -> tuple[Path, str]:
    """A file a user may take for weights, and the words that must name what it really is."""
    if kind == "whole_module":
        path = folder / "whole model.pt"
        with open(path, "wb") as handle:
            torch.save(fresh_model(), handle)
        return path, "holds a whole pickled model"
    if kind == "torchscript":
        path = folder / "scripted.pt"
        with warnings.catch_warnings():
            # torch.jit.script is deprecated; making the fixture is the only place it is used.
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.script(nn.Linear(3, 4)).save(str(path))
        return path, "is a TorchScript program"
    path = folder / "exported.pt2"
    path.write_bytes(exported_program_bytes)
    return path, "exported program"


@pytest.mark.parametrize("kind", ["whole_module", "torchscript", "pt2"])
def test_m2_programs_and_whole_models_are_refused_with_the_reason_and_export_advice(
    nothing_lost: NothingLost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    exported_program_bytes: bytes,
    kind: str,
) -> None:
    path, what = write_program(kind, tmp_path, exported_program_bytes)
    digest = sha256(path)
    assert_refused(
        finetune_from(nothing_lost, tmp_path, path),
        f"'{path.name}'",
        what,
        "torch.save(model.state_dict()",  # the advice: export a state_dict …
        "safetensors.torch.save_file",  # … or a safetensors file
    )
    code, _, err = cli_finetune(capsys, nothing_lost, tmp_path, path)
    assert code == 2 and what in err and "state_dict" in err
    assert sha256(path) == digest
    nothing_lost.check()


# ----------------------------------------------------------------------------- M3


def cut(data: bytes, where: str) -> bytes:
    return data[: {"zero": 0, "seven": 7, "half": len(data) // 2}[where]]


@pytest.mark.parametrize("where", ["zero", "seven", "half"])
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_m3_a_truncated_weights_file_is_incomplete_or_corrupt(
    nothing_lost: NothingLost, tmp_path: Path, suffix: str, where: str
) -> None:
    state = trained_state(nothing_lost)
    if suffix == ".safetensors":
        whole = safetensors.torch.save(state)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        whole = buffer.getvalue()
    path = tmp_path / f"copied from USB{suffix}"
    path.write_bytes(cut(whole, where))
    assert_refused(
        finetune_from(nothing_lost, tmp_path, path),
        f"'{path.name}'",
        "is incomplete or corrupt",
        "Save or download the file again, or choose an earlier checkpoint.",
    )
    assert path.read_bytes() == cut(whole, where)
    nothing_lost.check()


@pytest.mark.parametrize("where", ["zero", "seven", "half"])
def test_m3_the_other_checkpoint_of_a_run_with_a_truncated_one_still_loads(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    run = copy_of_run(nothing_lost, tmp_path, f"run cut {where}")
    damaged = RunDirectory(run).last_checkpoint_dir / "model.safetensors"
    damaged.write_bytes(cut(damaged.read_bytes(), where))

    # Predicting with the run uses its best checkpoint, which is intact.
    picture = sorted((nothing_lost.pictures / "circle").iterdir())[0]
    code, out, err = run_cli(capsys, "predict", "--run", run, "--device", "cpu", picture)
    assert code == 0, err
    assert picture.name in out

    # So does finetuning from the run; with the best one damaged, the last one is used.
    assert_completed(finetune_from(nothing_lost, tmp_path, run, source="run"))
    run_b = copy_of_run(nothing_lost, tmp_path, f"run best cut {where}")
    best = RunDirectory(run_b).best_checkpoint_dir / "model.safetensors"
    best.write_bytes(cut(best.read_bytes(), where))
    started = assert_completed(finetune_from(nothing_lost, tmp_path, run_b, source="run"))
    assert "(last checkpoint)" in started.read_status()["weights"]
    nothing_lost.check()


def test_m3_a_truncated_run_checkpoint_is_incomplete_or_corrupt_and_says_what_to_do(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_of_run(nothing_lost, tmp_path, "run cut")
    checkpoint = RunDirectory(run).last_checkpoint_dir
    model_file = checkpoint / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:7])
    picture = sorted((nothing_lost.pictures / "circle").iterdir())[0]
    advice = ("can go on from there", "start a new run")

    code, _, err = run_cli(capsys, "predict", "--run", checkpoint, "--device", "cpu", picture)
    assert code == 2
    assert f"{checkpoint}: model.safetensors is incomplete or corrupt" in err
    assert any(words in err for words in advice), err

    code, _, err = run_cli(capsys, "train", "--resume", run, "--quiet")
    assert code == 1
    assert f"{checkpoint}: model.safetensors is incomplete or corrupt" in err
    assert any(words in err for words in advice), err
    nothing_lost.check()


# ----------------------------------------------------------------------------- M4


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 46830571\n"
)


@pytest.mark.parametrize(
    ("name", "content", "what", "advice"),
    [
        ("holiday.pt", jpeg_bytes(), "a JPEG image", "Choose the .safetensors or .pt file"),
        ("model.safetensors", LFS_POINTER, "a Git LFS pointer", "git lfs pull"),
        ("model.pth", LFS_POINTER, "a Git LFS pointer", "git lfs pull"),
    ],
)
def test_m4_a_renamed_picture_or_lfs_pointer_is_not_a_model_file(
    nothing_lost: NothingLost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes,
    what: str,
    advice: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert_refused(
        finetune_from(nothing_lost, tmp_path, path), f"'{name}' is not a model file", what, advice
    )
    code, _, err = cli_finetune(capsys, nothing_lost, tmp_path, path)
    assert code == 2 and "is not a model file" in err and what in err
    assert path.read_bytes() == content
    nothing_lost.check()


# ----------------------------------------------------------------------------- M5


def peak_memory_megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def huge_header_length() -> bytes:
    return struct.pack("<Q", 2**62) + b'{"x":' + b"junk" * 32


def offsets_past_the_end() -> bytes:
    header = b'{"w":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,40000000000]}}'
    return struct.pack("<Q", len(header)) + header + b"\0" * 16


@pytest.mark.parametrize("content", [huge_header_length, offsets_past_the_end])
def test_m5_a_hostile_safetensors_header_is_a_clean_error_without_a_huge_allocation(
    nothing_lost: NothingLost, tmp_path: Path, content: Callable[[], bytes]
) -> None:
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(content())
    peak_before = peak_memory_megabytes()
    started = time.perf_counter()
    assert_refused(
        finetune_from(nothing_lost, tmp_path, path),
        "'hostile.safetensors'",
        "incomplete or corrupt",
        "not a valid safetensors file",
    )
    assert time.perf_counter() - started < 10.0  # no hang (not a speed target)
    # The header claims exabytes (or 40 GB of tensor data); a short training needs far less.
    assert peak_memory_megabytes() - peak_before < 256
    nothing_lost.check()


# ----------------------------------------------------------------------------- M6


def save_torch(path: Path, payload: object) -> Path:
    with open(path, "wb") as handle:
        torch.save(payload, handle)
    return path


def test_m6_weights_of_another_architecture_list_the_mismatches_and_change_nothing(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    torch.manual_seed(3)
    path = save_torch(tmp_path / "resnet18.pth", get_model("resnet18", weights=None).state_dict())
    message = assert_refused(
        finetune_from(nothing_lost, tmp_path, path),
        "The weights in 'resnet18.pth' do not fit the Small CNN backbone",
        "differences), so nothing was loaded. First differences:\n  - ",
        "pick the backbone it was made for",
    )
    assert message.count("\n  - ") == 10 and "… and " in message

    model = fresh_model()
    before = clone_state(model)
    with pytest.raises(WeightsError, match="do not fit"):
        load_initial_weights(model, file_weights(path))
    assert_same_state(clone_state(model), before)  # loaded into a copy, swapped only on success
    nothing_lost.check()


def test_m6_a_head_for_another_class_count_starts_fresh_and_says_so(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    five_classes = fresh_model(num_classes=5)
    five_classes.backbone.load_state_dict(
        {
            key.removeprefix("backbone."): value
            for key, value in trained_state(nothing_lost).items()
            if key.startswith("backbone.")
        }
    )
    path = tmp_path / "five classes.safetensors"
    safetensors.torch.save_file(five_classes.state_dict(), str(path))

    run = assert_completed(finetune_from(nothing_lost, tmp_path, path))
    note = run.read_status()["weights"]
    assert "The classifier head (the last layer, which picks the class) starts fresh" in note
    assert "made for 5 classes, this model has 3" in note
    # The user is told as the run starts, in the CLI (and the app) as well as in run.json.
    config = replace_field(nothing_lost.config, "model.weights", "file")
    config = replace_field(config, "model.weights_path", str(path))
    runs = tmp_path / "cli runs"
    code, _, err = run_cli(
        capsys, "train", "--config", save_config(config, tmp_path), "--runs-root", runs
    )
    assert code == 0 and "Starting from: Loaded" in err and "starts fresh" in err

    model = fresh_model()
    head_before = clone_state(model.head)
    report = load_initial_weights(model, file_weights(path))
    assert report is not None and report.head_reinitialised
    assert_same_state(clone_state(model.backbone), clone_state(five_classes.backbone))
    assert_same_state(clone_state(model.head), head_before)
    nothing_lost.check()


WRAPPERS: dict[str, Callable[[dict[str, torch.Tensor]], object]] = {
    "module": lambda state: {f"module.{key}": value for key, value in state.items()},
    "orig_mod": lambda state: {f"_orig_mod.{key}": value for key, value in state.items()},
    "state_dict": lambda state: {"state_dict": state, "epoch": 12, "optimizer": {"lr": 0.1}},
    "all_three": lambda state: {
        "state_dict": {f"module._orig_mod.{key}": value for key, value in state.items()}
    },
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_m6_wrappers_and_prefixes_are_stripped_and_everything_loads(
    nothing_lost: NothingLost, tmp_path: Path, wrapper: str
) -> None:
    state = trained_state(nothing_lost)
    path = save_torch(tmp_path / f"{wrapper}.pth", WRAPPERS[wrapper](state))
    run = assert_completed(finetune_from(nothing_lost, tmp_path, path))
    note = run.read_status()["weights"]
    assert note == f"Loaded {len(state)} weight tensors from '{wrapper}.pth'."

    model = fresh_model()
    load_initial_weights(model, file_weights(path))
    assert_same_state(clone_state(model), state)
    nothing_lost.check()


# ----------------------------------------------------------------------------- M7


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_m7_non_finite_weights_in_a_file_are_refused_naming_the_tensor(
    nothing_lost: NothingLost, tmp_path: Path, suffix: str, bad_value: float
) -> None:
    state = {key: value.clone() for key, value in trained_state(nothing_lost).items()}
    state["backbone.features.1.0.weight"].view(-1)[5] = bad_value
    path = tmp_path / f"diverged{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        save_torch(path, state)
    message = assert_refused(
        finetune_from(nothing_lost, tmp_path, path),
        f"'diverged{suffix}' contains invalid numbers (NaN or infinity) in 1 tensor(s): "
        "backbone.features.1.0.weight",
        "Use an earlier checkpoint of that training, or start from other weights.",
    )
    assert "features.0.0" not in message
    nothing_lost.check()


def write_non_finite_checkpoint(folder: Path) -> None:
    """Re-save a run checkpoint with one NaN, complete and with matching checksums."""
    loaded = load_checkpoint(folder)
    state = {key: value.clone() for key, value in loaded.model_state.items()}
    state["head.1.weight"].view(-1)[0] = float("nan")
    meta = {key: value for key, value in loaded.meta.items() if key not in ("complete", "files")}
    save_checkpoint(folder, state, meta, loaded.trainer_state)


def test_m7_a_run_whose_checkpoint_holds_nan_is_refused_as_a_starting_point(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    run = copy_of_run(nothing_lost, tmp_path, "diverged run")
    write_non_finite_checkpoint(RunDirectory(run).best_checkpoint_dir)
    assert_refused(
        finetune_from(nothing_lost, tmp_path, run, source="run"),
        "contains invalid numbers (NaN or infinity)",
        "head.1.weight",
        "Use an earlier checkpoint",
    )
    nothing_lost.check()


def test_m7_predicting_with_a_nan_checkpoint_is_refused_or_flagged(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_of_run(nothing_lost, tmp_path, "diverged run")
    write_non_finite_checkpoint(RunDirectory(run).best_checkpoint_dir)
    code, out, err = run_cli(
        capsys, "predict", "--run", run, "--device", "cpu", nothing_lost.pictures / "circle"
    )
    nothing_lost.check()
    assert "nan%" not in out, "NaN weights were used silently"
    assert code != 0 and "NaN" in err


# ----------------------------------------------------------------------------- M8


def make_newer(checkpoint_folder: Path) -> None:
    meta_path = checkpoint_folder / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["format_version"] = 99
    meta["app_version"] = "99.0"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")


def test_m8_a_checkpoint_from_a_newer_app_says_so(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_of_run(nothing_lost, tmp_path, "from the future")
    make_newer(RunDirectory(run).best_checkpoint_dir)
    make_newer(RunDirectory(run).last_checkpoint_dir)

    picture = sorted((nothing_lost.pictures / "square").iterdir())[0]
    code, _, err = run_cli(capsys, "predict", "--run", run, "--device", "cpu", picture)
    assert code == 2
    assert "made with a newer PTM Studio; please update the app" in err

    assert_refused(
        finetune_from(nothing_lost, tmp_path, run, source="run"),
        "from the future",
        "made with a newer PTM Studio; please update the app",
    )
    nothing_lost.check()


_CPU_TAG = b"X\x03\x00\x00\x00cpu"  # the pickled storage location "cpu" (BINUNICODE)
_GPU_TAG = b"X\x06\x00\x00\x00cuda:0"


def as_saved_on_gpu(data: bytes) -> bytes:
    """The same torch.save archive with every storage tagged "cuda:0".

    That tag is the only difference a GPU save makes (storages are written as raw bytes), so this
    reproduces a GPU-saved file without a GPU. Nothing else about the file is faked.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_STORED) as archive:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename.endswith("/data.pkl"):
                assert _CPU_TAG in payload
                payload = payload.replace(_CPU_TAG, _GPU_TAG)
            archive.writestr(info.filename, payload)
    tagged = output.getvalue()
    if not torch.cuda.is_available():  # the file really claims a GPU: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA device"):
            # torch.serialization.load: torch.load itself may be recorded by the test.
            torch.serialization.load(io.BytesIO(tagged), weights_only=True)
    return tagged


def torch_bytes(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_m8_weights_saved_on_a_gpu_load_on_the_cpu(
    nothing_lost: NothingLost, tmp_path: Path, torch_load_calls: list[dict[str, Any]]
) -> None:
    state = trained_state(nothing_lost)
    path = tmp_path / "trained on the cluster.pt"
    path.write_bytes(as_saved_on_gpu(torch_bytes({"model_state_dict": state})))
    run = assert_completed(finetune_from(nothing_lost, tmp_path, path))
    assert run.read_status()["weights"].startswith(f"Loaded {len(state)} weight tensors")
    assert_only_safe_loads(torch_load_calls)
    nothing_lost.check()


def test_m8_a_run_saved_on_a_gpu_resumes_on_the_cpu(
    nothing_lost: NothingLost, tmp_path: Path, torch_load_calls: list[dict[str, Any]]
) -> None:
    run = RunDirectory(copy_of_run(nothing_lost, tmp_path, "gpu run"))
    state_path = run.last_checkpoint_dir / TRAINER_STATE_FILE
    state_path.write_bytes(as_saved_on_gpu(state_path.read_bytes()))
    meta_path = run.last_checkpoint_dir / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["files"][TRAINER_STATE_FILE] = sha256(state_path)  # as the GPU machine recorded it
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    run.write_config(replace_field(run.read_config(), "optim.num_epochs", 2))

    finished = Trainer.resume(run.path).run()
    assert finished.status == "completed", finished.error_details
    assert finished.epochs_completed == 2
    assert_only_safe_loads(torch_load_calls)
    nothing_lost.check()


# ----------------------------------------------------------------------------- M9


def awkward_folder(root: Path) -> Path:
    """Unicode, spaces and apostrophes, several long names: well over Windows' 260 characters."""
    long_part = "Mikroskopie Aufnahme Gewebe Probe ñandú 細胞 " * 4
    folder = root / "Données d'été" / "Zellkerne – Hühner 🐔 ✓" / long_part.strip() / long_part
    folder.mkdir(parents=True)
    assert len(str(folder)) > 300
    return folder


def test_m9_a_weights_file_with_a_unicode_long_path_round_trips_byte_for_byte(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    state = trained_state(nothing_lost)
    name = ("Poids entraînés – 細胞 " * 8).strip()[:190] + ".safetensors"
    path = awkward_folder(tmp_path) / name
    with open(path, "wb") as handle:  # as the app saves: through a file object
        handle.write(safetensors.torch.save(state))
    assert_completed(finetune_from(nothing_lost, tmp_path, path))

    model = fresh_model()
    load_initial_weights(model, file_weights(path))
    assert_same_state(clone_state(model), state)
    nothing_lost.check()


def test_m9_a_run_saved_under_a_unicode_long_path_is_byte_identical(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = replace_field(nothing_lost.config, "run_name", "Lauf ✓ été 🐔")
    plain = assert_completed(Trainer.new_run(config, runs_root=tmp_path / "plain").run())
    awkward = assert_completed(Trainer.new_run(config, runs_root=awkward_folder(tmp_path)).run())
    assert awkward.path.name == plain.path.name
    for kind in ("best", "last"):
        saved = awkward.checkpoints_dir / kind / "model.safetensors"
        reference = plain.checkpoints_dir / kind / "model.safetensors"
        assert saved.read_bytes() == reference.read_bytes()  # same seed, same bytes
        assert_same_state(
            load_checkpoint(saved.parent).model_state, load_checkpoint(reference.parent).model_state
        )

    picture = sorted((nothing_lost.pictures / "stripe").iterdir())[0]
    code, out, err = run_cli(capsys, "predict", "--run", awkward.path, "--device", "cpu", picture)
    assert code == 0, err
    assert picture.name in out
    nothing_lost.check()


# ----------------------------------------------------------------------------- M10


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME: the real cache is never read or written."""
    home = tmp_path / "torch home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home


def imagenet_finetune(
    nothing_lost: NothingLost, tmp_path: Path, *, allow_download: bool
) -> tuple[TrainingFinished, float]:
    config: RunConfig = replace_field(nothing_lost.config, "model.backbone", IMAGENET_BACKBONE)
    config = replace_field(config, "model.weights", "imagenet")
    config = replace_field(config, "model.allow_download", allow_download)
    started = time.perf_counter()
    finished = Trainer.new_run(config.validate(), runs_root=tmp_path / "new runs").run()
    return finished, time.perf_counter() - started


def test_m10_damaged_cached_imagenet_weights_are_caught_by_the_hash(
    nothing_lost: NothingLost, tmp_path: Path, torch_home: Path
) -> None:
    cached = imagenet_weights_path(IMAGENET_BACKBONE)
    cached.parent.mkdir(parents=True)
    # A real torchvision state dict, damaged on disk afterwards (its hash no longer matches).
    cached.write_bytes(torch_bytes(get_model(IMAGENET_BACKBONE, weights=None).state_dict()))
    damaged = cached.read_bytes()
    finished, _ = imagenet_finetune(nothing_lost, tmp_path, allow_download=True)
    assert_refused(
        finished,
        "The cached ImageNet weights for MobileNet V3 Small are damaged (hash mismatch).",
        f"Delete {cached} and download again.",
    )
    assert cached.read_bytes() == damaged
    nothing_lost.check()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network, as on a laptop in the field: name lookups and connections fail at once."""
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)

    def no_name_lookup(*_arguments: object, **_keywords: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    def no_route(*_arguments: object, **_keywords: object) -> None:
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(socket, "getaddrinfo", no_name_lookup)
    monkeypatch.setattr(socket.socket, "connect", no_route)


def test_m10_offline_says_so_and_offers_another_start(
    nothing_lost: NothingLost, tmp_path: Path, torch_home: Path, offline: None
) -> None:
    finished, seconds = imagenet_finetune(nothing_lost, tmp_path, allow_download=False)
    assert_refused(
        finished,
        "ImageNet weights for MobileNet V3 Small are not on this computer",
        "offline-first",
        "choose 'random' or a file",
    )
    finished, seconds = imagenet_finetune(nothing_lost, tmp_path, allow_download=True)
    assert_refused(
        finished,
        "Could not download ImageNet weights for MobileNet V3 Small (no internet?)",
        "Check the internet connection and try again, or choose 'random' or a file.",
    )
    assert seconds < 10.0
    cache_folder = imagenet_weights_path(IMAGENET_BACKBONE).parent
    assert not cache_folder.exists() or list(cache_folder.iterdir()) == []
    nothing_lost.check()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a stalled download)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def test_m10_a_stalled_download_times_out_instead_of_hanging(
    nothing_lost: NothingLost,
    tmp_path: Path,
    torch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    silent_server: int,
) -> None:
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr(weights_module, "DOWNLOAD_TIMEOUT_SECONDS", 0.5)
    url = f"http://127.0.0.1:{silent_server}/{IMAGENET_BACKBONE}-abcdef12.pth"
    monkeypatch.setattr(weights_module, "imagenet_weights_url", lambda name: url)
    finished, seconds = imagenet_finetune(nothing_lost, tmp_path, allow_download=True)
    assert_refused(finished, "Could not download ImageNet weights", "or choose 'random' or a file")
    assert seconds < 5.0
    assert list(imagenet_weights_path(IMAGENET_BACKBONE).parent.iterdir()) == []
    nothing_lost.check()
