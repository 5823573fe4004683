"""load_image: the bad inputs I1–I8 and I13 of docs/fault-catalogue.md, one safe loader for every
path."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from ptm_studio.core.data import loader
from ptm_studio.core.data.loader import (
    BACKGROUND_COLOUR,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    check_image,
    has_image_extension,
    is_multi_frame,
    load_for_model,
    load_image,
    scale_to_uint8,
)


def pixel(image: Image.Image, x: int = 0, y: int = 0) -> tuple[int, ...]:
    value = image.getpixel((x, y))
    assert isinstance(value, tuple)
    return value


def assert_rgb(image: Image.Image, size: tuple[int, int]) -> None:
    assert image.mode == "RGB"
    assert image.size == size


# --- I13: names and extensions -----------------------------------------------------------------


def test_extensions_match_in_any_letter_case() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"} == IMAGE_EXTENSIONS
    for name in ("a.JPG", "b.JpEg", "c.Png", "d.TIFF", "e.webp"):
        assert has_image_extension(name)
    for name in ("notes.txt", "scan.czi", "archive.jpg.zip", "jpg"):
        assert not has_image_extension(name)


@pytest.mark.parametrize(
    "name", ["Ürün çiçek 花.JPG", "photo with spaces.JpEg", "ümlaut/deep folder/x.PNG"]
)
def test_unicode_spaces_and_mixed_case_names_load(tmp_path: Path, make_image, name: str) -> None:
    path = make_image(tmp_path / name, size=(5, 3), colour=(10, 200, 30))
    assert_rgb(load_image(path), (5, 3))
    assert_rgb(load_image(str(path)), (5, 3))


# --- I1: files that are not images -------------------------------------------------------------


def test_zero_byte_file_is_rejected_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert caught.value.path == path
    assert caught.value.reason == "the file is empty"
    assert str(caught.value) == f"{path}: the file is empty"


def test_text_saved_as_jpg_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("Sample 12, collected on the 3rd of May.\n", encoding="utf-8")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)


def test_appledouble_file_is_rejected_even_with_image_bytes(tmp_path: Path, make_image) -> None:
    resource_fork = tmp_path / "._flower.jpg"
    resource_fork.write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)
    disguised = make_image(tmp_path / "._real.png", colour=(1, 2, 3))
    for path in (resource_fork, disguised):
        with pytest.raises(ImageLoadError, match="macOS metadata"):
            load_image(path)


def test_missing_file_and_folder_are_rejected_in_plain_words(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no longer exists"):
        load_image(tmp_path / "gone.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageLoadError, match="a folder"):
        load_image(tmp_path / "folder.png")


# --- I2: truncated files ----------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_truncated_file_is_rejected_not_grey_filled(
    tmp_path: Path, make_image, image_format: str
) -> None:
    whole = make_image(tmp_path / f"whole.{image_format.lower()}", size=(64, 64))
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{image_format.lower()}"
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert load_image(whole).size == (64, 64)
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(cut)
    # Also with reduced-size decoding (what the scan uses): the whole stream is still read.
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        check_image(cut, max_side=16)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- I3: decompression bombs and large photos ---------------------------------------------------


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose IHDR is rewritten (with a fixed CRC) to claim width × height."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (0, 0, 0)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_tiny_png_claiming_30000_squared_is_rejected_without_warnings(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(30000, 30000))
    assert path.stat().st_size < 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader.refuse_bomb_warnings()
        with pytest.raises(ImageLoadError, match=r"too large .*decompression bomb"):
            load_image(path)
    assert caught == []


def test_image_between_pillow_warning_and_error_limits_is_refused_without_a_warning(
    tmp_path: Path, make_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_image(tmp_path / "big.png", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: Pillow only warns
    # As in the app (no pytest filter in front): the loader's own filter turns the warning
    # into a refusal, and nothing is printed.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader.refuse_bomb_warnings()
        with pytest.raises(ImageLoadError, match=r"too large \(1,600 pixels\)"):
            load_image(path)
    assert caught == []
    # Even if that filter were gone, the loader's own size check refuses the image.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        with pytest.raises(ImageLoadError, match=r"too large \(40×40 pixels\)"):
            load_image(path)


def test_large_jpeg_is_decoded_at_reduced_scale_when_max_side_is_given(
    tmp_path: Path, make_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_image(tmp_path / "photo.jpg", size=(2400, 1600), colour=(30, 120, 200))
    decoded_sizes = []
    original_draft = JpegImagePlugin.JpegImageFile.draft

    def spying_draft(self, mode, size):  # type: ignore[no-untyped-def]
        result = original_draft(self, mode, size)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spying_draft)
    image = load_image(path, max_side=200)
    assert_rgb(image, (200, 133))
    assert decoded_sizes == [(300, 200)]  # libjpeg decoded an eighth: 2400×1600 never in memory
    red, green, blue = pixel(image, 100, 66)
    assert abs(red - 30) < 8 and abs(green - 120) < 8 and abs(blue - 200) < 8


def test_pictures_for_a_model_are_decoded_at_reduced_scale_and_not_resized_again(
    tmp_path: Path, make_image
) -> None:
    """The network's transform resizes once; shrinking to fit first as well cost more than
    decoding (a Lanczos pass over the whole picture)."""
    photo = make_image(tmp_path / "photo.jpg", size=(2400, 1600), colour=(30, 120, 200))
    assert load_for_model(photo, 200).size == (300, 200)  # an eighth: covers 200 × 200
    assert load_for_model(photo, 700).size == (1200, 800)  # a half; a quarter is too small
    modest = make_image(tmp_path / "modest.png", size=(400, 300))
    assert load_for_model(modest, 256).size == (400, 300)
    assert np.array_equal(np.asarray(load_for_model(modest, 256)), np.asarray(load_image(modest)))


def test_max_side_never_enlarges_and_must_be_positive(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "small.png", size=(10, 6))
    assert load_image(path, max_side=100).size == (10, 6)
    assert load_image(path, max_side=5).size == (5, 3)
    with pytest.raises(ValueError, match="max_side"):
        load_image(path, max_side=0)


# --- I4: pixel modes ----------------------------------------------------------------------------


def test_cmyk_becomes_rgb(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "cmyk.tif", mode="CMYK", colour=(0, 255, 255, 0))
    image = load_image(path)
    assert_rgb(image, (8, 8))
    assert pixel(image) == (255, 0, 0)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "cmyk.jpg", mode="CMYK", colour=(0, 255, 255, 0), size=(16, 16))
    red, green, blue = pixel(load_image(path), 8, 8)
    assert red > 240 and green < 15 and blue < 15


def test_greyscale_and_one_bit_become_three_equal_channels(tmp_path: Path, make_image) -> None:
    grey = make_image(tmp_path / "grey.png", mode="L", colour=100)
    assert pixel(load_image(grey)) == (100, 100, 100)
    bits = Image.new("1", (4, 1))
    bits.putpixel((1, 0), 1)
    bits.save(tmp_path / "bits.png")
    one_bit = load_image(tmp_path / "bits.png")
    assert [pixel(one_bit, x) for x in range(2)] == [(0, 0, 0), (255, 255, 255)]


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    Image.fromarray(np.full((3, 3), 30000, dtype=np.uint16)).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode == "I;16"
    assert pixel(load_image(tmp_path / "deep.png")) == (117, 117, 117)


def test_32_bit_integer_and_float_images_are_scaled(tmp_path: Path) -> None:
    Image.fromarray(np.full((2, 2), 30000, dtype=np.int32)).save(tmp_path / "int.tif")
    assert pixel(load_image(tmp_path / "int.tif")) == (117, 117, 117)
    stretched = np.array([[-1000, 0], [500, 1000]], dtype=np.int32)
    Image.fromarray(stretched).save(tmp_path / "signed.tif")
    signed = load_image(tmp_path / "signed.tif")
    assert [pixel(signed, 0, 0)[0], pixel(signed, 1, 1)[0]] == [0, 255]
    assert pixel(signed, 1, 0)[0] == 128
    Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32)).save(tmp_path / "float.tif")
    assert pixel(load_image(tmp_path / "float.tif")) == (128, 128, 128)


def test_scaling_rules_are_documented_ranges() -> None:
    assert scale_to_uint8(np.array([30000, 65535], dtype=np.uint16)).tolist() == [117, 255]
    assert scale_to_uint8(np.array([0, 200], dtype=np.int32)).tolist() == [0, 200]
    assert scale_to_uint8(np.array([0.0, 1.0], dtype=np.float32)).tolist() == [0, 255]
    assert scale_to_uint8(np.array([2.0, 300.0, 70000.0])).tolist() == [0, 1, 255]
    assert scale_to_uint8(np.array([np.nan, 0.5], dtype=np.float32)).tolist() == [0, 128]
    assert scale_to_uint8(np.array([-7, -7], dtype=np.int32)).tolist() == [0, 0]


# --- I5: transparency ---------------------------------------------------------------------------


def test_transparent_pixels_are_composited_onto_white(tmp_path: Path) -> None:
    assert BACKGROUND_COLOUR == (255, 255, 255)
    rgba = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 128))
    rgba.save(tmp_path / "rgba.png")
    image = load_image(tmp_path / "rgba.png")
    assert pixel(image, 0) == (255, 255, 255)
    assert pixel(image, 1) == (255, 127, 127)


def test_grey_with_alpha_is_composited_onto_white(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "la.png", mode="LA", colour=(0, 0))
    assert pixel(load_image(path)) == (255, 255, 255)


def test_palette_with_transparent_index_is_composited_onto_white(tmp_path: Path) -> None:
    palette_image = Image.new("P", (2, 1), 0)
    palette_image.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    palette_image.putpixel((1, 0), 1)
    palette_image.save(tmp_path / "palette.png", transparency=0)
    image = load_image(tmp_path / "palette.png")
    assert [pixel(image, 0), pixel(image, 1)] == [(255, 255, 255), (0, 255, 0)]


# --- I6: EXIF orientation -----------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    upright = Image.new("RGB", (2, 4), (255, 0, 0))
    upright.paste((0, 0, 255), (0, 2, 2, 4))  # top red, bottom blue
    exif = upright.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    upright.save(tmp_path / "rotated.png", exif=exif)
    image = load_image(tmp_path / "rotated.png")
    assert image.size == (4, 2)
    assert pixel(image, 0, 0) == (0, 0, 255)  # the bottom swung round to the left
    assert pixel(image, 3, 1) == (255, 0, 0)


def test_broken_exif_block_is_ignored_not_fatal(
    tmp_path: Path, make_image, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_image(tmp_path / "x.png", size=(3, 2))

    def broken_exif(image):  # type: ignore[no-untyped-def]
        raise SyntaxError("not a TIFF file")

    monkeypatch.setattr(loader.Image.Image, "getexif", broken_exif)
    assert_rgb(load_image(path), (3, 2))


# --- I7: several frames -------------------------------------------------------------------------


def test_animated_gif_gives_its_first_frame_and_is_flagged(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert pixel(load_image(tmp_path / "anim.gif")) == (255, 0, 0)
    assert is_multi_frame(tmp_path / "anim.gif")
    assert check_image(tmp_path / "anim.gif")


def test_multi_page_tiff_gives_its_first_page_and_is_flagged(tmp_path: Path, make_image) -> None:
    pages = [Image.new("L", (3, 3), 10), Image.new("L", (3, 3), 240)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    assert pixel(load_image(tmp_path / "pages.tif")) == (10, 10, 10)
    assert is_multi_frame(tmp_path / "pages.tif")
    single = make_image(tmp_path / "single.png")
    assert not is_multi_frame(single)
    assert not check_image(single)


# --- I8: the format allowlist -------------------------------------------------------------------


def test_tiff_named_png_loads_because_tiff_is_allowed(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "scan.png", colour=(9, 8, 7), image_format="TIFF")
    assert pixel(load_image(path)) == (9, 8, 7)


EPS_TEXT = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"
PSD_HEADER = (
    b"8BPS\x00\x01" + b"\x00" * 6 + b"\x00\x03" + struct.pack(">II", 4, 4) + b"\x00\x08\x00\x03"
)


@pytest.mark.parametrize("content", [EPS_TEXT, PSD_HEADER], ids=["eps", "psd"])
def test_eps_and_psd_disguised_as_png_are_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    Image.init()
    opened = []

    def forbidden_opener(*arguments):  # type: ignore[no-untyped-def]
        opened.append(arguments)
        raise AssertionError("a format outside the allowlist was tried")

    for name in ("EPS", "PSD"):
        monkeypatch.setitem(Image.OPEN, name, (forbidden_opener, lambda prefix: True))
    path = tmp_path / "figure.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(path)
    assert opened == []
