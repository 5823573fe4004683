"""Whether a resumed run would train on the pictures it started with.

A run records what it trains on when it starts (run.json ``data``): per class, how many
pictures, a digest of their names, one of their names and sizes, one of their first and last
bytes (a few KB each: cheap, and a picture replaced by another of the same size differs there),
and one with their modification times too. A resume compares the folder as it is now with that record, before
anything in the run folder is touched:

* the same names, sizes and first and last bytes: the same pictures; when only the
  modification times differ (the folder was copied, or touched by a backup tool) the resume
  goes on and says so;
* classes added, removed or renamed, pictures added, removed, renamed or with other contents:
  the run refuses (DataChangedError: exit 3 in the command line) and says what changed. Going on
  would draw another validation share (mixing pictures the run trained on into it) and shuffle
  another list of pictures, so the run would no longer be the one it says it is.

A run from before this record, or with a damaged one, is checked by its classes only (as the
checkpoint's class names are).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ptm_studio.core.data import DataSplit, ImageRecord
from ptm_studio.core.engine.failures import DataChangedError, check_same_classes
from ptm_studio.core.file_reading import MAX_PICTURE_FILE_BYTES, open_for_reading

LOGGER = logging.getLogger(__name__)
UNLABELLED = ""  # the "class" of pictures without one (pretraining on a plain folder)
_DIGESTS = ("names", "contents", "dates")  # every record has these
SAMPLE_BYTES = 4096  # read at each end of every picture for the "samples" digest


def describe_data(split: DataSplit, root: Path) -> dict[str, Any]:
    """What a run trains on, to tell later whether a folder still holds the same pictures."""
    by_class: dict[str, list[ImageRecord]] = {name: [] for name in split.class_names}
    for record in (*split.train, *split.val, *split.test):
        by_class.setdefault(record.class_name or UNLABELLED, []).append(record)
    return {
        "folder": str(root),
        "pictures": sum(len(records) for records in by_class.values()),
        "classes": {name: _describe_class(records, root) for name, records in by_class.items()},
    }


def _describe_class(records: Iterable[ImageRecord], root: Path) -> dict[str, Any]:
    pictures = sorted(_picture_facts(record.path, root) for record in records)
    digests = {kind: hashlib.sha256() for kind in (*_DIGESTS, "samples")}
    for name, size, modified_ns, sample in pictures:
        digests["samples"].update(f"{name}\0".encode("utf-8", "surrogateescape") + sample)
        digests["names"].update(f"{name}\n".encode("utf-8", "surrogateescape"))
        digests["contents"].update(f"{name}\0{size}\n".encode("utf-8", "surrogateescape"))
        digests["dates"].update(
            f"{name}\0{size}\0{modified_ns}\n".encode("utf-8", "surrogateescape")
        )
    return {
        "count": len(pictures),
        **{kind: digest.hexdigest() for kind, digest in digests.items()},
    }


def _picture_facts(path: Path, root: Path) -> tuple[str, int, int, bytes]:
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.as_posix()
    try:
        with open_for_reading(path, max_bytes=MAX_PICTURE_FILE_BYTES) as handle:
            facts = os.fstat(handle.fileno())
            sample = handle.read(SAMPLE_BYTES)
            if facts.st_size > 2 * SAMPLE_BYTES:
                handle.seek(-SAMPLE_BYTES, os.SEEK_END)
            sample += hashlib.sha256(handle.read(SAMPLE_BYTES)).digest()
    except OSError:
        return name, -1, -1, b""
    return name, facts.st_size, facts.st_mtime_ns, hashlib.sha256(sample).digest()


def check_same_data(recorded: Any, now: dict[str, Any], root: Path) -> str:
    """Compare the pictures a run started with (``recorded``, run.json's ``data``) with the
    folder now (``now``, from :func:`describe_data`).

    Returns:
        "" when they are the same; a sentence when only harmless things changed (the resume
        goes on and shows it); a sentence when the record cannot be compared.

    Raises:
        DataChangedError: classes or pictures changed; the message says which and how.
    """
    if recorded is None:
        return ""  # a run from before pictures were recorded: its classes are still checked
    before = _classes_of(recorded)
    if before is None:
        LOGGER.warning("the record of the pictures this run started with is damaged: %r", recorded)
        return (
            "the pictures could not be compared with those the run started with (that record "
            "in run.json is damaged); their classes are the same"
        )
    after = now["classes"]
    check_same_classes(tuple(before), tuple(after), root)
    changes = [
        change for name in after if (change := _class_change(name, before[name], after[name]))
    ]
    if changes:
        raise DataChangedError(
            f"The pictures in {root} are not the ones this run was trained on: "
            f"{'; '.join(changes)}. The classes are the same.",
            advice="Resuming would train on other pictures than the run started with (and "
            "draw another validation share). Put the folder back as it was to resume, or start "
            "a new run on the pictures as they are now (it can start from this run's weights).",
        )
    if any(before[name].get("dates") != after[name]["dates"] for name in after):
        return (
            "the same pictures: only their modification times changed (names and sizes are "
            "as before), which does not change what the run trains on"
        )
    return ""


def _classes_of(recorded: Any) -> dict[str, dict[str, Any]] | None:
    """The recorded classes, type-checked; None when the record is damaged."""
    classes = recorded.get("classes") if isinstance(recorded, dict) else None
    if not isinstance(classes, dict):
        return None
    for facts in classes.values():
        if not isinstance(facts, dict):
            return None
        count = facts.get("count")
        if isinstance(count, bool) or not isinstance(count, int):
            return None
        if not all(isinstance(facts.get(kind), str) for kind in _DIGESTS):
            return None
    return classes


def _class_change(name: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    """What changed in one class, in words ("" when nothing that matters did)."""
    shown = f"'{name}'" if name != UNLABELLED else "the folder"
    difference = after["count"] - int(before["count"])
    if difference > 0:
        return f"{_pictures(difference)} {_were(difference)} added to {shown}"
    if difference < 0:
        return f"{_pictures(-difference)} {_were(-difference)} removed from {shown} (or can no longer be read)"
    if before["names"] != after["names"]:
        return f"pictures in {shown} were renamed or replaced by others (as many as before)"
    changed_inside = (
        isinstance(before.get("samples"), str) and before["samples"] != after["samples"]
    )
    if before["contents"] != after["contents"] or changed_inside:
        return f"pictures in {shown} were changed (the same names, other contents)"
    return ""


def _pictures(count: int) -> str:
    return f"{count} picture" if count == 1 else f"{count} pictures"


def _were(count: int) -> str:
    return "was" if count == 1 else "were"
