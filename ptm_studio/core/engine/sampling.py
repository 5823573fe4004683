"""A shuffling sampler whose order depends only on (seed, epoch), so a run can resume mid-epoch;
optionally balanced: each class drawn equally often, for folders whose classes are very uneven.
Under torchrun each process takes its share of the same order (see distributed.shard)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from ptm_studio.core.engine.distributed import DistributedContext, shard


def _generator(seed: int, epoch_index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch_index)


def epoch_permutation(num_items: int, seed: int, epoch_index: int) -> list[int]:
    return torch.randperm(num_items, generator=_generator(seed, epoch_index)).tolist()


def balanced_draw(labels: Sequence[int], seed: int, epoch_index: int) -> list[int]:
    """As many indices as there are items, drawn with replacement so that every class is as
    likely as any other: a rare class's pictures repeat within an epoch, a common class's are
    not all seen in each one (they are over a few epochs)."""
    if not labels:
        return []
    counts = Counter(labels)
    weights = torch.tensor([1.0 / counts[label] for label in labels], dtype=torch.float64)
    drawn = torch.multinomial(
        weights, len(labels), replacement=True, generator=_generator(seed, epoch_index)
    )
    return drawn.tolist()


class ResumableShuffleSampler(Sampler[int]):
    """Yields the epoch's order, skipping the first ``start_index`` items after a resume.

    ``balance_by``: each item's class; when given, the order is a balanced draw
    (:func:`balanced_draw`) instead of a permutation.
    """

    def __init__(
        self,
        num_items: int,
        seed: int,
        balance_by: Sequence[int] | None = None,
        distributed: DistributedContext | None = None,
    ) -> None:
        self.num_items = num_items
        self.seed = seed
        self.balance_by = tuple(balance_by) if balance_by is not None else None
        self.distributed = distributed or DistributedContext()
        self.epoch_index = 0
        self.start_index = 0

    def set_epoch(self, epoch_index: int, start_index: int = 0) -> None:
        self.epoch_index = epoch_index
        self.start_index = start_index

    def __iter__(self) -> Iterator[int]:
        if self.balance_by is not None:
            order = balanced_draw(self.balance_by, self.seed, self.epoch_index)
        else:
            order = epoch_permutation(self.num_items, self.seed, self.epoch_index)
        return iter(shard(order, self.distributed, pad=True)[self.start_index :])

    def __len__(self) -> int:
        world = self.distributed.world_size
        return -(-self.num_items // world) - self.start_index  # this process's share
