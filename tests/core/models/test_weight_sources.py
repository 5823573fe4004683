"""Starting weights from the ImageNet cache, a download, a file or an earlier run (M10)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import safetensors.torch
import torch
import torch.hub
from model_test_helpers import assert_same_state, clone_state
from torchvision.models import get_model

from ptm_studio.core.checkpoints import save_checkpoint
from ptm_studio.core.config import ModelConfig
from ptm_studio.core.models import (
    ImageClassifier,
    WeightsError,
    build_classifier,
    catalogue,
    imagenet_status,
    imagenet_weights_path,
    imagenet_weights_url,
    load_imagenet_weights,
    load_initial_weights,
    load_run_weights,
)
from ptm_studio.core.models import weights as weights_module

BACKBONE = "mobilenet_v3_small"  # the smallest torchvision backbone: quick to build and save


def _forbid(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("a test tried to use the network")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "download_url_to_file", _forbid)
    monkeypatch.setattr(urllib.request, "urlopen", _forbid)


@pytest.fixture(scope="module")
def fake_imagenet_file() -> tuple[bytes, dict[str, torch.Tensor], str]:
    """A random torchvision state dict saved like the hub files, its tensors and sha256."""
    torch.manual_seed(5)
    state = get_model(BACKBONE, weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return data, state, hashlib.sha256(data).hexdigest()


def point_url_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Download from ``url``, and keep the file under its name as torchvision would (the
    catalogue names the cache file after torchvision's own address)."""
    monkeypatch.setattr(weights_module, "imagenet_weights_url", lambda name: url)
    spec = catalogue.get_backbone_spec(BACKBONE)
    file_name = url.rsplit("/", 1)[-1]
    replaced = dataclasses.replace(spec, imagenet_weights_file=file_name)
    monkeypatch.setitem(catalogue._SPECS, BACKBONE, replaced)


def fresh(num_classes: int = 3) -> ImageClassifier:
    torch.manual_seed(11)
    return build_classifier(BACKBONE, num_classes)


def test_cache_path_follows_torch_home(torch_home: Path) -> None:
    path = imagenet_weights_path("resnet18")
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_weights_url("resnet18").endswith("/resnet18-f37072fd.pth")


def test_status_reports_cache_download_and_unavailable(torch_home: Path) -> None:
    assert imagenet_status("resnet18") == "needs_download"
    assert imagenet_status("small_cnn") == "not_available"
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"placeholder")
    assert imagenet_status("resnet18") == "available_offline"


def test_offline_without_cache_says_so_and_never_downloads(
    torch_home: Path, no_network: None
) -> None:
    model = build_classifier("resnet18", 3)
    before = clone_state(model)
    with pytest.raises(WeightsError, match="not on this computer") as caught:
        load_imagenet_weights(model)
    error = caught.value
    assert "ResNet-18" in error.message and "offline-first" in error.message
    assert "Download" in error.advice and "about 45 MB" in error.advice
    assert "random" in error.advice
    assert_same_state(clone_state(model), before)
    config = ModelConfig(backbone="resnet18", weights="imagenet", allow_download=False)
    with pytest.raises(WeightsError, match="not on this computer"):
        load_initial_weights(model, config)


def test_backbone_without_imagenet_weights_is_explained(torch_home: Path) -> None:
    with pytest.raises(WeightsError, match="Small CNN has no ImageNet weights"):
        load_imagenet_weights(build_classifier("small_cnn", 3))


def place_in_cache(monkeypatch: pytest.MonkeyPatch, data: bytes, hash_prefix: str) -> Path:
    point_url_at(monkeypatch, f"https://download.invalid/{BACKBONE}-{hash_prefix}.pth")
    path = imagenet_weights_path(BACKBONE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_cached_imagenet_weights_load_after_the_hash_check(
    torch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
    fake_imagenet_file: tuple[bytes, dict[str, torch.Tensor], str],
) -> None:
    data, state, sha256 = fake_imagenet_file
    path = place_in_cache(monkeypatch, data, sha256[:8])
    assert imagenet_status(BACKBONE) == "available_offline"
    model = fresh()
    head_before = clone_state(model.head)
    report = load_imagenet_weights(model)
    expected = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    assert_same_state(clone_state(model.backbone), expected)
    assert_same_state(clone_state(model.head), head_before)
    assert report.head_reinitialised
    assert report.loaded_keys == len(expected)
    assert all(key.startswith("classifier.") for key in report.unexpected_keys)
    assert "ImageNet weights for MobileNet V3 Small" in report.summary()
    assert path.read_bytes() == data


def test_damaged_cache_is_caught_by_the_hash(
    torch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_network: None,
    fake_imagenet_file: tuple[bytes, dict[str, torch.Tensor], str],
) -> None:
    data, _, sha256 = fake_imagenet_file
    wrong_prefix = "00000000" if not sha256.startswith("00000000") else "11111111"
    path = place_in_cache(monkeypatch, data, wrong_prefix)
    model = fresh()
    before = clone_state(model)
    with pytest.raises(WeightsError, match=r"damaged \(hash mismatch\)") as caught:
        load_imagenet_weights(model, allow_download=True)
    assert "MobileNet V3 Small" in caught.value.message
    assert str(path) in caught.value.advice and "download again" in caught.value.advice
    assert_same_state(clone_state(model), before)


def serve_from_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, hash_prefix: str
) -> None:
    """Point the download at a file:// URL: the real download code runs without a network."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    source = mirror / f"{BACKBONE}-{hash_prefix}.pth"
    source.write_bytes(data)
    point_url_at(monkeypatch, source.as_uri())


def test_download_streams_checks_and_reports_progress(
    torch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_imagenet_file: tuple[bytes, dict[str, torch.Tensor], str],
) -> None:
    data, state, sha256 = fake_imagenet_file
    serve_from_folder(tmp_path, monkeypatch, data, sha256[:8])
    calls: list[tuple[int, int]] = []
    model = fresh()
    config = ModelConfig(backbone=BACKBONE, weights="imagenet", allow_download=True)
    report = load_initial_weights(
        model, config, progress=lambda done, total: calls.append((done, total))
    )
    assert report is not None and report.head_reinitialised
    assert calls[0] == (0, len(data)) and calls[-1] == (len(data), len(data))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    path = imagenet_weights_path(BACKBONE)
    assert path.read_bytes() == data
    assert list(path.parent.iterdir()) == [path], "no temp files are left behind"
    expected = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    assert_same_state(clone_state(model.backbone), expected)


def test_damaged_download_leaves_nothing_in_the_cache(
    torch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_imagenet_file: tuple[bytes, dict[str, torch.Tensor], str],
) -> None:
    data, _, sha256 = fake_imagenet_file
    wrong_prefix = "00000000" if not sha256.startswith("00000000") else "11111111"
    serve_from_folder(tmp_path, monkeypatch, data, wrong_prefix)
    with pytest.raises(WeightsError, match="arrived damaged"):
        load_imagenet_weights(fresh(), allow_download=True)
    cache_folder = imagenet_weights_path(BACKBONE).parent
    assert list(cache_folder.iterdir()) == []


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would send even 127.0.0.1 out to the network.
    for variable in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def test_unreachable_server_is_a_clear_error(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, loopback_only: None, closed_port: int
) -> None:
    point_url_at(monkeypatch, f"http://127.0.0.1:{closed_port}/{BACKBONE}-abcdef12.pth")
    with pytest.raises(WeightsError, match=r"Could not download .*\(no internet\?\)"):
        load_imagenet_weights(fresh(), allow_download=True)
    assert not imagenet_weights_path(BACKBONE).exists()


def test_stalled_download_times_out_instead_of_hanging(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch, loopback_only: None, silent_server: int
) -> None:
    monkeypatch.setattr(weights_module, "DOWNLOAD_TIMEOUT_SECONDS", 0.5)
    point_url_at(monkeypatch, f"http://127.0.0.1:{silent_server}/{BACKBONE}-abcdef12.pth")
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="Could not download"):
        load_imagenet_weights(fresh(), allow_download=True)
    assert time.perf_counter() - started < 5.0
    assert list(imagenet_weights_path(BACKBONE).parent.iterdir()) == []


def save_run_checkpoint(run_dir: Path, kind: str, model_state: dict[str, torch.Tensor]) -> Path:
    """Writes a checkpoint the way the trainer does (complete, with meta.json)."""
    return save_checkpoint(run_dir / "checkpoints" / kind, model_state, {}) / "model.safetensors"


def small(seed: int, num_classes: int = 3) -> ImageClassifier:
    torch.manual_seed(seed)
    return build_classifier("small_cnn", num_classes)


def test_run_weights_prefer_the_best_checkpoint(tmp_path: Path) -> None:
    best, last = small(1), small(2)
    run_dir = tmp_path / "2024-05-01 flowers run"
    save_run_checkpoint(run_dir, "best", best.state_dict())
    save_run_checkpoint(run_dir, "last", last.state_dict())
    target = small(3)
    report = load_run_weights(target, run_dir)
    assert_same_state(clone_state(target), clone_state(best))
    assert "best checkpoint" in report.source and not report.head_reinitialised


def test_run_weights_fall_back_to_the_last_checkpoint(tmp_path: Path) -> None:
    last = small(2)
    run_dir = tmp_path / "run"
    save_run_checkpoint(run_dir, "last", last.state_dict())
    target = small(3)
    config = ModelConfig(backbone="small_cnn", weights="run", weights_path=str(run_dir))
    report = load_initial_weights(target, config)
    assert report is not None and "last checkpoint" in report.source
    assert_same_state(clone_state(target), clone_state(last))


def test_pretraining_run_with_only_the_backbone(tmp_path: Path) -> None:
    pretrained = small(2)
    run_dir = tmp_path / "pretrain"
    backbone_only = {f"backbone.{k}": v for k, v in pretrained.backbone.state_dict().items()}
    save_run_checkpoint(run_dir, "best", backbone_only)
    target = small(3, num_classes=7)
    report = load_run_weights(target, run_dir)
    assert report.head_reinitialised
    assert_same_state(clone_state(target.backbone), clone_state(pretrained.backbone))


def test_a_half_written_checkpoint_is_skipped_for_the_complete_one(tmp_path: Path) -> None:
    best, last = small(1), small(2)
    run_dir = tmp_path / "run"
    save_run_checkpoint(run_dir, "best", best.state_dict())
    save_run_checkpoint(run_dir, "last", last.state_dict())
    (run_dir / "checkpoints" / "best" / "meta.json").unlink()  # as if killed mid-write
    target = small(3)
    report = load_run_weights(target, run_dir)
    assert "last checkpoint" in report.source
    assert_same_state(clone_state(target), clone_state(last))


def test_run_without_checkpoints_names_the_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "empty run"
    run_dir.mkdir()
    with pytest.raises(WeightsError, match="No saved model") as caught:
        load_run_weights(small(3), run_dir)
    assert str(run_dir) in caught.value.message


def test_initial_weights_random_and_file(tmp_path: Path) -> None:
    model = small(3)
    assert load_initial_weights(model, ModelConfig(backbone="small_cnn")) is None
    source = small(4)
    path = tmp_path / "mine.safetensors"
    safetensors.torch.save_file(source.state_dict(), str(path))
    config = ModelConfig(backbone="small_cnn", weights="file", weights_path=str(path))
    report = load_initial_weights(model, config)
    assert report is not None and report.source == "'mine.safetensors'"
    assert_same_state(clone_state(model), clone_state(source))


def test_initial_weights_from_a_file_without_a_path_is_refused() -> None:
    config = ModelConfig(backbone="small_cnn", weights="file", weights_path=None)
    with pytest.raises(WeightsError, match="need a path"):
        load_initial_weights(small(3), config)


def test_stop_during_the_download_cancels_it_and_leaves_nothing(
    torch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_imagenet_file: tuple[bytes, dict[str, torch.Tensor], str],
    tiny_dataset: Path,
) -> None:
    from ptm_studio.core.config import DataConfig, DeviceConfig, RunConfig
    from ptm_studio.core.engine.callbacks import Callback
    from ptm_studio.core.engine.control import StopRequest, TrainingControl
    from ptm_studio.core.engine.events import DownloadProgressed
    from ptm_studio.core.engine.trainer import Trainer

    data, _, sha256 = fake_imagenet_file
    serve_from_folder(tmp_path, monkeypatch, data, sha256[:8])
    monkeypatch.setattr("ptm_studio.core.models.weights._DOWNLOAD_CHUNK_BYTES", 1024)
    stop = StopRequest()
    seen: list[int] = []

    class PressStopAtTheFirstReport(Callback):
        """Reports are throttled (the first always passes): Stop lands during the download."""

        def on_download_progressed(
            self, event: DownloadProgressed, control: TrainingControl
        ) -> None:
            seen.append(event.done_bytes)
            stop.request()

    config = RunConfig(
        data=DataConfig(data_dir=str(tiny_dataset), image_size=32, batch_size=4),
        model=ModelConfig(backbone=BACKBONE, weights="imagenet", allow_download=True),
        device=DeviceConfig(device="cpu", cpu_threads=1),
    ).validate()
    finished = Trainer.new_run(
        config,
        stop_request=stop,
        runs_root=tmp_path / "runs",
        callbacks=[PressStopAtTheFirstReport()],
    ).run()
    assert finished.status == "stopped", finished.error_details
    assert "Stopped before training began" in finished.error_message
    assert max(seen) < len(data)  # cancelled mid-way
    assert not imagenet_weights_path(BACKBONE).exists()
    assert list(imagenet_weights_path(BACKBONE).parent.glob("*")) == []  # no temp file left
    assert finished.run_dir is None
