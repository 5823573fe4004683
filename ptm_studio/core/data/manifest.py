"""What a folder scan found: a record per usable image, the problems, and the errors it raises."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test", "unassigned")
LAYOUTS = ("class_folders", "split_folders", "unlabeled")
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class ImageRecord:
    """One readable image: where it is, its class (None when unlabelled) and its split.

    ``split`` is "train", "val" or "test" when the folder has those subfolders, otherwise
    "unassigned" (the validation share is then drawn by ``make_split``).
    """

    path: Path
    class_name: str | None
    split: str


@dataclass(frozen=True)
class Problem:
    """Something about the data worth telling the user, in words a biologist understands."""

    kind: str
    severity: str
    message: str
    advice: str
    paths: tuple[Path, ...] = ()


@dataclass(frozen=True)
class DatasetScan:
    """The result of ``scan_folder``: the images, their classes and splits, and what is wrong."""

    root: Path
    layout: str
    class_names: tuple[str, ...]
    records: tuple[ImageRecord, ...]
    unreadable: tuple[tuple[Path, str], ...]
    ignored: tuple[Path, ...]
    problems: tuple[Problem, ...]
    imbalance_ratio: float
    multi_frame_files: tuple[Path, ...] = ()
    # What the folder looked like (see walk.fingerprint): the same folder, unchanged, gives the
    # same fingerprint, so a scan can be reused instead of opening every picture again.
    fingerprint: str = ""

    def count_by_class(self, split: str | None = None) -> dict[str, int]:
        """Images per class (every class listed, zero included), in one split or in all."""
        counts = Counter(
            record.class_name
            for record in self.records
            if record.class_name is not None and (split is None or record.split == split)
        )
        return {name: counts.get(name, 0) for name in self.class_names}

    def records_in(self, split: str) -> tuple[ImageRecord, ...]:
        return tuple(record for record in self.records if record.split == split)

    @property
    def has_validation_split(self) -> bool:
        """True when the folder itself has validation images (a val/ folder)."""
        return any(record.split == "val" for record in self.records)

    @property
    def total_files(self) -> int:
        """Image files found: readable plus unreadable (junk and other files not counted)."""
        return len(self.records) + len(self.unreadable)

    def problems_of_kind(self, kind: str) -> tuple[Problem, ...]:
        return tuple(problem for problem in self.problems if problem.kind == kind)


class ScanCancelled(Exception):
    """The user cancelled a folder scan."""


class DatasetError(Exception):
    """The data cannot be trained on; ``message`` says why and ``advice`` what to do."""

    def __init__(self, message: str, advice: str = "") -> None:
        # str() carries both, so a log line or the CLI shows the advice too (as ModelError does).
        super().__init__(f"{message} {advice}".strip())
        self.message = message
        self.advice = advice
