"""Training goes on when pictures vanish or break after the scan (RELIABILITY I14).

A picture that can no longer be read is skipped (the next one takes its place in the batch) and
remembered, so the run can report it. If the whole folder is gone (an unplugged drive), the run
must pause instead: ``DatasetVanished`` tells the trainer to save and stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ptm_studio.core.data.loader import ImageLoadError
from ptm_studio.core.data.manifest import DatasetError

MAX_UNREADABLE_IN_A_ROW = 20


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

    With background loader processes each process keeps its own ``skipped``; training still goes
    on, only the report is then incomplete.
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
