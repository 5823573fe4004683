"""scan_folder: layouts, junk, links, broken files, duplicates, progress and cancel (I1, I9-I13)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ptm_studio.core.data import DatasetError, ImageRecord, ScanCancelled, scan_folder
from ptm_studio.core.data.manifest import DatasetScan


def kinds(scan: DatasetScan) -> set[str]:
    return {problem.kind for problem in scan.problems}


def only_problem(scan: DatasetScan, kind: str):  # type: ignore[no-untyped-def]
    (problem,) = scan.problems_of_kind(kind)
    return problem


def labels(scan: DatasetScan) -> dict[str, str | None]:
    return {
        record.path.relative_to(scan.root).as_posix(): record.class_name for record in scan.records
    }


# --- layouts ----------------------------------------------------------------------------------


def test_class_folders(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"dogs": 6, "cats": 7})
    scan = scan_folder(tmp_path)
    assert scan.layout == "class_folders"
    assert scan.class_names == ("cats", "dogs")
    assert scan.count_by_class() == {"cats": 7, "dogs": 6}
    assert {record.split for record in scan.records} == {"unassigned"}
    assert [record.path for record in scan.records] == sorted(
        record.path for record in scan.records
    )
    assert not scan.has_validation_split
    assert scan.total_files == 13
    assert scan.imbalance_ratio == pytest.approx(7 / 6)
    assert scan.problems == ()
    assert scan.root == tmp_path


def test_train_and_val_folders(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path / "train", {"a": 6, "b": 5})
    make_dataset(tmp_path / "Validation", {"a": 2, "b": 2})
    scan = scan_folder(tmp_path)
    assert scan.layout == "split_folders"
    assert scan.class_names == ("a", "b")
    assert scan.count_by_class("train") == {"a": 6, "b": 5}
    assert scan.count_by_class("val") == {"a": 2, "b": 2}
    assert len(scan.records_in("train")) == 11
    assert scan.records_in("test") == ()
    assert scan.has_validation_split


def test_train_val_test_folders_in_any_letter_case(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path / "TRAIN", {"x": 5, "y": 5})
    make_dataset(tmp_path / "val", {"x": 1, "y": 1})
    make_dataset(tmp_path / "Test", {"x": 2, "y": 3})
    scan = scan_folder(tmp_path)
    assert scan.layout == "split_folders"
    assert scan.count_by_class("test") == {"x": 2, "y": 3}
    assert scan.count_by_class() == {"x": 8, "y": 9}
    assert "class_without_validation" not in kinds(scan)


def test_unlabeled_folder(tmp_path: Path, make_image) -> None:
    for index in range(4):
        make_image(tmp_path / f"img{index}.jpg")
    (tmp_path / "empty subfolder").mkdir()
    scan = scan_folder(tmp_path)
    assert scan.layout == "unlabeled"
    assert scan.class_names == ()
    assert len(scan.records) == 4
    assert all(record.class_name is None for record in scan.records)
    assert scan.imbalance_ratio == 1.0


def test_nested_subfolders_belong_to_their_class(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "cats" / "indoor" / "2023" / "a.png")
    make_image(tmp_path / "cats" / "b.png")
    make_image(tmp_path / "dogs" / "park" / "c.png")
    scan = scan_folder(tmp_path)
    assert labels(scan) == {
        "cats/b.png": "cats",
        "cats/indoor/2023/a.png": "cats",
        "dogs/park/c.png": "dogs",
    }


def test_unicode_spaces_and_mixed_case_extensions(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "rosé petals" / "Blüte 1.JPG")
    make_image(tmp_path / "rosé petals" / "花.JpEg")
    make_image(tmp_path / "tulip <b>red" / "x.TIFF")
    scan = scan_folder(tmp_path)
    assert scan.class_names == ("rosé petals", "tulip <b>red")
    assert scan.count_by_class() == {"rosé petals": 2, "tulip <b>red": 1}
    assert scan.unreadable == ()


def test_images_loose_at_the_root_are_left_out_with_a_warning(
    tmp_path: Path, make_dataset, make_image
) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    loose = make_image(tmp_path / "stray.png")
    scan = scan_folder(tmp_path)
    assert scan.layout == "class_folders"
    assert loose not in [record.path for record in scan.records]
    problem = only_problem(scan, "images_at_root")
    assert problem.severity == "warning"
    assert problem.paths == (loose,)
    assert "stray.png" in problem.message


def test_missing_folder_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        scan_folder(tmp_path / "nowhere")
    assert "does not exist" in caught.value.message
    assert caught.value.advice


# --- I1: unreadable files ----------------------------------------------------------------------


def test_bad_files_are_skipped_and_listed_by_path(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    empty = tmp_path / "a" / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "b" / "notes.jpg"
    text.write_text("not a picture", encoding="utf-8")
    apple_double = tmp_path / "a" / "._a_0.png"
    apple_double.write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 40)
    scan = scan_folder(tmp_path)
    assert dict(scan.unreadable) == {
        empty: "the file is empty",
        text: "not an image (or a format PTM Studio does not read)",
    }
    assert apple_double in scan.ignored
    assert scan.count_by_class() == {"a": 5, "b": 5}
    assert scan.total_files == 12
    problem = only_problem(scan, "unreadable_files")
    assert set(problem.paths) == {empty, text}
    assert "a/empty.jpg (the file is empty)" in problem.message


def test_without_verification_only_names_are_checked(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    scan = scan_folder(tmp_path, verify_images=False)
    assert scan.unreadable == ()
    assert scan.count_by_class() == {"a": 4, "b": 3}


def test_multi_frame_files_are_flagged_as_information(tmp_path: Path, make_dataset) -> None:
    from PIL import Image

    make_dataset(tmp_path, {"a": 5, "b": 5})
    frames = [Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 255, 0))]
    frames[0].save(tmp_path / "a" / "anim.gif", save_all=True, append_images=frames[1:])
    scan = scan_folder(tmp_path)
    problem = only_problem(scan, "multi_frame")
    assert problem.severity == "info"
    assert problem.paths == (tmp_path / "a" / "anim.gif",)
    assert scan.multi_frame_files == problem.paths
    assert scan.count_by_class()["a"] == 6


# --- I9: junk ----------------------------------------------------------------------------------


def test_junk_files_and_folders_are_ignored_never_classes(
    tmp_path: Path, make_dataset, make_image
) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    junk_folders = ["__MACOSX", ".git", ".ipynb_checkpoints", "@eaDir"]
    for name in junk_folders:
        make_image(tmp_path / name / "x.png")
    make_image(tmp_path / "a" / ".ipynb_checkpoints" / "y.png")
    junk_files = [
        tmp_path / ".DS_Store",
        tmp_path / "a" / "Thumbs.db",
        tmp_path / "b" / "desktop.ini",
    ]
    for path in junk_files:
        path.write_bytes(b"\x00junk")
    (tmp_path / "README.txt").write_text("my pictures", encoding="utf-8")
    scan = scan_folder(tmp_path)
    assert scan.class_names == ("a", "b")
    assert scan.count_by_class() == {"a": 5, "b": 5}
    assert scan.unreadable == ()
    for path in [*(tmp_path / name for name in junk_folders), *junk_files, tmp_path / "README.txt"]:
        assert path in scan.ignored
    problem = only_problem(scan, "ignored_folders")
    assert set(problem.paths) == {
        *(tmp_path / name for name in junk_folders),
        tmp_path / "a" / ".ipynb_checkpoints",
    }
    assert "other_files" not in kinds(scan)  # a README is expected, not worth a note


def test_unknown_folders_next_to_train_are_listed(tmp_path: Path, make_dataset, make_image) -> None:
    make_dataset(tmp_path / "train", {"a": 5, "b": 5})
    make_image(tmp_path / "old exports" / "a" / "z.png")
    make_image(tmp_path / "train" / "loose.png")
    (tmp_path / "train" / "a" / "scan.czi").write_bytes(b"ZISRAWFILE")
    scan = scan_folder(tmp_path)
    assert scan.class_names == ("a", "b")
    assert tmp_path / "old exports" in only_problem(scan, "ignored_folders").paths
    assert only_problem(scan, "images_at_root").paths == (tmp_path / "train" / "loose.png",)
    assert only_problem(scan, "other_files").paths == (tmp_path / "train" / "a" / "scan.czi",)


# --- I10: symbolic links -----------------------------------------------------------------------


def test_symlink_loops_do_not_hang_or_duplicate(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    os.symlink(tmp_path, tmp_path / "a" / "back to the top")
    os.symlink(tmp_path / "a", tmp_path / "a" / "itself")
    os.symlink(tmp_path / "b" / "loop1", tmp_path / "b" / "loop2")
    os.symlink(tmp_path / "b" / "loop2", tmp_path / "b" / "loop1")
    scan = scan_folder(tmp_path)
    assert scan.count_by_class() == {"a": 5, "b": 5}
    assert len({record.path.resolve() for record in scan.records}) == 10
    assert set(only_problem(scan, "skipped_links").paths) == {
        tmp_path / "a" / "back to the top",
        tmp_path / "a" / "itself",
        tmp_path / "b" / "loop1",
        tmp_path / "b" / "loop2",
    }


def test_links_across_classes_make_no_duplicates_or_mislabels(tmp_path: Path, make_dataset) -> None:
    files = make_dataset(tmp_path, {"a_cats": 5, "b_dogs": 5})
    # "a_cats" is walked first, so a naive walk would label these dogs as cats.
    os.symlink(files["b_dogs"][0], tmp_path / "a_cats" / "a_link_to_a_dog.png")
    os.symlink(tmp_path / "b_dogs", tmp_path / "a_cats" / "all the dogs")
    scan = scan_folder(tmp_path)
    assert scan.count_by_class() == {"a_cats": 5, "b_dogs": 5}
    assert labels(scan)["b_dogs/b_dogs_0.png"] == "b_dogs"
    assert "duplicate_files" not in kinds(scan)
    assert tmp_path / "a_cats" / "a_link_to_a_dog.png" in scan.ignored


def test_links_to_files_only_reachable_through_them_are_kept(
    tmp_path: Path, make_dataset, make_image
) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    hidden = make_image(tmp_path / ".stash" / "extra.png")
    os.symlink(hidden, tmp_path / "a" / "extra.png")
    scan = scan_folder(tmp_path)
    assert scan.count_by_class() == {"a": 6, "b": 5}


def test_links_pointing_outside_the_folder_are_not_followed(
    tmp_path: Path, make_dataset, make_image
) -> None:
    root = tmp_path / "data"
    make_dataset(root, {"a": 5, "b": 5})
    outside = make_image(tmp_path / "elsewhere" / "secret.png")
    os.symlink(outside, root / "a" / "secret.png")
    os.symlink(tmp_path / "elsewhere", root / "c")
    os.symlink(tmp_path / "nothing here", root / "b" / "broken.png")
    scan = scan_folder(root)
    assert scan.class_names == ("a", "b")
    assert scan.count_by_class() == {"a": 5, "b": 5}
    assert {root / "a" / "secret.png", root / "c", root / "b" / "broken.png"} <= set(scan.ignored)


def test_root_given_through_a_link_keeps_the_given_paths(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path / "real", {"a": 5, "b": 5})
    os.symlink(tmp_path / "real", tmp_path / "alias")
    scan = scan_folder(tmp_path / "alias")
    assert scan.count_by_class() == {"a": 5, "b": 5}
    assert all(record.path.is_relative_to(tmp_path / "alias") for record in scan.records)


# --- classes, duplicates -----------------------------------------------------------------------


def test_empty_and_tiny_classes_and_imbalance(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"big": 12, "small": 4})
    (tmp_path / "nothing yet").mkdir()
    scan = scan_folder(tmp_path)
    assert scan.class_names == ("big", "nothing yet", "small")
    assert scan.count_by_class()["nothing yet"] == 0
    assert scan.imbalance_ratio == 3.0
    assert only_problem(scan, "empty_class").severity == "error"
    assert "'nothing yet'" in only_problem(scan, "empty_class").message
    tiny = only_problem(scan, "tiny_class")
    assert tiny.severity == "warning" and "'small' has only 4 images" in tiny.message
    imbalance = only_problem(scan, "class_imbalance")
    assert "3.0 times" in imbalance.message and "'big'" in imbalance.message
    assert scan.problems[0].severity == "error"  # errors come first


def test_single_class_is_reported(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"only": 6})
    assert only_problem(scan_folder(tmp_path), "single_class").severity == "error"


def test_duplicates_within_a_split_and_across_classes(tmp_path: Path, make_dataset) -> None:
    files = make_dataset(tmp_path, {"a": 5, "b": 5})
    shutil.copy(files["a"][0], tmp_path / "a" / "copy of a0.png")
    shutil.copy(files["a"][1], tmp_path / "b" / "a1 filed as b.png")
    scan = scan_folder(tmp_path)
    duplicates = only_problem(scan, "duplicate_files")
    assert set(duplicates.paths) == {
        files["a"][0],
        tmp_path / "a" / "copy of a0.png",
        files["a"][1],
        tmp_path / "b" / "a1 filed as b.png",
    }
    assert "2 images are exact copies" in duplicates.message
    conflict = only_problem(scan, "conflicting_labels")
    assert set(conflict.paths) == {files["a"][1], tmp_path / "b" / "a1 filed as b.png"}


def test_same_picture_in_train_and_val_is_leakage(tmp_path: Path, make_dataset) -> None:
    train = make_dataset(tmp_path / "train", {"a": 5, "b": 5})
    make_dataset(tmp_path / "val", {"a": 1, "b": 1})
    leaked = tmp_path / "val" / "a" / "leaked.png"
    shutil.copy(train["a"][2], leaked)
    scan = scan_folder(tmp_path)
    problem = only_problem(scan, "train_val_duplicates")
    assert set(problem.paths) == {train["a"][2], leaked}
    assert problem.message.startswith("1 picture is in both the training and the validation")
    assert "train/a/a_2.png = val/a/leaked.png" in problem.message
    assert "duplicate_files" not in kinds(scan)


def test_equal_sizes_with_different_bytes_are_not_duplicates(tmp_path: Path) -> None:
    for name in ("a", "b"):
        for index in range(3):
            path = tmp_path / name / f"{index}.jpg"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(bytes([index]) + name.encode() * 20)
    scan = scan_folder(tmp_path, verify_images=False)
    assert "duplicate_files" not in kinds(scan)


# --- I12: progress, cancel, many files ----------------------------------------------------------


def test_progress_is_reported_from_listing_to_the_end(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    calls: list[tuple[int, int | None]] = []
    scan_folder(tmp_path, on_progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, None)
    assert calls[-1] == (10, 10)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_cancel_raises_scan_cancelled(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 5, "b": 5})
    with pytest.raises(ScanCancelled):
        scan_folder(tmp_path, should_cancel=lambda: True)
    polls = []

    def cancel_during_verification() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(ScanCancelled):
        scan_folder(tmp_path, should_cancel=cancel_during_verification)


def test_thousands_of_same_sized_files_are_scanned(tmp_path: Path) -> None:
    for class_index in range(4):
        folder = tmp_path / f"class {class_index}"
        folder.mkdir()
        for index in range(1500):
            # Same size, different bytes: the worst case for the duplicate finder.
            (folder / f"{index:05d}.jpg").write_bytes(
                index.to_bytes(4, "big") + bytes([class_index])
            )
    calls: list[tuple[int, int | None]] = []
    # Speed is measured in benchmarks, not here (these machines are noisy); this checks that
    # thousands of same-sized files are listed, compared and reported on correctly.
    scan = scan_folder(tmp_path, verify_images=False, on_progress=lambda *call: calls.append(call))
    assert len(scan.records) == 6000
    assert "duplicate_files" not in kinds(scan)
    assert (512, None) in calls and calls[-1] == (6000, 6000)


def test_records_are_image_records(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, {"a": 1, "b": 1})
    scan = scan_folder(tmp_path)
    assert scan.records == (
        ImageRecord(tmp_path / "a" / "a_0.png", "a", "unassigned"),
        ImageRecord(tmp_path / "b" / "b_0.png", "b", "unassigned"),
    )


def test_a_folder_that_cannot_be_opened_is_reported(
    tmp_path: Path, make_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ptm_studio.core.data import walk

    make_dataset(tmp_path, {"a": 5, "b": 5, "locked": 2})
    real_scandir = os.scandir

    def scandir_refusing_locked(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(walk.os, "scandir", scandir_refusing_locked)
    scan = scan_folder(tmp_path)
    problem = only_problem(scan, "unreadable_folders")
    assert problem.paths == (tmp_path / "locked",) and problem.severity == "warning"
    assert "empty_class" in kinds(scan)  # no pictures could be read from it


def test_a_class_missing_from_the_val_folder_is_a_warning(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path / "train", {"a": 5, "b": 5})
    make_dataset(tmp_path / "val", {"a": 2})
    problem = only_problem(scan_folder(tmp_path), "class_without_validation")
    assert problem.severity == "warning" and "'b'" in problem.message
