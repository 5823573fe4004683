"""Read weight files without ever running code from them (faults M1–M9, docs/fault-catalogue.md).

``.safetensors`` files hold only tensors. Pickle-based files (``.pt``, ``.pth``, ``.bin``,
``.ckpt``) are read only with ``torch.load(..., weights_only=True)``, never with a fallback to
unsafe loading; programs (TorchScript, ``.pt2``) and whole pickled models are refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import safetensors.torch
import torch

from ptm_studio.core.file_reading import (
    MAX_WEIGHTS_FILE_BYTES,
    FileTooLarge,
    NotARegularFile,
    check_readable_file,
    describe_size,
    open_for_reading,
)
from ptm_studio.core.models.errors import WeightsError
from ptm_studio.core.models.matching import LoadReport, apply_state_dict
from ptm_studio.core.models.state_dicts import clean_state_dict

__all__ = [
    "LoadReport",
    "WeightsError",
    "apply_state_dict",
    "disable_unsafe_load_override",
    "load_state_dict_file",
]

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
EXPORT_ADVICE = (
    "In the program that made it, save only the weights: "
    "torch.save(model.state_dict(), 'weights.pt') or, better, export a .safetensors file "
    "(safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'))."
)
CORRUPT_ADVICE = "Save or download the file again, or choose an earlier checkpoint."
_SNIFF_BYTES = 64
# The safetensors library refuses headers above 100 MB; checking first means a hostile
# length is refused before anything reads or allocates that much.
_MAX_SAFETENSORS_HEADER_BYTES = 100 * 1024 * 1024
_HEADER_BYTES_WORTH_COUNTING = 1024 * 1024  # a header this large may list countless tensors
_MAX_TENSORS = 100_000
_NOT_A_MODEL_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"version https://git-lfs", "a Git LFS pointer (a small stand-in for the real file)"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"<!DOCTYPE", "a web page"),
    (b"<html", "a web page"),
)
_ZIP_MAGIC = b"PK\x03\x04"
_MAX_REASON_CHARACTERS = 160
_PICKLE_PROTOCOL_OPCODE = b"\x80"
# What an archive may unpack to, against its size: torch.save's entries are stored, not
# compressed, so real files stay near 1x (the allowance covers small files' fixed parts).
_MAX_UNPACKED_RATIO = 1.5
_UNPACKED_ALLOWANCE = 1024 * 1024


def disable_unsafe_load_override() -> None:
    """Remove ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` from the environment.

    Read in torch 2.14's ``torch/serialization.py`` (``load``): the variable forces
    ``weights_only=False`` only when the caller did not pass ``weights_only``; an explicit
    ``weights_only=True``, which every load here passes, wins. So the variable cannot make our
    loads unsafe in this torch. It is removed anyway because (1) if
    ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` is set too, torch raises "Only one of … should be set" and
    every load would fail, and (2) it guards against a torch release that lets the variable
    override explicit arguments.
    """
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)


disable_unsafe_load_override()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file into ``{name: tensor}`` on the CPU, or raise WeightsError.

    Wrappers (``{"state_dict": …}``, ``{"model": …}``, ``{"model_state_dict": …}``) and the
    ``module.`` / ``_orig_mod.`` prefixes are removed, non-tensor entries dropped, and tensors
    containing NaN or infinity refused.
    """
    disable_unsafe_load_override()
    file_path = Path(path)
    head, size = _read_start(file_path)
    _refuse_non_model_content(file_path, head)
    if file_path.suffix.lower() == ".pt2":
        raise _program_refusal(file_path, "a .pt2 file (an exported program)")
    if _looks_like_safetensors(file_path, head, size):
        raw: Any = _load_safetensors(file_path, head, size)
    elif head.startswith((_ZIP_MAGIC, _PICKLE_PROTOCOL_OPCODE)) or _has_torch_suffix(file_path):
        raw = _load_pickled_weights(file_path)
    else:
        raise WeightsError(
            f"'{file_path.name}' is not a model file PTM Studio can read.",
            advice="Choose a .safetensors, .pt, .pth, .bin or .ckpt file.",
            path=file_path,
        )
    return clean_state_dict(raw, source=f"'{file_path.name}'")


def _read_start(file_path: Path) -> tuple[bytes, int]:
    """The first bytes and the size; missing, folder, unreadable or empty → WeightsError."""
    try:
        with open_for_reading(file_path, max_bytes=MAX_WEIGHTS_FILE_BYTES) as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise WeightsError(
            f"The weights file '{file_path}' does not exist.",
            advice="Check the path or choose the file again.",
            path=file_path,
        ) from None
    except IsADirectoryError:
        raise WeightsError(
            f"'{file_path}' is a folder, not a weights file.",
            advice="Choose the .safetensors or .pt file inside it.",
            path=file_path,
        ) from None
    except (NotARegularFile, FileTooLarge) as error:
        raise WeightsError(
            f"'{file_path}' cannot be used as a weights file: {error.strerror}.",
            advice="Choose the .safetensors or .pt file that holds the weights.",
            path=file_path,
        ) from None
    except OSError as error:
        raise WeightsError(
            f"The weights file '{file_path}' could not be read ({error.strerror or error}).",
            advice="Check that the file is not open elsewhere and that you may read it.",
            path=file_path,
        ) from error
    if size == 0:
        raise _corrupt(file_path, "it is empty")
    return head, size


def _refuse_non_model_content(file_path: Path, head: bytes) -> None:
    for signature, what in _NOT_A_MODEL_SIGNATURES:
        # Web pages may start with blank lines; binary signatures must match exactly.
        start = head.lstrip() if signature.startswith(b"<") else head
        if start[: len(signature)].lower() == signature.lower():
            advice = "Choose the .safetensors or .pt file that holds the weights."
            if b"git-lfs" in signature:
                advice = "Fetch the real file (git lfs pull) or download it again."
            raise WeightsError(
                f"'{file_path.name}' is not a model file: it is {what}.",
                advice=advice,
                path=file_path,
            )


def _looks_like_safetensors(file_path: Path, head: bytes, size: int) -> bool:
    # A safetensors file starts with an 8-byte little-endian header length, then a JSON
    # object. The length's first byte can be anything (0x80 looks like a pickle), so the
    # content test comes first and checks that the length fits inside the file.
    header_length = int.from_bytes(head[:8], "little")
    if len(head) > 8 and head[8:9] == b"{" and header_length <= size - 8:
        return True
    if head.startswith((_ZIP_MAGIC, _PICKLE_PROTOCOL_OPCODE)):
        return False
    return file_path.suffix.lower() == SAFETENSORS_SUFFIX


def _has_torch_suffix(file_path: Path) -> bool:
    return file_path.suffix.lower() in TORCH_SUFFIXES


def _load_safetensors(file_path: Path, head: bytes, size: int) -> dict[str, torch.Tensor]:
    if size < 8:
        raise _corrupt(file_path, f"not a valid safetensors file: it has only {size} bytes")
    header_length = int.from_bytes(head[:8], "little")
    if header_length > min(size - 8, _MAX_SAFETENSORS_HEADER_BYTES):
        raise _corrupt(
            file_path,
            f"not a valid safetensors file: its header claims {header_length} bytes "
            f"but the file has {size}",
        )
    if header_length > _HEADER_BYTES_WORTH_COUNTING:
        _refuse_countless_tensors(file_path, header_length)
    try:
        # The Rust reader takes a path; it opens unicode, spaced and long paths natively.
        check_readable_file(file_path, max_bytes=MAX_WEIGHTS_FILE_BYTES)
        return safetensors.torch.load_file(os.fspath(file_path), device="cpu")
    except Exception as error:  # SafetensorError, OSError, and whatever a damaged file provokes
        raise _corrupt(file_path, f"not a valid safetensors file: {error}") from error


def _refuse_countless_tensors(file_path: Path, header_length: int) -> None:
    """A header listing a million tensors would take a minute and gigabytes to load before it
    is refused as not fitting; no network has nearly that many (ViT-L: about 300)."""
    with open_for_reading(file_path, max_bytes=MAX_WEIGHTS_FILE_BYTES) as handle:
        handle.seek(8)
        count = handle.read(header_length).count(b'"data_offsets"')
    if count > _MAX_TENSORS:
        raise WeightsError(
            f"'{file_path.name}' lists {count:,} tensors; no network PTM Studio builds has more "
            f"than a few thousand, so these weights cannot be for it.",
            advice="Choose the weights file made for the network you picked.",
            path=file_path,
        )


def _load_pickled_weights(file_path: Path) -> Any:
    with open_for_reading(file_path, max_bytes=MAX_WEIGHTS_FILE_BYTES) as handle:
        is_zip = zipfile.is_zipfile(handle)
        # is_zipfile leaves the position wherever its search for the zip directory ended.
        handle.seek(0)
        if is_zip:
            _refuse_programs(file_path, handle)
            handle.seek(0)
            _refuse_expanding_archives(file_path, handle)
            handle.seek(0)
        try:
            return torch.load(handle, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise _unpickling_refusal(file_path, str(error)) from error
        except EOFError as error:
            raise _corrupt(file_path, "it ends too early") from error
        except Exception as error:  # a damaged archive raises RuntimeError, EOFError, …
            raise _corrupt(file_path, _first_line(error)) from error


def _refuse_programs(file_path: Path, handle: BinaryIO) -> None:
    """Refuse TorchScript and torch.export archives, which are programs, not weights."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise _corrupt(file_path, _first_line(error)) from error
    if any(name.endswith("constants.pkl") or "/code/" in name for name in names):
        raise _program_refusal(file_path, "a TorchScript program")
    if any(name.endswith("archive_format") for name in names):
        raise _program_refusal(file_path, "an exported program (torch.export / .pt2)")


def _refuse_expanding_archives(file_path: Path, handle: BinaryIO) -> None:
    """Refuse an archive that unpacks to far more than its size, before anything is unpacked.

    torch.save stores its archive entries uncompressed, so a weights file unpacks to about its own
    size; a compressed one was made by something else and may unpack to gigabytes (a 3 MB file
    to 7 GB of memory). The sizes come from the archive's directory, which costs nothing to read.
    """
    try:
        with zipfile.ZipFile(handle) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise _corrupt(file_path, _first_line(error)) from error
    size = os.fstat(handle.fileno()).st_size
    if unpacked > _MAX_UNPACKED_RATIO * size + _UNPACKED_ALLOWANCE:
        raise WeightsError(
            f"'{file_path.name}' is a compressed archive that would unpack to "
            f"{describe_size(unpacked)} from {describe_size(size)}; files saved by PyTorch are "
            "not compressed, so PTM Studio does not unpack it.",
            advice=EXPORT_ADVICE,
            path=file_path,
        )


def _program_refusal(file_path: Path, what: str) -> WeightsError:
    return WeightsError(
        f"'{file_path.name}' is {what}, not plain weights. PTM Studio does not run programs "
        "from files.",
        advice=EXPORT_ADVICE,
        path=file_path,
    )


def _unpickling_refusal(file_path: Path, torch_message: str) -> WeightsError:
    # torch's weights-only unpickler names what it refused ("GLOBAL io.open …"); anything
    # else from the unpickler means the bytes are damaged.
    refusal_markers = ("GLOBAL", "Unsupported", "is blocked")
    if not any(marker in torch_message for marker in refusal_markers):
        return _corrupt(file_path, "its pickled data cannot be read")
    return WeightsError(
        f"'{file_path.name}' holds a whole pickled model or other Python objects, not just "
        "weights. Opening it could run code hidden inside, so PTM Studio refuses it.",
        advice=EXPORT_ADVICE,
        path=file_path,
    )


def _corrupt(file_path: Path, reason: str) -> WeightsError:
    return WeightsError(
        f"The weights file '{file_path.name}' is incomplete or corrupt ({reason}).",
        advice=CORRUPT_ADVICE,
        path=file_path,
    )


def _first_line(error: BaseException) -> str:
    """The first sentence of an error, short enough for a dialog (torch's run on and on)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    sentence = text.splitlines()[0].split(". ")[0].rstrip(".")
    return (
        sentence
        if len(sentence) <= _MAX_REASON_CHARACTERS
        else sentence[:_MAX_REASON_CHARACTERS] + "…"
    )
