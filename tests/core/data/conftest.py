"""Tiny generated images and dataset folders for the data tests (nothing is downloaded)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ImageWriter = Callable[..., Path]
DatasetWriter = Callable[..., dict[str, list[Path]]]


def write_image(
    path: Path,
    *,
    size: tuple[int, int] = (8, 8),
    colour: tuple[int, ...] | int | None = None,
    mode: str = "RGB",
    image_format: str | None = None,
    **save_options: object,
) -> Path:
    """Save an image; without ``colour`` its pixels are noise seeded by the path, so unique."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if colour is None:
        generator = np.random.default_rng(zlib.crc32(str(path).encode()))
        pixels = generator.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
    else:
        image = Image.new(mode, size, colour)
    image.save(path, format=image_format, **save_options)
    return path


def write_dataset(
    root: Path, counts: dict[str, int], suffix: str = ".png"
) -> dict[str, list[Path]]:
    """One folder per class below ``root`` holding ``counts[class]`` distinct images."""
    return {
        name: [write_image(root / name / f"{name}_{index}{suffix}") for index in range(count)]
        for name, count in counts.items()
    }


@pytest.fixture
def make_image() -> ImageWriter:
    return write_image


@pytest.fixture
def make_dataset() -> DatasetWriter:
    return write_dataset
