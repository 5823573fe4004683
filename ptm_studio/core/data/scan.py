"""Scans a folder of pictures: layout, classes, splits, readable images and problems.

Three layouts are recognised:
- ``split_folders``: ``train/`` (any letter case) with ``val/`` (or ``valid/``, ``validation/``) and
  ``test/`` beside it, each holding one subfolder per class;
- ``class_folders``: one subfolder per class, pictures possibly nested deeper inside it;
- ``unlabeled``: pictures directly in the folder and no class subfolders (fine for pretraining).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ptm_studio.core.data.duplicates import find_identical_files
from ptm_studio.core.data.loader import ImageLoadError, check_image
from ptm_studio.core.data.manifest import (
    DatasetError,
    DatasetScan,
    ImageRecord,
    Problem,
    ScanCancelled,
)
from ptm_studio.core.data.preflight import preflight
from ptm_studio.core.data.problems import ScanFacts, find_problems, imbalance_ratio
from ptm_studio.core.data.walk import (
    PROGRESS_EVERY,
    FoundFile,
    Listing,
    ProgressReporter,
    fingerprint,
    list_tree,
)

__all__ = [
    "DatasetError",
    "DatasetScan",
    "ImageRecord",
    "Problem",
    "ScanCancelled",
    "preflight",
    "scan_folder",
    "scan_is_current",
]

SPLIT_FOLDER_NAMES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


@dataclass
class _Labelling:
    layout: str
    class_names: tuple[str, ...]
    entries: list[tuple[FoundFile, str | None, str]] = field(default_factory=list)
    loose_images: list[Path] = field(default_factory=list)
    unknown_folders: list[Path] = field(default_factory=list)


@dataclass
class _Verified:
    records: list[ImageRecord] = field(default_factory=list)
    sizes: list[tuple[Path, int | None]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    multi_frame: list[Path] = field(default_factory=list)


def scan_folder(
    root: str | Path,
    *,
    verify_images: bool = True,
    on_progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    report_every: int = PROGRESS_EVERY,
) -> DatasetScan:
    """Find every image under ``root``, label it from its folders and report what is wrong.

    Args:
        root: the folder the user chose.
        verify_images: decode every image (slow, catches broken files); otherwise only the file
            names are checked.
        on_progress: called with (done, total) now and then; total is None while still listing.
        should_cancel: polled often; when it returns True the scan raises ScanCancelled.
        report_every: files between two progress reports (a window that throttles the
            reports itself asks for more, so a small or slow folder still shows its progress).

    Raises:
        DatasetError: ``root`` is not a folder.
        ScanCancelled: ``should_cancel`` returned True.
    """
    folder = Path(root).expanduser().absolute()
    if not folder.is_dir():
        raise DatasetError(
            f"The folder {folder} does not exist (or is not a folder).",
            "Check the path, or choose the folder that holds your pictures again.",
        )
    progress = ProgressReporter(on_progress, should_cancel, report_every=report_every)
    progress.step(0, None, force=True)
    listing = list_tree(folder, progress)
    files, link_copies = _without_link_copies(listing.files)
    labelling = _label(folder, listing, files)
    verified = _verify(labelling.entries, verify_images, progress)
    groups = find_identical_files(verified.sizes, progress.check_cancel)
    return _assemble(folder, listing, labelling, verified, groups, link_copies)


def scan_is_current(scan: DatasetScan) -> bool:
    """Whether ``scan`` still describes its folder: nothing was added, removed, renamed or
    modified since. Walks the folder (quick) but opens no picture."""
    if not scan.fingerprint or not scan.root.is_dir():
        return False
    return fingerprint(list_tree(scan.root, ProgressReporter(None, None))) == scan.fingerprint


def _without_link_copies(files: Sequence[FoundFile]) -> tuple[list[FoundFile], list[Path]]:
    """One entry per real file; the real location wins over any link, so no mislabels."""
    chosen: dict[tuple[Path, str], FoundFile] = {}
    copies = []
    for found in sorted(files, key=lambda found: (found.via_link, found.path)):
        if found.real in chosen:
            copies.append(found.path)
        else:
            chosen[found.real] = found
    return sorted(chosen.values(), key=lambda found: found.path), copies


def _label(root: Path, listing: Listing, files: list[FoundFile]) -> _Labelling:
    top_folders = sorted(relative[0] for relative in listing.folders if len(relative) == 1)
    if any(SPLIT_FOLDER_NAMES.get(name.lower()) == "train" for name in top_folders):
        return _label_split_folders(root, listing, files, top_folders)
    if any(len(found.relative) >= 2 for found in files):
        labelling = _Labelling("class_folders", tuple(top_folders))
        for found in files:
            if len(found.relative) == 1:
                labelling.loose_images.append(found.path)
            else:
                labelling.entries.append((found, found.relative[0], "unassigned"))
        return labelling
    labelling = _Labelling("unlabeled", ())
    labelling.entries = [(found, None, "unassigned") for found in files]
    return labelling


def _label_split_folders(
    root: Path, listing: Listing, files: list[FoundFile], top_folders: list[str]
) -> _Labelling:
    def split_of(name: str) -> str | None:
        return SPLIT_FOLDER_NAMES.get(name.lower())

    class_names = sorted(
        {
            relative[1]
            for relative in listing.folders
            if len(relative) == 2 and split_of(relative[0]) is not None
        }
    )
    labelling = _Labelling("split_folders", tuple(class_names))
    labelling.unknown_folders = [root / name for name in top_folders if split_of(name) is None]
    for found in files:
        split = split_of(found.relative[0]) if len(found.relative) > 1 else None
        if len(found.relative) == 1 or (split is not None and len(found.relative) == 2):
            labelling.loose_images.append(found.path)
        elif split is not None:
            labelling.entries.append((found, found.relative[1], split))
    return labelling


def _verify(
    entries: list[tuple[FoundFile, str | None, str]],
    verify_images: bool,
    progress: ProgressReporter,
) -> _Verified:
    verified = _Verified()
    total = len(entries)
    for done, (found, class_name, split) in enumerate(entries, start=1):
        if verify_images:
            progress.check_cancel()
            try:
                if check_image(found.path):
                    verified.multi_frame.append(found.path)
            except ImageLoadError as error:
                verified.unreadable.append((found.path, error.reason))
                continue
        verified.records.append(ImageRecord(found.path, class_name, split))
        verified.sizes.append((found.path, found.size))
        progress.step(done, total)
    progress.step(total, total, force=True)
    return verified


def _training_counts(
    layout: str, records: list[ImageRecord], names: tuple[str, ...]
) -> dict[str, int]:
    pool = "train" if layout == "split_folders" else "unassigned"
    counts = dict.fromkeys(names, 0)
    for record in records:
        if record.split == pool and record.class_name is not None:
            counts[record.class_name] += 1
    return counts


def _assemble(
    root: Path,
    listing: Listing,
    labelling: _Labelling,
    verified: _Verified,
    groups: list[tuple[Path, ...]],
    link_copies: list[Path],
) -> DatasetScan:
    counts = _training_counts(labelling.layout, verified.records, labelling.class_names)
    skipped_links = tuple(sorted([*listing.skipped_links, *link_copies]))
    ignored_folders = tuple(sorted([*listing.junk_folders, *labelling.unknown_folders]))
    facts = ScanFacts(
        root=root,
        layout=labelling.layout,
        class_names=labelling.class_names,
        training_counts=counts,
        records=tuple(verified.records),
        unreadable=tuple(verified.unreadable),
        identical_groups=tuple(groups),
        multi_frame=tuple(verified.multi_frame),
        loose_images=tuple(labelling.loose_images),
        ignored_folders=ignored_folders,
        other_files=tuple(listing.other_files),
        skipped_links=skipped_links,
        unreadable_folders=tuple(listing.unreadable_folders),
    )
    ignored = {*listing.junk, *labelling.unknown_folders, *listing.other_files, *skipped_links}
    ignored.update(labelling.loose_images, listing.unreadable_folders)
    return DatasetScan(
        root=root,
        layout=labelling.layout,
        class_names=labelling.class_names,
        records=facts.records,
        unreadable=facts.unreadable,
        ignored=tuple(sorted(ignored)),
        problems=find_problems(facts),
        imbalance_ratio=imbalance_ratio(counts),
        multi_frame_files=facts.multi_frame,
        fingerprint=fingerprint(listing),
    )
