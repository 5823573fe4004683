"""Finds byte-identical image files cheaply: only files that share their size are hashed."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from ptm_studio.core.file_reading import MAX_PICTURE_FILE_BYTES, open_for_reading

_CHUNK_BYTES = 1 << 20


def find_identical_files(
    sized_paths: Sequence[tuple[Path, int | None]],
    check_cancel: Callable[[], None] = lambda: None,
) -> list[tuple[Path, ...]]:
    """Groups (two or more paths each, sorted) of files with the same bytes.

    A file whose size is unknown or that cannot be read is left out: the scan reports it elsewhere.
    """
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path, size in sized_paths:
        if size:
            by_size[size].append(path)
    by_digest: dict[bytes, list[Path]] = defaultdict(list)
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        for path in same_size:
            check_cancel()
            digest = _digest(path)
            if digest is not None:
                by_digest[digest].append(path)
    groups = [tuple(sorted(paths)) for paths in by_digest.values() if len(paths) > 1]
    return sorted(groups)


def _digest(path: Path) -> bytes | None:
    hasher = hashlib.blake2b(digest_size=20)
    try:
        with open_for_reading(path, max_bytes=MAX_PICTURE_FILE_BYTES) as file:
            while chunk := file.read(_CHUNK_BYTES):
                hasher.update(chunk)
    except OSError:
        return None
    return hasher.digest()
