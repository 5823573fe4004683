"""A shuffling sampler whose order depends only on (seed, epoch), so a run can resume mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


def epoch_permutation(num_items: int, seed: int, epoch_index: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch_index)
    return torch.randperm(num_items, generator=generator).tolist()


class ResumableShuffleSampler(Sampler[int]):
    """Yields the epoch's permutation, skipping the first ``start_index`` items after a resume."""

    def __init__(self, num_items: int, seed: int) -> None:
        self.num_items = num_items
        self.seed = seed
        self.epoch_index = 0
        self.start_index = 0

    def set_epoch(self, epoch_index: int, start_index: int = 0) -> None:
        self.epoch_index = epoch_index
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        return iter(
            epoch_permutation(self.num_items, self.seed, self.epoch_index)[self.start_index :]
        )

    def __len__(self) -> int:
        return self.num_items - self.start_index
