"""How much decoding pictures at most 4× the model's size saves on camera-sized photos.

Makes a few 12-megapixel JPEGs (smooth noise, like a photo's spectrum roughly), then times
``load_image`` + the validation transform with and without ``max_side=decode_side_for(size)``,
alternating in one process. Prints seconds per picture, the ratio, and the peak extra memory
of decoding one picture (Pillow's C buffers are not seen by tracemalloc; this is
width × height × 3 of what the decoder produced).

    python -m benchmarks.decode_size [--image-size 224] [--pictures 6] [--repeats 3] [--quick]
        [--json]

Target: the reduced decode at most half the time of the full one (ratio ≤ 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.table import Row, add_table_flags, report
from ptm_studio.core.data import build_transform, decode_side_for, load_image
from ptm_studio.core.data.loader import fitted_size

TARGET_RATIO = 0.5


def make_photos(folder: Path, count: int) -> list[Path]:
    generator = np.random.default_rng(0)
    paths = []
    for index in range(count):
        small = generator.integers(0, 255, size=(300, 400, 3), dtype=np.uint8)
        photo = Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC)
        photo = photo.filter(ImageFilter.GaussianBlur(2))
        path = folder / f"photo_{index}.jpg"
        photo.save(path, quality=90)
        paths.append(path)
    return paths


def seconds_per_picture(paths: list[Path], image_size: int, max_side: int | None) -> float:
    transform = build_transform(image_size, mean=(0.5,) * 3, std=(0.5,) * 3, train=False)
    started = time.perf_counter()
    for path in paths:
        transform(load_image(path, max_side=max_side))
    return (time.perf_counter() - started) / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--pictures", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.pictures, arguments.repeats = 3, 2
    with tempfile.TemporaryDirectory() as folder:
        paths = make_photos(Path(folder), arguments.pictures)
        side = decode_side_for(arguments.image_size)
        full, reduced = [], []
        for _ in range(arguments.repeats):
            full.append(seconds_per_picture(paths, arguments.image_size, None))
            reduced.append(seconds_per_picture(paths, arguments.image_size, side))
        with Image.open(paths[0]) as image:
            full_pixels = image.size[0] * image.size[1]
            image.draft("RGB", fitted_size(image.size, side))
            draft_pixels = image.size[0] * image.size[1]
    full_s, reduced_s = statistics.median(full), statistics.median(reduced)
    print(f"4000×3000 JPEG → {arguments.image_size} px model (decode side {side} px)")
    print("| decode | ms per picture | ratio |")
    print("|---|---|---|")
    print(f"| full size | {1000 * full_s:.1f} | 1.00 |")
    print(f"| at most {side} px | {1000 * reduced_s:.1f} | {reduced_s / full_s:.2f} |")
    print(
        f"decoded pixels: {3 * full_pixels / 1e6:.0f} MB full, {3 * draft_pixels / 1e6:.1f} MB"
        " with the reduced decode"
    )
    ratio = reduced_s / full_s
    row = Row.ratio_at_most(
        f"decode a 12 MP photo for {arguments.image_size} px",
        f"{1000 * reduced_s:.0f} ms/picture",
        f"{1000 * full_s:.0f} ms/picture",
        ratio,
        TARGET_RATIO,
    )
    report([row], arguments)


if __name__ == "__main__":
    main()
