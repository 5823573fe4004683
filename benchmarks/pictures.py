"""Picture folders the benchmarks make for themselves: no download, the same on every machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASS_COLOURS = ((200, 60, 60), (60, 160, 70), (60, 90, 200), (210, 180, 50))


def make_class_folders(
    folder: Path, per_class: int, size: int = 64, *, width: int | None = None, suffix: str = ".png"
) -> Path:
    """``per_class`` noisy pictures for each of four classes told apart by colour and by where a
    bright square sits, ``width`` × ``size`` pixels (square without ``width``), saved as
    ``suffix`` says (".jpg" for photo-like files that take a camera JPEG's time to decode), in
    one sub-folder per class; returns ``folder``."""
    generator = np.random.default_rng(0)
    height, width = size, width or size
    for class_index, colour in enumerate(CLASS_COLOURS):
        class_folder = folder / f"class_{class_index}"
        class_folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            noise = generator.normal(0, 40, (height, width, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255)
            top, left = (class_index % 2) * height // 2, (class_index // 2) * width // 2
            pixels[top : top + height // 4, left : left + width // 4] = 250
            Image.fromarray(pixels.astype(np.uint8)).save(class_folder / f"{index:05d}{suffix}")
    return folder
