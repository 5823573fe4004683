"""preflight: data that cannot train is refused before training, in plain words (I1, I11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptm_studio.core.data import DatasetError, preflight, scan_folder


def refusal(folder: Path, **options: object) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        preflight(scan_folder(folder), **options)  # type: ignore[arg-type]
    assert caught.value.advice, "every refusal says what to do"
    assert str(caught.value) == f"{caught.value.message} {caught.value.advice}"
    return caught.value


def test_a_good_folder_passes(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    preflight(scan_folder(tmp_path))
    preflight(scan_folder(tmp_path), task="pretrain")


def test_no_images_at_all(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing", encoding="utf-8")
    assert "No pictures were found" in refusal(tmp_path).message
    assert "No pictures were found" in refusal(tmp_path, task="pretrain").message


def test_only_unreadable_images(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.jpg").write_bytes(b"")
    error = refusal(tmp_path, task="pretrain")
    assert "a/broken.jpg (the file is empty)" in error.message


def test_images_at_the_root_without_class_folders(tmp_path: Path, make_image) -> None:
    for index in range(6):
        make_image(tmp_path / f"{index}.png")
    error = refusal(tmp_path)
    assert "one subfolder per class" in error.message
    assert "pretraining" in error.advice
    preflight(scan_folder(tmp_path), task="pretrain")


def test_only_one_class(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"cells": 10})
    error = refusal(tmp_path)
    assert "Only one class" in error.message and "'cells'" in error.message
    preflight(scan_folder(tmp_path), task="pretrain")


@pytest.mark.parametrize("inner", [("train/a", "train/b", "val/a", "val/b"), ("a", "b")])
def test_a_dataset_one_folder_down_is_named(
    tmp_path: Path, make_dataset, inner: tuple[str, ...]
) -> None:
    """The folder above the dataset (flowers/ holding data/train/daisy/…) looks like one class
    holding folders: the advice names the folder to choose instead."""
    make_dataset(tmp_path / "data", {name: 3 for name in inner})
    error = refusal(tmp_path)
    assert "Only one class" in error.message
    assert f"choose {tmp_path / 'data'} as the dataset folder instead" in error.advice


def test_an_empty_class(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "broken.png").write_bytes(b"")  # an unreadable file is no picture
    assert "'c'" in refusal(tmp_path, max_bad_file_fraction=0.5).message


def test_an_empty_class_in_train_folder(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path / "train", {"a": 5, "b": 5})
    make_dataset(tmp_path / "val", {"a": 1, "b": 1, "c": 1})
    assert "'train/c'" in refusal(tmp_path).message


def test_class_too_small_for_a_validation_image(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "lonely": 1})
    error = refusal(tmp_path)
    assert "'lonely'" in error.message and "only one picture" in error.message
    # Fine when nothing is kept for validation, or when there is a val/ folder.
    preflight(scan_folder(tmp_path), validation_fraction=0.0)
    split_root = tmp_path / "with val"
    make_dataset(split_root / "train", {"a": 5, "lonely": 1})
    make_dataset(split_root / "val", {"a": 1, "lonely": 1})
    preflight(scan_folder(split_root))


def test_bad_file_share_above_the_threshold_is_refused(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 10, "b": 9})
    (tmp_path / "a" / "broken.jpg").write_text("oops", encoding="utf-8")
    scan = scan_folder(tmp_path)  # 1 bad of 20 files: 5 %
    preflight(scan, max_bad_file_fraction=0.05)
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    error = refusal(tmp_path, max_bad_file_fraction=0.05)  # 2 of 21: 10 %
    assert "2 of 21 image files (10%)" in error.message
    assert "a/broken.jpg" in error.message and "b/empty.png (the file is empty)" in error.message


def test_unknown_task_is_a_programming_error(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    with pytest.raises(ValueError, match="task"):
        preflight(scan_folder(tmp_path), task="regression")
