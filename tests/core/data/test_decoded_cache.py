"""Pictures kept decoded between epochs (core/data/decoded_cache.py): the same pixels as
decoding every time, for every kind of picture the loader reads; a file changed or deleted
after it was kept is noticed; memory, a scratch file or neither, as the budget says."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ptm_studio.core.config import AUGMENTATIONS
from ptm_studio.core.data import ImageDataset, ImageLoadError, ImageRecord, build_transform
from ptm_studio.core.data.decoded_cache import (
    DecodedPictures,
    PictureStore,
    plan_picture_store,
)

ImageWriter = Callable[..., Path]


def _exif_rotated_jpeg(path: Path) -> Path:
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 50, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # turned: the loader stands it upright
    picture.save(path, exif=exif)
    return path


def _sixteen_bit_png(path: Path) -> Path:
    values = np.random.default_rng(2).integers(0, 65535, (40, 30), dtype=np.uint16)
    Image.fromarray(values).save(path)
    return path


def _float_tiff(path: Path) -> Path:
    Image.fromarray(np.random.default_rng(3).random((24, 36), dtype=np.float32)).save(path)
    return path


def _animated_gif(path: Path) -> Path:
    frames = [Image.new("P", (20, 20), colour) for colour in (10, 200)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    return path


def _transparent_palette_png(path: Path) -> Path:
    picture = Image.new("P", (16, 24), 3)
    picture.info["transparency"] = 3
    picture.save(path)
    return path


def _large_jpeg(path: Path) -> Path:
    pixels = np.random.default_rng(4).integers(0, 256, (600, 900, 3), np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def picture_kinds(folder: Path, make_image: ImageWriter) -> list[Path]:
    """One file of each kind the loader turns into an RGB picture in its own way."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_image(folder / "colour.jpg", size=(40, 30)),
        make_image(folder / "colour.png", size=(33, 47)),
        make_image(folder / "grey.png", size=(30, 30), mode="L"),
        make_image(folder / "one_bit.png", size=(30, 20), mode="1"),
        make_image(folder / "alpha.png", size=(26, 26), mode="RGBA"),
        make_image(folder / "grey_alpha.png", size=(20, 28), mode="LA"),
        make_image(folder / "cmyk.jpg", size=(30, 30), mode="CMYK"),
        make_image(folder / "picture.webp", size=(30, 40)),
        make_image(folder / "picture.bmp", size=(25, 25)),
        make_image(folder / "page.tiff", size=(30, 30)),
        _sixteen_bit_png(folder / "sixteen_bit.png"),
        _float_tiff(folder / "float.tiff"),
        _animated_gif(folder / "animated.gif"),
        _transparent_palette_png(folder / "palette.png"),
        _exif_rotated_jpeg(folder / "turned.jpg"),
        _large_jpeg(folder / "large.jpg"),
    ]


def _datasets(
    paths: list[Path], train: bool, augmentations: tuple[str, ...], store: PictureStore
) -> tuple[ImageDataset, ImageDataset, DecodedPictures]:
    records = [ImageRecord(path, "a", "train") for path in paths]

    def transform():  # type: ignore[no-untyped-def]
        return build_transform(12, train=train, augmentations=augmentations)

    kept = DecodedPictures(store)
    with_cache = ImageDataset(records, ("a",), transform(), decode_side=48, kept=kept)
    without = ImageDataset(records, ("a",), transform(), decode_side=48)
    return with_cache, without, kept


def _epoch(dataset: ImageDataset, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [dataset[position][0] for position in range(len(dataset))]


@pytest.mark.parametrize("in_file", [False, True], ids=["memory", "scratch file"])
@pytest.mark.parametrize(
    ("train", "augmentations"),
    [(False, ()), (True, ("flip",)), (True, AUGMENTATIONS)],
    ids=["validation", "flip", "every augmentation"],
)
def test_kept_pictures_give_the_pixels_of_decoding_every_time(
    tmp_path: Path,
    make_image: ImageWriter,
    train: bool,
    augmentations: tuple[str, ...],
    in_file: bool,
) -> None:
    paths = picture_kinds(tmp_path / "kinds", make_image)
    store = PictureStore(2**30, tmp_path / "cache" if in_file else None)
    with_cache, without, kept = _datasets(paths, train, augmentations, store)
    for epoch in range(3):  # the first decodes and keeps, the others reuse
        fresh = _epoch(without, seed=epoch)
        cached = _epoch(with_cache, seed=epoch)
        for path, expected, got in zip(paths, fresh, cached, strict=True):
            assert torch.equal(expected, got), path.name
    assert kept.reused == 2 * len(paths) and len(kept) == len(paths)
    assert store.in_file is in_file and store.used_bytes > 0


def _rewrite(path: Path, colour: tuple[int, int, int]) -> None:
    before = path.stat()
    Image.new("RGB", (40, 30), colour).save(path)
    # The same size and second are possible on a coarse clock: move the time on for certain.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def test_a_picture_changed_after_it_was_kept_is_decoded_again(
    tmp_path: Path, make_image: ImageWriter
) -> None:
    path = make_image(tmp_path / "x.png", size=(40, 30))
    with_cache, _, kept = _datasets([path], False, (), PictureStore(2**20))
    first = with_cache[0][0]
    _rewrite(path, (255, 0, 0))
    changed = with_cache[0][0]
    assert not torch.equal(first, changed)
    expected = build_transform(12, train=False)(Image.new("RGB", (40, 30), (255, 0, 0)))
    assert torch.equal(changed, expected)
    assert kept.reused == 0
    with_cache[0]
    assert kept.reused == 1  # the new pixels are kept in turn


def test_a_picture_deleted_after_it_was_kept_raises_as_without_the_cache(
    tmp_path: Path, make_image: ImageWriter
) -> None:
    path = make_image(tmp_path / "x.png", size=(40, 30))
    with_cache, _, kept = _datasets([path], True, ("flip",), PictureStore(2**20))
    with_cache[0]
    path.unlink()
    with pytest.raises(ImageLoadError, match="no longer exists"):
        with_cache[0]
    assert len(kept) == 0


def test_a_picture_over_the_budget_is_decoded_every_time_not_kept(
    tmp_path: Path, make_image: ImageWriter
) -> None:
    paths = [make_image(tmp_path / f"{index}.png", size=(30, 30)) for index in range(3)]
    one_picture = 3 * 12 * 12
    with_cache, without, kept = _datasets(paths, False, (), PictureStore(2 * one_picture))
    for _ in range(2):
        assert all(
            torch.equal(a, b)
            for a, b in zip(_epoch(with_cache, 0), _epoch(without, 0), strict=True)
        )
    assert len(kept) == 2 and kept.reused == 2
    assert kept.store.used_bytes == 2 * one_picture


def test_a_full_disk_stops_keeping_pictures_and_loses_none(
    tmp_path: Path, make_image: ImageWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [make_image(tmp_path / f"{index}.png", size=(30, 30)) for index in range(3)]
    store = PictureStore(2**20, tmp_path / "cache")
    with_cache, without, kept = _datasets(paths, False, (), store)
    with_cache[0]  # the scratch file exists now; the disk fills up
    scratch = store._scratch_file()

    def full(_data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scratch, "write", full)
    for _ in range(2):
        assert all(
            torch.equal(a, b)
            for a, b in zip(_epoch(with_cache, 0), _epoch(without, 0), strict=True)
        )
    assert len(kept) == 1 and store.budget_bytes == store.used_bytes


def test_forgotten_pictures_decode_again_and_the_scratch_file_is_closed(
    tmp_path: Path, make_image: ImageWriter
) -> None:
    path = make_image(tmp_path / "x.png", size=(30, 30))
    store = PictureStore(2**20, tmp_path / "cache")
    with_cache, without, kept = _datasets([path], False, (), store)
    with_cache[0]
    kept.forget()
    assert store._file is None and len(kept) == 0
    assert torch.equal(with_cache[0][0], without[0][0]) and len(kept) == 0


def test_the_plan_keeps_pictures_in_memory_then_on_disk_then_partly() -> None:
    gigabyte = 2**30
    in_memory = plan_picture_store(gigabyte, Path("/cache"), free_memory=8 * gigabyte)
    assert not in_memory.store.in_file and in_memory.note is None
    on_disk = plan_picture_store(
        gigabyte, Path("/cache"), free_memory=2 * gigabyte, free_disk=10 * gigabyte
    )
    assert on_disk.store.folder == Path("/cache") and on_disk.note is None
    partly = plan_picture_store(
        4 * gigabyte, Path("/cache"), free_memory=8 * gigabyte, free_disk=gigabyte
    )
    assert not partly.store.in_file and partly.store.budget_bytes == 2 * gigabyte
    assert partly.note is not None
    assert "4.0 GB" in partly.note and "50%" in partly.note and "/cache" in partly.note
