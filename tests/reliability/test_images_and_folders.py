"""I1–I13: bad pictures and odd folders, met the way a user meets them (docs/fault-catalogue.md).

The bad files are planted in the user's own picture folder (``nothing_lost.pictures``); then the
test goes through what the user does: scan the folder (``scan_folder`` + ``preflight``, or
``ptm-studio scan``), train on it (``Trainer.new_run(...).run()``), predict (``ptm-studio predict`` /
``Predictor``) and look at the thumbnails (the GUI's ``load_thumbnail``). Each ends with
``nothing_lost.check()``: the app changed, moved or deleted none of the user's files, and the
last good checkpoint of the earlier run still loads. I14 lives in test_files_vanish_during_training.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, JpegImagePlugin
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from ptm_studio.cli import main
from ptm_studio.core.checkpoints import read_meta
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data import (
    BACKGROUND_COLOUR,
    DatasetError,
    DatasetScan,
    ImageDataset,
    ImageLoadError,
    ImageRecord,
    ScanCancelled,
    build_transform,
    load_image,
    preflight,
    scan_folder,
)
from ptm_studio.core.engine.callbacks import EventRecorder
from ptm_studio.core.engine.events import BatchFinished, TrainingFinished, TrainingStarted
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.inference import Predictor
from ptm_studio.gui.dataset_summary import DatasetSummary, scan_dataset
from ptm_studio.gui.panels.dataset_panel import DatasetPanel
from ptm_studio.gui.widgets.thumbnail_grid import load_thumbnail

from .conftest import NothingLost, folder_digest

# Offscreen Qt for the GUI parts (thumbnails, the background scan); no window ever opens.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

CLASSES = ("circle", "square", "stripe")
PICTURES_PER_CLASS = 8
UNREADABLE = "not an image (or a format PTM Studio does not read)"


# ----------------------------------------------------------------------------- helpers


def plant(
    nothing_lost: NothingLost, relative: str, content: bytes | Image.Image, **save: object
) -> Path:
    """Put a file into the user's picture folder (an image is saved, bytes are written)."""
    path = nothing_lost.pictures / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Image.Image):
        content.save(path, **save)  # type: ignore[arg-type]
    else:
        path.write_bytes(content)
    return path


def train(
    nothing_lost: NothingLost, tmp_path: Path, config: RunConfig | None = None
) -> tuple[TrainingFinished, EventRecorder]:
    """One epoch on the user's pictures (or ``config``), into a new run under ``tmp_path``."""
    recorder = EventRecorder()
    finished = Trainer.new_run(
        config or nothing_lost.config, callbacks=[recorder], runs_root=tmp_path / "new runs"
    ).run()
    return finished, recorder


def assert_trained(
    finished: TrainingFinished, recorder: EventRecorder, pictures: int
) -> TrainingStarted:
    assert finished.status == "completed", finished.error_details
    for path in finished.skipped_files:  # only unusable files are reported as left out
        with pytest.raises(ImageLoadError):
            load_image(path)
    (started,) = recorder.of_type(TrainingStarted)
    assert started.num_train_images + started.num_val_images == pictures
    return started  # type: ignore[return-value]


def assert_refused_before_training(
    finished: TrainingFinished, recorder: EventRecorder, *phrases: str
) -> str:
    assert finished.status == "failed", finished.error_details
    assert finished.kind == "data_unusable", finished.error_details
    assert recorder.of_type(BatchFinished) == [], "training started anyway"
    for phrase in phrases:
        assert phrase in finished.error_message, (phrase, finished.error_message)
    return finished.error_message


def run_cli(capsys: pytest.CaptureFixture[str], *arguments: object) -> tuple[int, str, str]:
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def unreadable(scan: DatasetScan) -> dict[str, str]:
    return {path.relative_to(scan.root).as_posix(): reason for path, reason in scan.unreadable}


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3))
    return Image.fromarray(pixels.astype(np.uint8))


def image_bytes(image: Image.Image, image_format: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save)  # type: ignore[arg-type]
    return buffer.getvalue()


# The three ways a picture is decoded, side by side.


def training_tensor(nothing_lost: NothingLost, path: Path) -> torch.Tensor:
    """What training feeds the model: ImageDataset with the run's evaluation transform."""
    meta = read_meta(nothing_lost.run_dir.last_checkpoint_dir)
    transform = build_transform(
        int(meta["image_size"]), mean=tuple(meta["mean"]), std=tuple(meta["std"]), train=False
    )
    record = ImageRecord(path, "circle", "unassigned")
    tensor, _ = ImageDataset((record,), CLASSES, transform)[0]
    return tensor


def prediction_tensor(nothing_lost: NothingLost, path: Path) -> torch.Tensor:
    """What prediction feeds the model, caught on its way in."""
    predictor = Predictor.from_run(nothing_lost.run_dir.path, device="cpu")
    seen: list[torch.Tensor] = []
    hook = predictor.model.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    try:
        (prediction,) = predictor.predict_paths([path])
    finally:
        hook.remove()
    assert prediction.error == "", prediction.error
    (batch,) = seen
    return batch[0].contiguous()


def preview_pixels(path: Path, size: int = 64) -> np.ndarray | None:
    """What the app's thumbnails and image viewer show (RGB), or None for the placeholder."""
    image = load_thumbnail(str(path), size)
    if image.isNull():
        return None
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(height, image.bytesPerLine())
    return rows[:, : 3 * width].reshape(height, width, 3).copy()


def assert_same_everywhere(nothing_lost: NothingLost, path: Path) -> np.ndarray:
    """Training and prediction feed the model the same tensor; returns the picture's pixels."""
    assert torch.equal(training_tensor(nothing_lost, path), prediction_tensor(nothing_lost, path))
    return np.asarray(load_image(path))


# ----------------------------------------------------------------------------- I1


def appledouble() -> bytes:
    return b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 40


def test_i1_one_bad_file_is_skipped_and_listed_and_training_goes_on(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(nothing_lost, "circle/empty.jpg", b"")
    fork = plant(nothing_lost, "stripe/._stripe_000.png", appledouble())  # never an image
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    assert unreadable(scan) == {"circle/empty.jpg": "the file is empty"}
    assert fork in scan.ignored and fork not in [record.path for record in scan.records]
    code, out, _ = run_cli(capsys, "scan", nothing_lost.pictures)
    assert code == 0  # 1 of 25 files: below the 5 % threshold
    assert "1 of 25 image files cannot be read and will be left out: circle/empty.jpg" in out
    assert "Re-save the ones you need as JPEG or PNG" in out

    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=24)
    nothing_lost.check()


def test_i1_too_many_bad_files_stop_preflight_with_each_listed_by_path(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(nothing_lost, "circle/empty.jpg", b"")
    plant(nothing_lost, "square/field notes.jpg", b"Sample 12, collected on the 3rd of May.\n")
    plant(nothing_lost, "stripe/._stripe_000.png", appledouble())
    nothing_lost.refresh()
    expected = (
        "2 of 26 image files (8%) cannot be read, more than the 5% allowed: circle/empty.jpg "
        f"(the file is empty); square/field notes.jpg ({UNREADABLE})."
    )
    advice = "Fix or delete the broken files (the scan lists each one and why)"

    with pytest.raises(DatasetError) as caught:
        preflight(scan_folder(nothing_lost.pictures))
    assert caught.value.message == expected and advice in caught.value.advice
    code, _, err = run_cli(capsys, "scan", nothing_lost.pictures)
    assert code == 3 and expected in err and advice in err
    finished, recorder = train(nothing_lost, tmp_path)
    assert_refused_before_training(finished, recorder, expected, advice)

    # Raising the allowed share (a data setting) lets training go on without them.
    allowing = replace_field(nothing_lost.config, "data.max_bad_file_fraction", 0.1)
    finished, recorder = train(nothing_lost, tmp_path, allowing)
    assert_trained(finished, recorder, pictures=24)
    nothing_lost.check()


def test_i1_a_training_run_lists_the_bad_files_it_left_out(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(nothing_lost, "circle/empty.jpg", b"")
    nothing_lost.refresh()
    runs = tmp_path / "cli runs"
    code, out, err = run_cli(
        capsys, "train", "--config", nothing_lost.run_dir.config_path, "--runs-root", runs
    )
    assert code == 0, err
    nothing_lost.check()
    (run,) = runs.iterdir()
    recorded = json.loads((run / "run.json").read_text(encoding="utf-8"))["skipped_files"]
    assert "empty.jpg" in out + err
    assert any(path.endswith("empty.jpg") for path in recorded)


# ----------------------------------------------------------------------------- I2


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_i2_a_truncated_picture_is_rejected_never_grey_filled(
    nothing_lost: NothingLost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    image_format: str,
) -> None:
    whole = image_bytes(noise((64, 64), seed=1), image_format)
    cut = plant(
        nothing_lost, f"circle/cut short.{image_format.lower()}", whole[: len(whole) * 6 // 10]
    )
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    assert unreadable(scan) == {f"circle/{cut.name}": "the file is truncated or corrupt"}
    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=24)  # trained without it

    code, out, _ = run_cli(
        capsys, "predict", "--run", nothing_lost.run_dir.path, "--device", "cpu", cut
    )
    assert code == 3
    assert "(not read)" in out and "the file is truncated or corrupt" in out
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    nothing_lost.check()


# ----------------------------------------------------------------------------- I3


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header is rewritten (with a fixed CRC) to claim width × height."""
    data = bytearray(image_bytes(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_i3_a_tiny_png_claiming_30000_by_30000_is_rejected(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bomb = plant(nothing_lost, "square/bomb.png", png_claiming_size(30000, 30000))
    assert bomb.stat().st_size < 100
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    (reason,) = unreadable(scan).values()
    assert "the image is too large" in reason and "possible decompression bomb" in reason
    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=24)

    code, out, _ = run_cli(
        capsys, "predict", "--run", nothing_lost.run_dir.path, "--device", "cpu", bomb
    )
    assert code == 3 and "possible decompression bomb" in out
    nothing_lost.check()


def test_i3_a_large_photo_is_scanned_at_reduced_size_and_trains(
    nothing_lost: NothingLost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = plant(
        nothing_lost, "square/camera photo.jpg", Image.new("RGB", (4000, 3000), (40, 200, 60))
    )
    nothing_lost.refresh()
    decoded: list[tuple[Path, tuple[int, int]]] = []
    original_load = JpegImagePlugin.JpegImageFile.load

    def recording_load(self: JpegImagePlugin.JpegImageFile) -> object:
        # The loader hands Pillow the file it opened (checked), so the name is the file's;
        # later calls, once the pixels are in memory and the file let go, decode nothing.
        if self.fp is not None:
            decoded.append((Path(str(self.fp.name)), self.size))
        return original_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", recording_load)
    scan = scan_folder(nothing_lost.pictures)
    assert photo in [record.path for record in scan.records]
    # The scan decodes every picture; libjpeg's draft mode decoded an eighth of this one, so the
    # 36 MB of the full photo were never in memory.
    assert set(decoded) == {(photo, (500, 375))}

    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=25)
    nothing_lost.check()


# ----------------------------------------------------------------------------- I4


def pixel_mode_files() -> dict[str, tuple[str, Callable[[], Image.Image], tuple[int, int, int]]]:
    """name → (file name, picture, the RGB every path must show)."""
    return {
        "cmyk": ("cmyk.jpg", lambda: Image.new("CMYK", (16, 16), (0, 255, 255, 0)), (255, 0, 0)),
        "grey": ("grey.png", lambda: Image.new("L", (16, 16), 100), (100, 100, 100)),
        "one_bit": ("bits.png", lambda: Image.new("1", (16, 16), 1), (255, 255, 255)),
        "16_bit": (
            "deep.png",
            lambda: Image.fromarray(np.full((16, 16), 30000, dtype=np.uint16)),
            (117, 117, 117),  # scaled, not clipped to 255
        ),
        "32_bit_int": (
            "int32.tif",
            lambda: Image.fromarray(np.full((16, 16), 30000, dtype=np.int32)),
            (117, 117, 117),
        ),
        "32_bit_float": (
            "float.tif",
            lambda: Image.fromarray(np.full((16, 16), 0.5, dtype=np.float32)),
            (128, 128, 128),
        ),
    }


MODES = pixel_mode_files()


def plant_mode(nothing_lost: NothingLost, mode: str) -> tuple[Path, tuple[int, int, int]]:
    name, make, expected = MODES[mode]
    return plant(nothing_lost, f"circle/{name}", make()), expected


def test_i4_pictures_in_every_pixel_mode_train(nothing_lost: NothingLost, tmp_path: Path) -> None:
    for mode in MODES:
        plant_mode(nothing_lost, mode)
    nothing_lost.refresh()
    scan = scan_folder(nothing_lost.pictures)
    assert scan.unreadable == () and scan.count_by_class()["circle"] == 8 + len(MODES)
    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=24 + len(MODES))
    nothing_lost.check()


@pytest.mark.parametrize("mode", list(MODES))
def test_i4_training_and_prediction_see_the_same_3_channel_uint8_pixels(
    nothing_lost: NothingLost, mode: str
) -> None:
    path, expected = plant_mode(nothing_lost, mode)
    nothing_lost.refresh()
    pixels = assert_same_everywhere(nothing_lost, path)
    assert pixels.dtype == np.uint8 and pixels.shape == (16, 16, 3)
    assert np.abs(pixels.astype(int) - expected).max() <= 2, pixels[0, 0]
    nothing_lost.check()


@pytest.mark.parametrize(
    "mode",
    MODES,
)
def test_i4_the_preview_shows_the_same_pixels(nothing_lost: NothingLost, mode: str) -> None:
    path, _ = plant_mode(nothing_lost, mode)
    nothing_lost.refresh()
    expected = np.asarray(load_image(path)).astype(int)
    shown = preview_pixels(path)
    nothing_lost.check()
    assert shown is not None, "the thumbnail shows the placeholder"
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(int) - expected).max() <= 2


# ----------------------------------------------------------------------------- I5


def transparent_files() -> dict[str, Image.Image]:
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    rgba.paste((255, 0, 0, 128), (8, 0, 16, 16))
    grey_alpha = Image.new("LA", (16, 16), (0, 0))
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    palette.paste(1, (8, 0, 16, 16))
    return {"rgba.png": rgba, "grey alpha.png": grey_alpha, "palette.png": palette}


def test_i5_transparent_pixels_are_laid_on_one_documented_background(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    assert BACKGROUND_COLOUR == (255, 255, 255)  # documented in core/data/loader.py
    paths = {}
    for name, image in transparent_files().items():
        options = {"transparency": 0} if image.mode == "P" else {}
        paths[name] = plant(nothing_lost, f"stripe/{name}", image, **options)
    nothing_lost.refresh()

    for path in paths.values():
        pixels = assert_same_everywhere(nothing_lost, path)
        assert tuple(pixels[0, 0]) == BACKGROUND_COLOUR, path.name  # fully transparent
    assert tuple(np.asarray(load_image(paths["rgba.png"]))[0, 15]) == (255, 127, 127)
    assert tuple(np.asarray(load_image(paths["palette.png"]))[0, 15]) == (0, 255, 0)

    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=27)
    nothing_lost.check()


# ----------------------------------------------------------------------------- I6

ORIENTATION_FORMATS = {
    "jpeg": ("JPEG", ".jpg"),
    "png": ("PNG", ".png"),
    "tiff": ("TIFF", ".tif"),
    "webp": ("WEBP", ".webp"),
}


def plant_rotated(nothing_lost: NothingLost, kind: str) -> Path:
    """Stored 8 wide × 16 high, red on top, blue below, with EXIF "rotate 90° clockwise"."""
    image_format, suffix = ORIENTATION_FORMATS[kind]
    stored = Image.new("RGB", (8, 16), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 8, 8, 16))
    exif = stored.getexif()
    exif[0x0112] = 6
    options: dict[str, object] = {"quality": 95} if kind == "jpeg" else {}
    if kind == "webp":
        options = {"lossless": True}
    return plant(
        nothing_lost,
        f"circle/phone photo{suffix}",
        stored,
        format=image_format,
        exif=exif,
        **options,
    )


def assert_upright(pixels: np.ndarray) -> None:
    """Turned upright: 16 wide × 8 high, the bottom (blue) swung round to the left."""
    assert pixels.shape == (8, 16, 3)
    left, right = pixels[4, 2].astype(int), pixels[4, 13].astype(int)
    assert left[2] > 200 and left[0] < 60, left
    assert right[0] > 200 and right[2] < 60, right


@pytest.mark.parametrize("kind", list(ORIENTATION_FORMATS))
def test_i6_exif_orientation_is_applied_the_same_in_training_and_prediction(
    nothing_lost: NothingLost, tmp_path: Path, kind: str
) -> None:
    path = plant_rotated(nothing_lost, kind)
    nothing_lost.refresh()
    assert_upright(assert_same_everywhere(nothing_lost, path))
    tensor = training_tensor(nothing_lost, path)
    # After the centre crop the left half is blue and the right half red (red channel first).
    assert tensor[2, 8, 2] > tensor[0, 8, 2] and tensor[0, 8, 13] > tensor[2, 8, 13]
    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=25)
    nothing_lost.check()


@pytest.mark.parametrize(
    "kind",
    ORIENTATION_FORMATS,
)
def test_i6_the_preview_is_turned_upright_the_same_way(
    nothing_lost: NothingLost, kind: str
) -> None:
    path = plant_rotated(nothing_lost, kind)
    nothing_lost.refresh()
    shown = preview_pixels(path)
    nothing_lost.check()
    assert shown is not None
    assert_upright(shown)


# ----------------------------------------------------------------------------- I7


def test_i7_animations_and_multi_page_tiffs_use_the_first_frame_and_are_flagged(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    red, blue = Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))
    gif = plant(
        nothing_lost, "square/blinking.gif", red, save_all=True, append_images=[blue], duration=50
    )
    tiff = plant(nothing_lost, "square/stack.tif", red, save_all=True, append_images=[blue])
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    assert set(scan.multi_frame_files) == {gif, tiff} and scan.unreadable == ()
    code, out, _ = run_cli(capsys, "scan", nothing_lost.pictures)
    assert code == 0
    assert (
        "[info] 2 files hold several frames or pages; only the first is used: square/blinking.gif, square/stack.tif."
        in out
    )
    assert "If the other frames matter, save them as separate pictures." in out
    for path in (gif, tiff):
        pixels = assert_same_everywhere(nothing_lost, path)
        assert tuple(pixels[8, 8]) == (255, 0, 0), path.name
    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=26)
    nothing_lost.check()


# ----------------------------------------------------------------------------- I8

EPS_TEXT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"
PSD_HEADER = (
    b"8BPS\x00\x01" + b"\x00" * 6 + b"\x00\x03" + struct.pack(">II", 4, 4) + b"\x00\x08\x00\x03"
)


def test_i8_only_allowed_formats_are_opened_and_eps_never(
    nothing_lost: NothingLost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Image.init()
    tried: list[str] = []

    def forbidden(name: str) -> Callable[..., object]:
        def opener(*_arguments: object) -> object:
            tried.append(name)
            raise AssertionError(f"the {name} reader was tried")

        return opener

    for name in ("EPS", "PSD"):  # EPS would start Ghostscript
        monkeypatch.setitem(Image.OPEN, name, (forbidden(name), lambda prefix: True))
    eps = plant(nothing_lost, "circle/figure.png", EPS_TEXT)
    psd = plant(nothing_lost, "square/layers.png", PSD_HEADER)
    tiff = plant(
        nothing_lost, "stripe/scanner.png", Image.new("RGB", (16, 16), (9, 8, 7)), format="TIFF"
    )
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    assert unreadable(scan) == {"circle/figure.png": UNREADABLE, "square/layers.png": UNREADABLE}
    assert tiff in [record.path for record in scan.records]  # TIFF is allowed, whatever its name
    allowing = replace_field(nothing_lost.config, "data.max_bad_file_fraction", 0.1)
    finished, recorder = train(nothing_lost, tmp_path, allowing)
    assert_trained(finished, recorder, pictures=25)
    code, out, _ = run_cli(
        capsys, "predict", "--run", nothing_lost.run_dir.path, "--device", "cpu", eps, psd
    )
    assert code == 3 and out.count(UNREADABLE) == 2
    assert tried == []
    nothing_lost.check()


# ----------------------------------------------------------------------------- I9


def test_i9_system_and_hidden_files_are_ignored_never_classes_and_listed(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = noise((16, 16), seed=9)
    for relative in (".DS_Store", "circle/Thumbs.db", "square/desktop.ini", "circle/.DS_Store"):
        plant(nothing_lost, relative, b"\x00\x00\x00\x01Bud1" + b"\x00" * 32)
    plant(nothing_lost, ".git/HEAD", b"ref: refs/heads/main\n")
    plant(nothing_lost, ".git/assets/logo.png", picture)
    plant(nothing_lost, "__MACOSX/circle/._circle_000.png", appledouble())
    plant(nothing_lost, "__MACOSX/preview.png", picture)
    plant(nothing_lost, ".ipynb_checkpoints/notes-checkpoint.png", picture)
    plant(nothing_lost, "stripe/.ipynb_checkpoints/stripe_000-checkpoint.png", picture)
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    assert scan.class_names == CLASSES
    assert scan.count_by_class() == dict.fromkeys(CLASSES, PICTURES_PER_CLASS)
    assert scan.unreadable == ()
    (folders,) = scan.problems_of_kind("ignored_folders")
    assert set(folders.paths) == {
        nothing_lost.pictures / name
        for name in (".git", ".ipynb_checkpoints", "__MACOSX", "stripe/.ipynb_checkpoints")
    }
    code, out, _ = run_cli(capsys, "scan", nothing_lost.pictures)
    assert code == 0
    assert (
        "4 folders were skipped (system, hidden or unknown folders): .git, .ipynb_checkpoints, __MACOSX and 1 more."
        in out
    )

    finished, recorder = train(nothing_lost, tmp_path)
    started = assert_trained(finished, recorder, pictures=24)
    assert started.class_names == CLASSES
    nothing_lost.check()


# ----------------------------------------------------------------------------- I10


def scan_within(folder: Path, seconds: float) -> DatasetScan:
    """Scan on a helper thread so that a hang fails the test instead of stalling it."""
    result: list[DatasetScan] = []
    thread = threading.Thread(target=lambda: result.append(scan_folder(folder)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the scan of {folder} hangs"
    (scan,) = result
    return scan


def test_i10_symlink_loops_and_links_across_classes_make_no_duplicates_mislabels_or_hang(
    nothing_lost: NothingLost, tmp_path: Path
) -> None:
    pictures = nothing_lost.pictures
    os.symlink(pictures, pictures / "circle" / "back to the top")
    os.symlink(pictures / "square" / "loop 2", pictures / "square" / "loop 1")
    os.symlink(pictures / "square" / "loop 1", pictures / "square" / "loop 2")
    os.symlink(pictures / "circle", pictures / "square" / "all the circles")
    os.symlink(pictures / "circle" / "circle_000.png", pictures / "stripe" / "a circle.png")
    os.symlink(tmp_path / "elsewhere", pictures / "stripe" / "outside")
    nothing_lost.refresh()

    scan = scan_within(pictures, seconds=20)
    assert scan.count_by_class() == dict.fromkeys(CLASSES, PICTURES_PER_CLASS)
    real_files = [record.path.resolve() for record in scan.records]
    assert len(set(real_files)) == len(real_files) == 24  # no picture counted twice
    for record, real in zip(scan.records, real_files, strict=True):
        assert record.class_name == real.parent.name  # labelled by where it really is
    (links,) = scan.problems_of_kind("skipped_links")
    assert {path.name for path in links.paths} == {
        "back to the top", "loop 1", "loop 2", "all the circles", "a circle.png", "outside"
    }  # fmt: skip

    finished, recorder = train(nothing_lost, tmp_path)
    assert_trained(finished, recorder, pictures=24)
    nothing_lost.check()


# ----------------------------------------------------------------------------- I11


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


CASES = {
    "empty_class": (
        "These class folders have no readable training pictures: 'triangle'.",
        "Add pictures to them, or move the folders out of the dataset folder",
    ),
    "one_class": (
        "Only one class was found ('cells'). A classifier needs at least two classes",
        "Add a second subfolder with pictures of another class next to 'cells'.",
    ),
    "no_class_folders": (
        "are not sorted into classes. Finetuning needs one subfolder per class",
        "Make one subfolder per class and move each picture into its class, or choose pretraining",
    ),
    "class_too_small": (
        "These classes have only one picture: 'lonely'. Each class needs at least two",
        "Add more pictures to these classes (ten or more each is better), or make a val/ folder",
    ),
}


def folder_for(case: str, nothing_lost: NothingLost, tmp_path: Path) -> Path:
    pictures = nothing_lost.pictures
    if case == "empty_class":
        (pictures / "triangle").mkdir()
        return pictures
    if case == "one_class":
        return copy_folder(pictures / "circle", tmp_path / "my cells" / "cells").parent
    if case == "no_class_folders":
        return pictures / "circle"  # pictures straight in the chosen folder
    (pictures / "lonely").mkdir()  # class_too_small: one picture cannot be split
    shutil.copy2(pictures / "square" / "square_000.png", pictures / "lonely" / "only one.png")
    return pictures


@pytest.mark.parametrize("case", list(CASES))
def test_i11_unusable_folders_are_refused_in_plain_words_before_any_training(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    folder = folder_for(case, nothing_lost, tmp_path)
    nothing_lost.refresh()
    other_digest = folder_digest(folder)
    message, advice = CASES[case]

    code, _, err = run_cli(capsys, "scan", folder)
    assert code == 3 and message in err and advice in err
    config = replace_field(nothing_lost.config, "data.data_dir", str(folder))
    finished, recorder = train(nothing_lost, tmp_path, config)
    assert_refused_before_training(finished, recorder, message, advice)
    assert folder_digest(folder) == other_digest
    nothing_lost.check()


# ----------------------------------------------------------------------------- I12

BIG_FOLDER_FILES = 1200  # enough for several progress steps; the speed is a benchmark matter


def plant_many(nothing_lost: NothingLost, count: int = BIG_FOLDER_FILES) -> None:
    """``count`` distinct tiny PNGs spread over the three classes (a tEXt chunk makes each unique)."""
    template = image_bytes(Image.new("RGB", (4, 4), (10, 20, 30)), "PNG")
    for index in range(count):
        text = b"id\x00" + str(index).encode()
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + text))
        plant(
            nothing_lost,
            f"{CLASSES[index % 3]}/many/{index:05d}.png",
            template[:33] + chunk + template[33:],
        )


def test_i12_a_big_folder_is_scanned_in_the_background_with_progress(
    nothing_lost: NothingLost, qtbot: QtBot
) -> None:
    plant_many(nothing_lost)
    nothing_lost.refresh()
    total = 24 + BIG_FOLDER_FILES

    # The core scan reports as it goes: files counted (total not known yet), then checked.
    calls: list[tuple[int, int | None]] = []
    scan_folder(nothing_lost.pictures, on_progress=lambda done, of: calls.append((done, of)))
    assert calls == [
        (0, None),
        (512, None),
        (1024, None),
        (512, total),
        (1024, total),
        (total, total),
    ]

    # The app runs it on a worker thread: the window's event loop keeps running meanwhile.
    scanning: dict[str, float] = {}

    def timed_scan(*arguments: Any, **options: Any) -> DatasetSummary:
        scanning["thread"] = threading.get_ident()
        scanning["start"] = time.monotonic()
        try:
            return scan_dataset(*arguments, **options)
        finally:
            scanning["end"] = time.monotonic()

    panel = DatasetPanel(scan_function=timed_scan)
    qtbot.addWidget(panel)
    progress: list[tuple[int, int]] = []
    panel.scan_job.progressed.connect(lambda done, of: progress.append((done, of)))
    finished: list[object] = []
    panel.dataset_changed.connect(finished.append)
    ticks: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(5)
    with qtbot.waitSignal(panel.dataset_changed, timeout=60_000):
        panel.set_folder(nothing_lost.pictures)
    timer.stop()
    assert panel.scan_job.wait()

    assert scanning["thread"] != threading.get_ident()
    during = [tick for tick in ticks if scanning["start"] < tick < scanning["end"]]
    assert during, "the window's event loop did not run while the folder was scanned"
    (summary,) = finished
    assert summary.num_images == total  # type: ignore[attr-defined]
    assert progress[0] == (0, 0)  # at once: 0 files, total not known yet
    assert all(done <= total and of in (0, total) for done, of in progress)
    nothing_lost.check()


def test_i12_cancel_stops_a_big_scan_at_once(nothing_lost: NothingLost, qtbot: QtBot) -> None:
    plant_many(nothing_lost)
    nothing_lost.refresh()
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    finished: list[object] = []
    panel.dataset_changed.connect(finished.append)
    with qtbot.waitSignal(panel.scan_job.progressed, timeout=30_000):
        panel.set_folder(nothing_lost.pictures)
    pressed = time.monotonic()
    with qtbot.waitSignal(panel.scan_job.cancelled, timeout=10_000):
        panel.cancel_scan()
    assert time.monotonic() - pressed < 5.0
    assert panel.scan_job.wait() and finished == []

    # The same in the core: the scan polls should_cancel and stops with ScanCancelled.
    calls: list[tuple[int, int | None]] = []
    with pytest.raises(ScanCancelled, match="cancelled"):
        scan_folder(
            nothing_lost.pictures,
            on_progress=lambda done, total: calls.append((done, total)),
            should_cancel=lambda: len(calls) >= 2,
        )
    assert calls[:2] == [(0, None), (512, None)]
    nothing_lost.check()


# ----------------------------------------------------------------------------- I13


def test_i13_unicode_spaces_and_mixed_case_extensions_all_load(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new_class = "Zellkerne – Hühner 🐔 ✓"
    names = [
        "Ürün çiçek 花.JPG",
        "photo with spaces.JpEg",
        "ñandú 1.Png",
        "scan 02.TIFF",
        "x y.WebP",
    ]
    planted = [
        plant(nothing_lost, f"{new_class}/{name}", noise((16, 16), seed=index))
        for index, name in enumerate(names)
    ]
    planted.append(plant(nothing_lost, "circle/Kreis – ö.JPG", noise((16, 16), seed=99)))
    nothing_lost.refresh()

    scan = scan_folder(nothing_lost.pictures)
    assert scan.unreadable == () and scan.ignored == ()
    assert scan.class_names == tuple(sorted((*CLASSES, new_class)))
    assert set(planted) <= {record.path for record in scan.records}
    finished, recorder = train(nothing_lost, tmp_path)
    started = assert_trained(finished, recorder, pictures=24 + len(planted))
    assert new_class in started.class_names

    code, out, err = run_cli(
        capsys, "predict", "--run", finished.run_dir, "--device", "cpu", *planted
    )
    assert code == 0, err
    assert "(not read)" not in out
    for path in planted:
        assert str(path) in out
    nothing_lost.check()
