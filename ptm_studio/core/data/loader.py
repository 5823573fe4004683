"""The one safe way to turn an image file into an RGB picture: training, preview, prediction.

Every rule lives here so a picture looks the same everywhere: EXIF orientation is applied,
transparent pixels are laid onto ``BACKGROUND_COLOUR``, 16- and 32-bit pixels are scaled (not
clipped) to 8 bits, only the first frame of an animation is used, and anything suspicious (empty,
truncated, disguised, oversized) raises ``ImageLoadError`` with a reason a person can act on.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ptm_studio.core.file_reading import (
    MAX_PICTURE_FILE_BYTES,
    FileTooLarge,
    NotARegularFile,
    open_for_reading,
)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)

# Pillow format names PTM Studio reads. Anything else (EPS runs Ghostscript, PSD, ICO…) is never
# opened, even when it hides behind a .png name. MPO (phone photos carrying a depth map or a
# second view) is what the JPEG opener returns for those files; it is not registered under its
# own name, so it is accepted after opening rather than passed to Image.open.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF", "MPO")
_OPENER_FORMATS: tuple[str, ...] = tuple(name for name in ALLOWED_FORMATS if name != "MPO")

# Transparent pixels are composited onto white: scans, drawings and cut-out specimens are usually
# shown on white, and one fixed colour keeps training, preview and prediction identical.
BACKGROUND_COLOUR: tuple[int, int, int] = (255, 255, 255)

_APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"
_DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default, used if someone sets its limit to None
_NOT_AN_IMAGE = "not an image (or a format PTM Studio does not read)"
_CORRUPT = "the file is truncated or corrupt"
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
# Pictures are converted to RGB at most this large; a phone's 4032 × 3024 photo is kept whole.
WORKING_MAX_SIDE = 4096
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I", "F", "CMYK"})


class ImageLoadError(Exception):
    """An image file that cannot be used; ``reason`` says why in plain language."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def refuse_bomb_warnings() -> None:
    """Make Pillow's DecompressionBombWarning an exception, which load_image turns into a refusal.

    Pillow only *warns* between its pixel limit and twice that limit; PTM Studio refuses that
    band too. The filter is installed once, when this module is imported: a process-wide filter
    is thread-safe, whereas warnings.catch_warnings() around every open is not (scans and training
    run in threads). Should something remove the filter, _open's own size check still refuses.
    """
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


refuse_bomb_warnings()


def has_image_extension(path: str | Path) -> bool:
    """True for the suffixes PTM Studio reads, in any letter case (.JPG, .JpEg)."""
    # os.path rather than pathlib: the scan calls this for every file of folders with 100k files.
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def load_image(path: str | Path, *, max_side: int | None = None) -> Image.Image:
    """Read one image file as an 8-bit RGB picture.

    Args:
        path: the file.
        max_side: when given, the result fits inside ``max_side`` × ``max_side`` (aspect kept,
            never enlarged); large JPEGs are then decoded at a reduced scale so memory stays small.

    Raises:
        ImageLoadError: the file is missing, empty, not an allowed format, truncated, too large.
    """
    image, _ = _load(Path(path), max_side)
    return image


def load_for_model(path: str | Path, decode_side: int) -> Image.Image:
    """Read one image file for a network (training, validation, prediction: the same pixels).

    A JPEG larger than ``decode_side`` (see ``decode_side_for``) is decoded at the smallest of
    its reduced scales (1/2–1/8) that still covers ``decode_side`` × ``decode_side``; nothing
    else is resized here: the network's transform resizes once, from these pixels. (Shrinking
    to fit first as well cost more than decoding: 1.7 ms for a 400 × 300 photo, 0.6 ms.)

    Raises:
        ImageLoadError: as load_image.
    """
    image, _ = _load(Path(path), decode_side, fit=False)
    return image


def decode_side_for(image_size: int) -> int:
    """The side a large picture is decoded at for a model that sees ``image_size`` pixels.

    A 12-megapixel photo shrunk to 224 px loses nothing by being decoded at 896 px first, even
    after a random crop of a tenth of it; JPEGs then decode at 1/2–1/8 scale, several times
    faster and in a fraction of the memory. Training, validation and prediction all use this,
    so they see the same pixels.
    """
    return 4 * image_size


def check_image(path: str | Path, *, max_side: int = 256) -> bool:
    """Decode the file exactly as training will (at reduced size); True if it holds several frames.

    Raises ``ImageLoadError`` when the file is unusable. Used by the folder scan.
    """
    _, multi_frame = _load(Path(path), max_side, fit=False)  # decoded is checked: no resize
    return multi_frame


def is_multi_frame(path: str | Path) -> bool:
    """True for an animated GIF/WebP/PNG or a multi-page TIFF (only the first frame is used).

    Opens the file without decoding it; raises ``ImageLoadError`` when it is not a usable image.
    """
    path = Path(path)
    try:
        with _open_file(path) as file, _open(path, file) as image:
            return _has_several_frames(image)
    except ImageLoadError:
        raise
    except Exception as error:
        raise ImageLoadError(path, _reason_for(error)) from error


def _load(path: Path, max_side: int | None, *, fit: bool = True) -> tuple[Image.Image, bool]:
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive number of pixels, not {max_side}")
    try:
        with _open_file(path) as file, _open(path, file) as image:
            multi_frame = _has_several_frames(image)
            if max_side is not None:
                image.draft("RGB", fitted_size(image.size, max_side))
            # A full decode here is what rejects truncated files: LOAD_TRUNCATED_IMAGES stays
            # off, so Pillow raises instead of filling the missing part with grey.
            image.load()
            picture = _to_rgb(path, _upright_within_working_size(image))
    except ImageLoadError:
        raise
    except Exception as error:  # each Pillow plugin fails in its own way; _reason_for sorts them
        raise ImageLoadError(path, _reason_for(error)) from error
    if max_side is not None and fit:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return picture, multi_frame


def fitted_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size that fits in max_side × max_side with the aspect kept (what thumbnail makes).

    Asking JPEG's draft mode for exactly this, not for a square, lets a 4:3 photo decode at
    1/4 scale instead of 1/2 when that is still large enough.
    """
    width, height = size
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _open_file(path: Path) -> BinaryIO:
    """The file, opened once (a regular file of a sane size: a pipe named x.jpg would block
    forever), after rejecting what needs no decoder to reject, with the most specific reason."""
    try:
        file = open_for_reading(path, max_bytes=MAX_PICTURE_FILE_BYTES)
    except IsADirectoryError as error:
        raise ImageLoadError(path, "this is a folder, not an image file") from error
    except (NotARegularFile, FileTooLarge) as error:
        raise ImageLoadError(path, str(error.strerror)) from error
    except OSError as error:
        raise ImageLoadError(path, _reason_for(error)) from error
    try:
        head = file.read(4)
        file.seek(0)
    except OSError as error:
        file.close()
        raise ImageLoadError(path, _reason_for(error)) from error
    problem = None
    if path.name.startswith("._") or head == _APPLEDOUBLE_MAGIC:
        problem = "a macOS metadata file (AppleDouble “._” file), not an image"
    elif not head:
        problem = "the file is empty"
    if problem:
        file.close()
        raise ImageLoadError(path, problem)
    return file


def _open(path: Path, file: BinaryIO) -> Image.Image:
    image = Image.open(file, formats=_OPENER_FORMATS)
    if image.format not in ALLOWED_FORMATS:
        image.close()
        raise ImageLoadError(path, _NOT_AN_IMAGE)
    width, height = image.size
    limit = Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS
    if width * height > limit:
        image.close()
        raise ImageLoadError(path, _too_large(f"{width}×{height} pixels"))
    return image


def _too_large(size: str) -> str:
    return f"the image is too large ({size}): possible decompression bomb"


def _reason_for(error: BaseException) -> str:
    """Plain-language reason for an exception raised while opening or decoding."""
    if isinstance(error, FileNotFoundError):
        return "the file no longer exists (it may have been moved or deleted)"
    if isinstance(error, PermissionError):
        return "PTM Studio is not allowed to read the file (permission denied)"
    if isinstance(error, UnidentifiedImageError):
        return _NOT_AN_IMAGE
    if isinstance(error, Image.DecompressionBombError | Image.DecompressionBombWarning):
        found = re.search(r"\((\d+) pixels\)", str(error))
        return _too_large(f"{int(found.group(1)):,} pixels" if found else "too many pixels")
    if isinstance(error, MemoryError):
        return "the image needs more memory than this computer has free"
    if isinstance(error, OSError | SyntaxError | ValueError | EOFError | struct.error):
        return _CORRUPT
    if isinstance(error, IndexError | TypeError | KeyError | zlib.error):
        return _CORRUPT
    return f"the file could not be read ({type(error).__name__})"


def _has_several_frames(image: Image.Image) -> bool:
    # An MPO's extra frames are a depth map or a second view, not pages: its first frame is the
    # photo itself, so phone pictures are not flagged.
    if image.format == "MPO":
        return False
    several = bool(getattr(image, "is_animated", False))
    if several:
        image.seek(0)
    return several


_TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # EXIF orientation → the turn that makes the picture upright


def _upright_within_working_size(image: Image.Image) -> Image.Image:
    """The picture turned upright as its EXIF tag says (a broken EXIF block is ignored, not
    fatal) and no larger than WORKING_MAX_SIDE. The turn is read from the original, then made
    on the reduced picture, so a huge picture is never copied at full size. Always a new image:
    the opened one is unusable once its file is closed."""
    try:
        turn = _TURNS.get(int(image.getexif().get(0x0112, 1)))
    except (SyntaxError, ValueError, TypeError, KeyError, struct.error):
        turn = None
    working = _within_working_size(image)
    if turn is not None:
        return working.transpose(turn)
    return working if working is not image else image.copy()


def _within_working_size(image: Image.Image) -> Image.Image:
    """A picture larger than WORKING_MAX_SIDE is reduced (box averages) before its colours are
    converted: turning a 9400 × 9400 float TIFF or transparent PNG of a few hundred KB into RGB
    at full size took 3–4.5 GB; no network looks at more than a fraction of these pixels."""
    longest = max(image.size)
    if longest <= WORKING_MAX_SIDE:
        return image
    if image.mode not in _REDUCIBLE_MODES:
        image = image.convert("I" if image.mode.startswith("I;16") else "RGBA")
    return image.reduce(math.ceil(longest / WORKING_MAX_SIDE))


def _to_rgb(path: Path, image: Image.Image) -> Image.Image:
    if image.mode in _HIGH_DEPTH_MODES:
        grey = Image.fromarray(scale_to_uint8(np.asarray(image)))
        return grey.convert("RGB")
    if image.mode == "RGB" and not image.has_transparency_data:
        return image
    try:
        if image.has_transparency_data:
            return _composite_on_background(image.convert("RGBA"))
        return image.convert("RGB")
    except ValueError as error:
        raise ImageLoadError(
            path, f"uses a colour mode PTM Studio cannot convert ({image.mode})"
        ) from error


def _composite_on_background(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, (*BACKGROUND_COLOUR, 255))
    return Image.alpha_composite(background, image).convert("RGB")


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Scale one channel of 16-bit, 32-bit integer or float pixels to 0–255.

    The rule depends only on the value range, so a file always gives the same picture:
    - unsigned 16-bit: keep the top 8 bits (30000 → 117), as image viewers do;
    - other integers or floats: values within 0–255 are kept; within 0–65535 they are treated
      as 16-bit (top 8 bits); floats within 0–1 are multiplied by 255;
    - anything else (negative values, larger numbers) is stretched from its minimum to its maximum.
    Not-a-number and infinite float pixels become 0.
    """
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return (values.astype(np.uint16) >> 8).astype(np.uint8)
    numbers = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(numbers.min()), float(numbers.max())) if numbers.size else (0.0, 0.0)
    if values.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        scaled = numbers * 255.0
    elif low >= 0.0 and high <= 255.0:
        scaled = numbers
    elif low >= 0.0 and high <= 65535.0:
        scaled = np.floor(numbers / 256.0)
    else:
        scaled = (numbers - low) * (255.0 / (high - low)) if high > low else numbers * 0.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
