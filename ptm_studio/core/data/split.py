"""Divides scanned images into training, validation and test sets, the same for the same seed."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ptm_studio.core.data.manifest import DatasetScan, ImageRecord


@dataclass(frozen=True)
class DataSplit:
    """The images a run trains on, checks itself with, and (optionally) tests on at the end.

    Records keep the ``split`` the scan gave them ("unassigned" when the folder had no
    train/val folders and the validation share was drawn here).
    """

    class_names: tuple[str, ...]
    train: tuple[ImageRecord, ...]
    val: tuple[ImageRecord, ...]
    test: tuple[ImageRecord, ...] = ()
    # Files found but not usable (unreadable, disguised, too large), with the reason.
    left_out: tuple[tuple[Path, str], ...] = ()

    @property
    def class_to_index(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.class_names)}


def validation_count(class_size: int, validation_fraction: float) -> int:
    """Images of a class kept for validation: round(n × fraction), at least 1, at most n − 1."""
    if validation_fraction <= 0 or class_size < 2:
        return 0
    return min(max(round(class_size * validation_fraction), 1), class_size - 1)


def stratified_split(
    records: Iterable[ImageRecord], validation_fraction: float, seed: int
) -> tuple[tuple[ImageRecord, ...], tuple[ImageRecord, ...]]:
    """(train, val) with the same share of every class in validation.

    Deterministic: the result depends only on the set of records, the fraction and the seed,
    never on the order the records come in or on PYTHONHASHSEED. Each class draws from its own
    random stream, so adding a class does not reshuffle the others.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), not {validation_fraction}")
    by_class: dict[str | None, list[ImageRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda record: record.path):
        by_class[record.class_name].append(record)
    train: list[ImageRecord] = []
    val: list[ImageRecord] = []
    for class_name, members in by_class.items():
        shuffled = list(members)
        # A string seed is hashed with SHA-512 by random.Random, so it is stable across runs.
        random.Random(f"{seed}:{class_name}").shuffle(shuffled)
        count = validation_count(len(shuffled), validation_fraction)
        val.extend(shuffled[:count])
        train.extend(shuffled[count:])
    return _by_path(train), _by_path(val)


def keep_label_fraction(
    records: Iterable[ImageRecord], fraction: float, seed: int
) -> tuple[ImageRecord, ...]:
    """A deterministic per-class subset: round(n × fraction) images of each class, at least one.

    Used to study training with few labels (e.g. finetuning on 10 % of the labels after
    pretraining on all images). Independent of input order; the validation set is untouched.
    """
    if fraction >= 1:
        return _by_path(list(records))
    by_class: dict[str | None, list[ImageRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda record: record.path):
        by_class[record.class_name].append(record)
    kept: list[ImageRecord] = []
    for class_name, members in by_class.items():
        random.Random(f"{seed}:labels:{class_name}").shuffle(members)
        kept.extend(members[: max(1, round(len(members) * fraction))])
    return _by_path(kept)


def make_split(scan: DatasetScan, validation_fraction: float, seed: int) -> DataSplit:
    """Use the folder's own train/val/test folders when it has them; otherwise draw validation.

    Unlabelled folders (pretraining) put every image in ``train`` and none in ``val``.
    """
    if scan.layout == "unlabeled":
        return DataSplit((), scan.records, ())
    if scan.layout == "split_folders":
        train, val = scan.records_in("train"), scan.records_in("val")
        if not val:
            train, val = stratified_split(train, validation_fraction, seed)
        return DataSplit(scan.class_names, train, val, scan.records_in("test"))
    train, val = stratified_split(scan.records_in("unassigned"), validation_fraction, seed)
    return DataSplit(scan.class_names, train, val)


def _by_path(records: list[ImageRecord]) -> tuple[ImageRecord, ...]:
    return tuple(sorted(records, key=lambda record: record.path))


def split_for_run(
    scan: DatasetScan, *, validation_fraction: float, label_fraction: float, seed: int
) -> DataSplit:
    """The split a run with these settings uses (and the window shows): the folder's own
    train/val/test folders or a drawn validation share, only ``label_fraction`` of each class's
    training pictures, and the files the scan could not use as ``left_out``."""
    split = make_split(scan, validation_fraction, seed)
    train = split.train
    if label_fraction < 1:
        train = keep_label_fraction(train, label_fraction, seed)
    return DataSplit(split.class_names, train, split.val, split.test, left_out=scan.unreadable)
