"""A frozen backbone's features, computed once: while the backbone does not learn (feature
extraction, and the first epochs of freeze-then-unfreeze), only the head trains, on features
kept in memory, instead of running every picture through the same unchanging network again.

Measured before (issue 14): resnet18 at 64 px took 5.6 s an epoch with the frozen backbone run
every time, 13 ms training the head on features computed once.

What stays as it was:
* the same batches in the same order, from the same resumable sampler (a run stopped mid-epoch
  goes on from the same batch), and the head sees what it would have seen: the backbone is in
  eval mode either way, and the head's dropout draws from the same random generator;
* random changes: with augmentations on, a few copies of the training pictures are computed,
  each with its own fixed random draws, and epoch ``e`` trains on copy ``e % copies``; each
  copy is computed when first needed, under a generator of its own, so building one never moves
  the run's random state (and a resumed run builds the very same copy);
* memory: the features of every picture (4 bytes a number) must fit in a share of the memory
  free now, else as few copies as fit, else the pictures go through the backbone every epoch
  as before (said once).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from ptm_studio.core.engine.loops import autocast, move_batch

LOGGER = logging.getLogger(__name__)

COPIES_WITH_RANDOM_CHANGES = 4  # enough variety for the head; each copy costs one pass
MEMORY_SHARE = 0.25  # of the memory free when the first copy is computed
MAX_CACHE_BYTES = 4 * 2**30
BYTES_PER_NUMBER = 4


@dataclass
class CachedFeatures:
    """One pass of the frozen backbone over a set of pictures, in the set's order."""

    features: torch.Tensor  # (pictures, feature size), float32, on the CPU
    labels: torch.Tensor  # (pictures,) int64
    positions: torch.Tensor  # (pictures,) int64; validation: -(p + 1) marks an unreadable one


NOTHING_SKIPPED: tuple[tuple[str, str], ...] = ()  # the pass that computed them said its own


class FeatureBatches:
    """An epoch's batches of cached features, as the pictures' loader gives its batches: the
    same sampler (the same positions, from any batch on), the same batch size and last batch,
    each batch with the files skipped to make it (none: see collate_reporting_skipped).

    Not a DataLoader: the epoch's rows are gathered at once and each batch is a slice of them,
    a few microseconds where a DataLoader took fifty a batch, a quarter of a step on a small
    head (issue 14, B2). Starting an epoch draws the one number a DataLoader draws (its base
    seed), so the random draws after it (the head's dropout) are those of the pictures' path.
    """

    def __init__(self, cached: CachedFeatures, images: DataLoader) -> None:
        self.cached = cached
        self.sampler = images.sampler
        self.batch_size = images.batch_size or 1
        self.drop_last = images.drop_last

    def __len__(self) -> int:
        full, rest = divmod(len(self.sampler), self.batch_size)  # type: ignore[arg-type]
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], Any]]:
        # Not a generator itself: the draw happens when the iterator is made, as a
        # DataLoader's does (a resumed run puts the random state back right after that).
        torch.empty((), dtype=torch.int64).random_()
        index = torch.as_tensor(list(self.sampler), dtype=torch.long)
        features = self.cached.features.index_select(0, index)
        labels = self.cached.labels.index_select(0, index)
        return self._slices(features, labels)

    def _slices(
        self, features: torch.Tensor, labels: torch.Tensor
    ) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], Any]]:
        size = self.batch_size
        last = len(labels) - len(labels) % size if self.drop_last else len(labels)
        for start in range(0, last, size):
            yield (features[start : start + size], labels[start : start + size]), NOTHING_SKIPPED


class FeatureCache:
    """The frozen backbone's features of the training pictures (one or a few copies) and of
    the validation pictures, each computed on first use."""

    def __init__(
        self,
        backbone: nn.Module,
        train_loader: DataLoader,
        val_loader: DataLoader,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
        channels_last: bool,
        *,
        seed: int,
        random_changes: bool,
        on_unavailable: Callable[[str], None],
    ) -> None:
        self.backbone = backbone
        self.train_loader, self.val_loader = train_loader, val_loader
        self.device, self.autocast_dtype, self.channels_last = device, autocast_dtype, channels_last
        self.seed = seed
        self.wanted_copies = COPIES_WITH_RANDOM_CHANGES if random_changes else 1
        self.on_unavailable = on_unavailable
        self.copies: int | None = None  # how many fit, decided before the first is computed
        self._train: dict[int, CachedFeatures] = {}
        self._val: CachedFeatures | None = None

    def train_loader_for_epoch(self, epoch_index: int) -> FeatureBatches | None:
        """A loader of the epoch's training features (same sampler, same batches), or None
        when they do not fit in memory."""
        copies = self._copies()
        return self._loader_of(self._train_copy(epoch_index % copies)) if copies else None

    def every_train_copy(self) -> CachedFeatures | None:
        """The features of every copy of the training pictures, one after another (a picture's
        copies share its position), or None when they do not fit in memory."""
        copies = self._copies()
        if not copies:
            return None
        parts = [self._train_copy(copy) for copy in range(copies)]
        return CachedFeatures(
            torch.cat([part.features for part in parts]),
            torch.cat([part.labels for part in parts]),
            torch.cat([part.positions for part in parts]),
        )

    def val_features(self) -> CachedFeatures:
        """The validation pictures' features (positions below 0 mark unreadable pictures)."""
        if self._val is None:
            self._val = self._compute(self.val_loader, copy=0)
        return self._val

    def recalibrate_normalisation(self) -> None:
        """Recompute the backbone's batch-norm statistics on the training pictures (one pass,
        no learning; torch's update_bn). The statistics a network brings describe the pictures
        it was trained on, e.g. the strongly changed views of contrastive pretraining, or
        nothing at all for random weights; once every layer learns, it normalises with the
        statistics of the batches it is given. Features computed with the brought statistics
        would not be what the network gives while it learns, and a last layer fitted on them
        would start finetuning with outputs far off."""
        with self._frozen_pass(copy=0):
            update_bn(self._images(self.train_loader), self.backbone)

    def _images(self, loader: DataLoader) -> Iterator[torch.Tensor]:
        for images, targets, _ in _in_order(loader):  # full precision: statistics are sums
            yield move_batch(images, targets, self.device, self.channels_last)[0]

    def val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(features, targets, positions) batches of the validation pictures, as the
        validation loader gives (images, targets, positions)."""
        cached, size = self.val_features(), max(1, self.val_loader.batch_size or 1)
        for start in range(0, len(cached.labels), size):
            end = start + size
            yield cached.features[start:end], cached.labels[start:end], cached.positions[start:end]

    def drop(self) -> None:
        """Free the memory (the backbone learns from now on: its features change)."""
        self._train.clear()
        self._val = None

    def copies_that_fit(self) -> int:
        """How many copies of the training features will be computed (0: they do not fit in
        memory, and the frozen network runs every epoch); decided now if it was not yet."""
        return self._copies()

    # ----------------------------------------------------------------------- computing
    def _copies(self) -> int:
        """How many copies of the training features fit (decided once, before the first)."""
        if self.copies is None:
            self.copies = self._copies_that_fit(self._feature_size())
        return self.copies

    def _train_copy(self, copy: int) -> CachedFeatures:
        if copy not in self._train:
            self._train[copy] = self._compute(self.train_loader, copy=copy)
        return self._train[copy]

    def _loader_of(self, cached: CachedFeatures) -> FeatureBatches:
        return FeatureBatches(cached, self.train_loader)

    def _feature_size(self) -> int:
        """How many numbers the backbone gives a picture (from one picture)."""
        with self._frozen_pass(copy=0):
            image = self.train_loader.dataset[0][0].unsqueeze(0)
            image, _ = move_batch(image, torch.zeros(1), self.device, self.channels_last)
            with autocast(self.device, self.autocast_dtype):
                return int(self.backbone(image).shape[1])

    def _copies_that_fit(self, feature_size: int) -> int:
        train_pictures = len(self.train_loader.dataset)  # type: ignore[arg-type]
        val_pictures = len(self.val_loader.dataset)  # type: ignore[arg-type]
        per_copy = train_pictures * feature_size * BYTES_PER_NUMBER
        val_bytes = val_pictures * feature_size * BYTES_PER_NUMBER
        budget = min(MAX_CACHE_BYTES, MEMORY_SHARE * psutil.virtual_memory().available)
        copies = min(self.wanted_copies, int((budget - val_bytes) // max(1, per_copy)))
        if copies < 1:
            needed = (per_copy + val_bytes) / 2**20
            self.on_unavailable(
                f"The pictures' features would need {needed:.0f} MB of memory, more than can be "
                "spared now: the frozen network runs over every picture each epoch instead "
                "(slower, same result)."
            )
            return 0
        if copies < self.wanted_copies:
            LOGGER.info("memory for %d copies of the features, not %d", copies, self.wanted_copies)
        return copies

    def _compute(self, loader: DataLoader, copy: int) -> CachedFeatures:
        """Run the frozen backbone over ``loader``'s pictures in their stored order, under a
        random generator of this copy's own (the run's generator is left where it was)."""
        features, labels, positions = [], [], []
        with self._frozen_pass(copy):
            for images, targets, batch_positions in _in_order(loader):
                images, _ = move_batch(images, targets, self.device, self.channels_last)
                with autocast(self.device, self.autocast_dtype):
                    features.append(self.backbone(images).float().cpu())
                labels.append(targets)
                positions.append(batch_positions)
        return CachedFeatures(torch.cat(features), torch.cat(labels), torch.cat(positions))

    @contextlib.contextmanager
    def _frozen_pass(self, copy: int) -> Iterator[None]:
        """Eval mode, no gradients, and the copy's own random draws; all put back after."""
        was_training = self.backbone.training
        self.backbone.eval()
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(self.seed * 1_000 + copy)
                yield
        finally:
            self.backbone.train(was_training)


def _in_order(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(images, targets, positions) of every picture of ``loader``'s dataset in stored order,
    loaded in this thread. A training set substitutes the next readable picture for one it
    cannot read (as training does); validation sets mark them, see MarkUnreadable."""
    dataset = loader.dataset
    size = max(1, loader.batch_size or 1)
    count = len(dataset)  # type: ignore[arg-type]
    for start in range(0, count, size):
        items = [dataset[position] for position in range(start, min(count, start + size))]
        images = torch.stack([item[0] for item in items])
        targets = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
        if len(items[0]) == 3:
            positions = torch.as_tensor([int(item[2]) for item in items], dtype=torch.long)
        else:
            positions = torch.arange(start, start + len(items), dtype=torch.long)
        yield images, targets, positions
