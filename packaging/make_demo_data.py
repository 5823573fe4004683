"""Builds resources/demo_data: a small five-class flower set (CC BY 2.0) with exactly its credits.

Usage: python packaging/make_demo_data.py [--source FOLDER] [--destination FOLDER]

The source is the 128-pixel "flowers" set (data/train/<class>/, data/val/<class>/ and an
ATTRIBUTION.txt with one credit line per photo). The first 40 training and 10 validation photos
of each class, in sorted order, are shrunk to 96×96 and re-saved as JPEG quality 85; the
attribution file keeps the original header and the credit lines of the shipped photos only.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = Path("/work/shared/data/flowers")
DEFAULT_DESTINATION = REPOSITORY / "resources" / "demo_data"
PER_SPLIT = {"train": 40, "val": 10}
IMAGE_SIDE = 96
JPEG_QUALITY = 85

LICENSE_NOTE = """\
The demo pictures are photos from TensorFlow's flower_photos set, licensed under the Creative
Commons Attribution 2.0 Generic licence (CC BY 2.0):
https://creativecommons.org/licenses/by/2.0/

Changes: each photo was squashed to a square and shrunk to 96×96 pixels, then re-saved as JPEG.
The author and source of every photo are listed in ATTRIBUTION.txt.
"""


def is_credit_line(line: str) -> bool:
    """Credit lines start with '<class>/<file>.jpg '; everything else is the header."""
    first_word = line.split(" ", 1)[0]
    return "/" in first_word and first_word.lower().endswith((".jpg", ".jpeg", ".png"))


def chosen_photos(source: Path) -> list[tuple[str, str, Path]]:
    """(split, class, file) for the photos to ship, in sorted order."""
    chosen = []
    for split, count in PER_SPLIT.items():
        for class_folder in sorted(path for path in (source / "data" / split).iterdir()):
            if class_folder.is_dir():
                photos = sorted(class_folder.glob("*.jpg"))[:count]
                chosen += [(split, class_folder.name, photo) for photo in photos]
    return chosen


def write_photo(photo: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as image:
        small = image.convert("RGB").resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.LANCZOS)
    small.save(target, "JPEG", quality=JPEG_QUALITY, optimize=True)


def attribution_text(source: Path, shipped_keys: set[str]) -> str:
    lines = (source / "ATTRIBUTION.txt").read_text(encoding="utf-8").splitlines()
    header = [line for line in lines if line.strip() and not is_credit_line(line)]
    credits = {line.split(" ", 1)[0]: line for line in lines if is_credit_line(line)}
    missing = sorted(shipped_keys - credits.keys())
    if missing:
        raise SystemExit(f"no credit line for {missing[:5]}: refusing to ship them")
    return "\n".join([*header, *(credits[key] for key in sorted(shipped_keys))]) + "\n"


def build(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)  # a clean rebuild, so no stale photo ships without credit
    shipped = set()
    for split, class_name, photo in chosen_photos(source):
        write_photo(photo, destination / split / class_name / photo.name)
        shipped.add(f"{class_name}/{photo.name}")
    text = attribution_text(source, shipped)
    (destination / "ATTRIBUTION.txt").write_text(text, encoding="utf-8")
    (destination / "LICENSE.txt").write_text(LICENSE_NOTE, encoding="utf-8")
    total = sum(path.stat().st_size for path in destination.rglob("*") if path.is_file())
    print(f"{len(shipped)} photos written to {destination} ({total / 1e6:.2f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--destination", type=Path, default=DEFAULT_DESTINATION)
    arguments = parser.parse_args()
    build(arguments.source, arguments.destination)


if __name__ == "__main__":
    main()
