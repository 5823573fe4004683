"""Training goes on when pictures vanish or break after the scan (fault I14,
docs/fault-catalogue.md).

A training picture that can no longer be read is skipped (the next one takes its place in the
batch) and remembered, so the run can report it. A validation picture cannot be replaced (each
result belongs to one file), so it is marked and left out of that epoch's measurements. If the whole folder is gone (an unplugged drive), the run
must pause instead: ``DatasetVanished`` tells the trainer to save and stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate

from ptm_studio.core.data.loader import ImageLoadError
from ptm_studio.core.data.manifest import DatasetError

MAX_UNREADABLE_IN_A_ROW = 20

# Files skipped in this process (the trainer's, or a background loading process) since the
# last batch was put together; ``collate_reporting_skipped`` hands them over with the batch, so
# the trainer learns of skips that happened in another process.
_skipped_since_last_batch: list[tuple[str, str]] = []


def forget_skips_inherited(_worker_id: int | None = None) -> None:
    """Empty this process's list: a new loading process inherits its parent's (fork), and the
    trainer's may hold skips of pictures read outside a batch (previews) or of an earlier run.
    Also usable as a DataLoader ``worker_init_fn``."""
    _skipped_since_last_batch.clear()


def collate_reporting_skipped(items: list[Any]) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """The DataLoader collate of a training set: (the batch, files skipped to make it)."""
    skipped = tuple(_skipped_since_last_batch)
    _skipped_since_last_batch.clear()
    return default_collate(items), skipped


class DatasetVanished(DatasetError):
    """The picture folder itself disappeared during a run."""

    def __init__(self, root: Path) -> None:
        super().__init__(
            f"The picture folder {root} is no longer there (an unplugged drive or a moved folder?).",
            advice="The run was saved and stopped: bring the folder back, then press Resume.",
        )
        self.root = root


class SkipUnreadable(Dataset[Any]):
    """Wraps a training dataset; ``skipped`` maps each unreadable file to the reason.

    With background loading processes each keeps its own ``skipped``; loaders built with
    ``collate_reporting_skipped`` carry every skip back to the trainer with the batch.
    """

    def __init__(self, dataset: Any, root: Path) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, position: int) -> Any:
        size = len(self.dataset)
        for offset in range(min(size, MAX_UNREADABLE_IN_A_ROW)):
            try:
                return self.dataset[(position + offset) % size]
            except ImageLoadError as error:
                if not self.root.exists():
                    raise DatasetVanished(self.root) from error
                self.skipped[str(error.path)] = error.reason
                _skipped_since_last_batch.append((str(error.path), error.reason))
        raise DatasetError(
            f"{MAX_UNREADABLE_IN_A_ROW} pictures in a row could not be read, e.g. "
            f"{next(iter(self.skipped), '?')}.",
            advice="Check that the picture folder is complete and readable, then resume.",
        )

    def __getattr__(self, name: str) -> Any:
        # paths, labels, records… of the wrapped dataset stay reachable.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class MarkUnreadable(Dataset[tuple[torch.Tensor, int, int]]):
    """Wraps a validation dataset: items are (image, label, position), with ``-(position + 1)``
    and a blank image for a picture that can no longer be read.

    The marker travels back from background loader processes too, so the main process always
    knows which files were left out (see ``unreadable_positions``).
    """

    def __init__(self, dataset: Any, root: Path, image_size: int) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int, int]:
        try:
            image, label = self.dataset[position]
        except ImageLoadError as error:
            if not self.root.exists():
                raise DatasetVanished(self.root) from error
            blank = torch.zeros(3, self.image_size, self.image_size)
            return blank, self.dataset.labels[position], -(position + 1)
        return image, label, position

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
