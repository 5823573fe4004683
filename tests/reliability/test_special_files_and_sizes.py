"""Special files and hostile sizes (issue 11): every file PTM Studio opens is checked to be a
regular file of a sane size, before and while it is read, so that nothing waits forever on a
pipe and no small file makes the program unpack gigabytes."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ptm_studio.cli_arguments import EXIT_USAGE
from ptm_studio.core.data import scan_folder
from ptm_studio.core.data.loader import ImageLoadError, load_image
from ptm_studio.core.file_reading import (
    FileTooLarge,
    NotARegularFile,
    open_for_reading,
    read_bytes,
    read_text,
)
from ptm_studio.core.models import WeightsError, load_state_dict_file

from .cli_checks import assert_plain_answer, run_cli, run_cli_process
from .conftest import NothingLost

HANG_GUARD_SECONDS = 60  # a refusal takes milliseconds; this only catches a hang


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _within_time(work: Callable[[], object]) -> object:
    """``work()``, failing the test (not blocking it) if it never returns."""
    results: list[object] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as error:  # handed back to the test
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_SECONDS)
    assert not thread.is_alive(), "blocked: the file was opened as if it were a regular file"
    if errors:
        raise errors[0]
    return results[0]


def test_a_pipe_named_like_a_picture_is_refused_at_once(tmp_path: Path) -> None:
    pipe = _fifo(tmp_path / "x.jpg")
    with pytest.raises(ImageLoadError, match="pipe"):
        _within_time(lambda: load_image(pipe))


def test_a_pipe_or_device_given_to_predict_exits_2(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    for path in (_fifo(tmp_path / "x.jpg"), Path("/dev/zero")):
        done = run_cli_process(
            "predict", "--run", nothing_lost.run_dir.path, path, home=tmp_path / "home",
            timeout=HANG_GUARD_SECONDS,
        )  # fmt: skip
        assert_plain_answer(
            done.returncode, done.stdout, done.stderr, expected=EXIT_USAGE, says="pipe or device"
        )
    nothing_lost.check()


def test_a_pipe_as_weights_file_or_config_is_refused_without_waiting(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipe = _fifo(tmp_path / "weights.pt")
    with pytest.raises(WeightsError, match="pipe"):
        _within_time(lambda: load_state_dict_file(pipe))
    done = run_cli_process(
        "train", "--data", nothing_lost.pictures, "--weights", "file", "--weights-path", pipe,
        "--runs-root", tmp_path / "new runs", "--quiet", home=tmp_path / "home",
        timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    code, out, err = done.returncode, done.stdout, done.stderr
    assert_plain_answer(code, out, err, expected=EXIT_USAGE, says="pipe")
    code, out, err = run_cli(capsys, "train", "--config", _fifo(tmp_path / "config.json"))
    assert_plain_answer(code, out, err, expected=EXIT_USAGE, says="pipe")
    nothing_lost.check()


def test_a_pipe_among_pictures_is_skipped_by_the_scan(nothing_lost: NothingLost) -> None:
    pipe = _fifo(nothing_lost.pictures / "circle" / "looks like a picture.png")
    scan = _within_time(lambda: scan_folder(nothing_lost.pictures))
    assert pipe not in [record.path for record in scan.records]  # type: ignore[attr-defined]


def _compressed_weights(path: Path, unpacked_bytes: int) -> Path:
    """A torch.save archive re-packed with compression, its tensor data blown up to
    ``unpacked_bytes`` of zeros: a few hundred KB on disk."""
    saved = io.BytesIO()
    torch.save({"weight": torch.zeros(256, 256)}, saved)
    original = zipfile.ZipFile(io.BytesIO(saved.getvalue()))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as packed:
        for entry in original.infolist():
            data = original.read(entry.filename)
            if entry.filename.endswith("/data/0"):
                data = bytes(unpacked_bytes)
            packed.writestr(entry.filename, data)
    return path


def test_a_small_archive_that_unpacks_to_gigabytes_is_refused_before_unpacking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = _compressed_weights(tmp_path / "weights.pt", unpacked_bytes=300 * 1024 * 1024)
    assert bomb.stat().st_size < 1024 * 1024

    def must_not_unpack(*_arguments: object, **_keywords: object) -> object:
        raise AssertionError("torch.load was called: the archive was being unpacked")

    monkeypatch.setattr(torch, "load", must_not_unpack)
    with pytest.raises(WeightsError, match=r"would unpack to 300\.0 MB") as refused:
        load_state_dict_file(bomb)
    assert "compressed" in str(refused.value)


def test_a_torch_file_as_saved_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(64, 64)}, path)
    assert load_state_dict_file(path)["weight"].shape == (64, 64)


def test_reading_stops_at_the_size_limit_and_when_a_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_bytes(b"x" * 100)
    with pytest.raises(FileTooLarge, match="more than"):
        read_bytes(path, max_bytes=50)
    with open_for_reading(path, max_bytes=150) as handle:
        with path.open("ab") as grower:
            grower.write(b"y" * 100)
        with pytest.raises(FileTooLarge, match="grew"):
            handle.read()
    with pytest.raises(NotARegularFile, match="device"):
        read_bytes("/dev/zero", max_bytes=50)
    with pytest.raises(IsADirectoryError):
        read_bytes(tmp_path, max_bytes=50)


def test_text_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes('{"name": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"not UTF-8 text \(byte 0xe9 at position 13\)"):
        read_text(path)


@pytest.mark.parametrize("mode", ["F", "I", "RGBA"])
def test_a_small_file_of_many_deep_pixels_is_reduced_before_it_is_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A 9400 × 9400 float TIFF is 667 KB on disk; converted at full size it took 4.5 GB."""
    from PIL import Image

    from ptm_studio.core.data import loader

    path = tmp_path / ("big.png" if mode == "RGBA" else "big.tif")
    fill = {"F": 0.5, "I": 70000, "RGBA": (0, 0, 0, 0)}[mode]
    Image.new(mode, (9400, 6000), fill).save(
        path, **({} if mode == "RGBA" else {"compression": "tiff_deflate"})
    )
    converted: list[tuple[int, int]] = []
    original = loader._to_rgb

    def recording(where: Path, image: Image.Image) -> Image.Image:
        converted.append(image.size)
        return original(where, image)

    monkeypatch.setattr(loader, "_to_rgb", recording)
    picture = loader.load_image(path)
    assert max(converted[0]) <= loader.WORKING_MAX_SIDE
    assert picture.mode == "RGB" and picture.size == (-(-9400 // 3), 6000 // 3)  # box of 3
