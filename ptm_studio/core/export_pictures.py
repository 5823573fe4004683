"""The pictures the export's parity check runs on: the run's own, plus a few made on the spot.

The run's validation pictures are real data of the right kind; the made ones add what those
may lack (the tiny datasets of the tests are all exactly image_size square): a wide JPEG larger
than the decode size, a tall picture with transparency and a small grey one, so the resizing,
cropping, decoding and enlarging all take part in the check.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ptm_studio.core.checkpoints import META_FILE
from ptm_studio.core.data import DatasetError, decode_side_for
from ptm_studio.core.engine.setup import validation_records
from ptm_studio.core.runs import RunDirectory

LOGGER = logging.getLogger(__name__)
PARITY_PICTURES = 8
"""How many of the run's validation pictures the check uses (spread over the classes)."""


def validation_pictures(source: Path, limit: int = PARITY_PICTURES) -> list[Path]:
    """Up to ``limit`` validation pictures of the run ``source`` is (or holds the checkpoint
    of), taken in turn from each class; none when they cannot be found."""
    run = _run_of(source)
    if run is None:
        return []
    labelled = _from_predictions(run) or _from_split(run)
    return _spread_over_classes(labelled, limit)


def generated_pictures(folder: Path, image_size: int, seed: int = 0) -> list[Path]:
    """Three deterministic pictures in ``folder`` whose shapes differ from the model's input."""
    generator = np.random.default_rng(seed)
    large = decode_side_for(image_size) + image_size + 3  # shrunk on decoding, then resized
    made = []
    for name, (width, height), mode in (
        ("wide.jpg", (large, max(2, large // 3)), "RGB"),
        ("tall-transparent.png", (image_size + 7, 3 * image_size + 1), "RGBA"),
        ("small-grey.png", (max(2, image_size // 2 + 1), max(2, image_size // 2 + 3)), "L"),
    ):
        path = folder / name
        _picture(generator, width, height, mode).save(path)
        made.append(path)
    return made


def _picture(generator: np.random.Generator, width: int, height: int, mode: str) -> Image.Image:
    """A gradient with a bright square and noise: varied enough that the model's answer moves."""
    rows, columns = np.mgrid[0:height, 0:width]
    red = 255 * columns / max(width - 1, 1)
    green = 255 * rows / max(height - 1, 1)
    blue = np.where((rows // max(height // 4, 1) + columns // max(width // 4, 1)) % 2, 220, 30)
    pixels = np.stack([red, green, blue], axis=-1) + generator.normal(0, 25, (height, width, 3))
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        alpha = np.where(columns < width // 3, 0, 255).astype(np.uint8)  # a transparent band
        picture.putalpha(Image.fromarray(alpha, "L"))
        return picture
    return picture.convert(mode)


def _run_of(source: Path) -> RunDirectory | None:
    """The run folder itself, or the run holding a checkpoint folder (run/checkpoints/best)."""
    if (source / META_FILE).exists():
        source = source.parent.parent
    run = RunDirectory(source)
    return run if run.config_path.is_file() else None


def _from_predictions(run: RunDirectory) -> list[tuple[str, Path]]:
    """The validation pictures of the run's last epoch, from predictions.csv: no folder scan."""
    try:
        rows = run.read_predictions()
    except (OSError, csv.Error, UnicodeDecodeError):
        return []
    pictures = [(row.get("true_class") or "", Path(row.get("path") or "")) for row in rows]
    return [(label, path) for label, path in pictures if path.name and path.is_file()]


def _from_split(run: RunDirectory) -> list[tuple[str, Path]]:
    """The validation pictures the run was given (a run stopped early has no predictions.csv)."""
    try:
        records = validation_records(run)
    except (DatasetError, OSError, ValueError) as error:  # ConfigError is a ValueError
        LOGGER.info("no validation pictures for the parity check of %s: %s", run.path, error)
        return []
    return [(record.class_name or "", Path(record.path)) for record in records]


def _spread_over_classes(labelled: Iterable[tuple[str, Path]], limit: int) -> list[Path]:
    by_class: dict[str, list[Path]] = {}
    for label, path in labelled:
        by_class.setdefault(label, []).append(path)
    chosen: list[Path] = []
    while len(chosen) < limit and any(by_class.values()):
        for paths in by_class.values():
            if paths and len(chosen) < limit:
                chosen.append(paths.pop(0))
    return chosen
