"""stratified_split and make_split: deterministic, stratified, honouring the user's own folders."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from ptm_studio.core.data import DataSplit, ImageRecord, make_split, scan_folder, stratified_split
from ptm_studio.core.data.split import validation_count


def records(counts: dict[str, int]) -> list[ImageRecord]:
    return [
        ImageRecord(Path(f"/data/{name}/{index:03d}.png"), name, "unassigned")
        for name, count in counts.items()
        for index in range(count)
    ]


def test_validation_count_rounds_and_keeps_one_on_each_side() -> None:
    assert [validation_count(n, 0.2) for n in (0, 1, 2, 3, 10, 12, 100)] == [0, 0, 1, 1, 2, 2, 20]
    assert validation_count(10, 0.0) == 0
    assert validation_count(2, 0.9) == 1
    assert validation_count(5, 0.01) == 1


def test_same_seed_same_split_whatever_the_input_order() -> None:
    data = records({"a": 30, "b": 17, "c": 9})
    shuffled = list(data)
    random.Random(4).shuffle(shuffled)
    first = stratified_split(data, 0.2, seed=7)
    assert stratified_split(shuffled, 0.2, seed=7) == first
    assert stratified_split(tuple(reversed(data)), 0.2, seed=7) == first


def test_different_seeds_give_different_splits() -> None:
    data = records({"a": 30, "b": 30})
    assert stratified_split(data, 0.2, seed=1)[1] != stratified_split(data, 0.2, seed=2)[1]


def test_each_class_keeps_its_share_and_nothing_is_lost() -> None:
    data = records({"a": 50, "b": 20, "c": 3, "d": 1})
    train, val = stratified_split(data, 0.2, seed=0)
    assert Counter(record.class_name for record in val) == {"a": 10, "b": 4, "c": 1}
    assert sorted([*train, *val], key=lambda record: record.path) == data
    assert not set(train) & set(val)
    assert [record.path for record in val] == sorted(record.path for record in val)


def test_a_fraction_of_one_or_more_is_refused() -> None:
    with pytest.raises(ValueError, match="validation_fraction"):
        stratified_split(records({"a": 4}), 1.0, seed=0)


def test_make_split_on_class_folders(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 10, "b": 5})
    scan = scan_folder(tmp_path)
    split = make_split(scan, 0.2, seed=3)
    assert split.class_names == ("a", "b")
    assert split.class_to_index == {"a": 0, "b": 1}
    assert Counter(record.class_name for record in split.val) == {"a": 2, "b": 1}
    assert len(split.train) == 12 and split.test == ()
    assert make_split(scan, 0.2, seed=3) == split


def test_make_split_honours_the_val_and_test_folders(tmp_path: Path, make_dataset) -> None:
    train = make_dataset(tmp_path / "train", {"a": 6, "b": 6})
    val = make_dataset(tmp_path / "val", {"a": 2, "b": 1})
    test = make_dataset(tmp_path / "test", {"a": 1, "b": 1})
    split = make_split(scan_folder(tmp_path), 0.5, seed=0)
    assert {record.path for record in split.train} == {*train["a"], *train["b"]}
    assert {record.path for record in split.val} == {*val["a"], *val["b"]}
    assert {record.path for record in split.test} == {*test["a"], *test["b"]}


def test_make_split_draws_validation_from_train_when_there_is_no_val_folder(
    tmp_path: Path, make_dataset
) -> None:
    make_dataset(tmp_path / "train", {"a": 10, "b": 10})
    split = make_split(scan_folder(tmp_path), 0.3, seed=0)
    assert Counter(record.class_name for record in split.val) == {"a": 3, "b": 3}
    assert len(split.train) == 14


def test_make_split_on_unlabelled_pictures_trains_on_all(tmp_path: Path, make_image) -> None:
    for index in range(5):
        make_image(tmp_path / f"{index}.png")
    split = make_split(scan_folder(tmp_path), 0.2, seed=0)
    assert split == DataSplit((), split.train, ())
    assert len(split.train) == 5


def test_label_fraction_keeps_a_deterministic_share_of_each_class() -> None:
    from ptm_studio.core.data import keep_label_fraction

    pool = records({"a": 50, "b": 20, "c": 3})
    kept = keep_label_fraction(pool, 0.1, seed=4)
    assert Counter(record.class_name for record in kept) == {"a": 5, "b": 2, "c": 1}
    shuffled = list(pool)
    random.Random(9).shuffle(shuffled)
    assert keep_label_fraction(shuffled, 0.1, seed=4) == kept
    assert keep_label_fraction(pool, 0.1, seed=5) != kept
    assert len(keep_label_fraction(pool, 1.0, seed=4)) == 73
