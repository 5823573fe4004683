"""Refuses data that cannot train before training starts, with a message saying what to fix."""

from __future__ import annotations

from ptm_studio.core.data.manifest import DatasetError, DatasetScan
from ptm_studio.core.data.problems import names_not_text, show, single_class_advice

_EXAMPLES = 3


def preflight(
    scan: DatasetScan,
    *,
    task: str = "finetune",
    validation_fraction: float = 0.2,
    max_bad_file_fraction: float = 0.05,
) -> None:
    """Raise DatasetError when ``scan`` cannot be used for ``task`` ("finetune" or "pretrain").

    Pretraining needs readable pictures only; finetuning also needs at least two classes, each
    with pictures, and enough of them to keep one aside for validation when there is no val/.
    """
    if task not in ("finetune", "pretrain"):
        raise ValueError(f"task must be 'finetune' or 'pretrain', not {task!r}")
    _check_some_images(scan)
    _check_names(scan)
    _check_bad_files(scan, max_bad_file_fraction)
    if task == "pretrain":
        return
    _check_labelled(scan)
    _check_classes(scan, validation_fraction)


def _check_some_images(scan: DatasetScan) -> None:
    if scan.records:
        return
    if scan.unreadable:
        raise DatasetError(
            f"None of the {len(scan.unreadable)} image files in {scan.root} can be read "
            f"({_bad_examples(scan)}).",
            "Open a few in an image viewer to see what is wrong, and re-save them as JPEG or PNG.",
        )
    raise DatasetError(
        f"No pictures were found in {scan.root}.",
        "Choose the folder that holds your pictures (JPEG, PNG, BMP, GIF, WebP or TIFF files).",
    )


def _check_names(scan: DatasetScan) -> None:
    problem = names_not_text(scan.root, scan.class_names, scan.records)
    if problem is not None:
        raise DatasetError(problem.message, problem.advice)


def _check_bad_files(scan: DatasetScan, max_bad_file_fraction: float) -> None:
    bad_fraction = len(scan.unreadable) / scan.total_files if scan.total_files else 0.0
    if bad_fraction <= max_bad_file_fraction:
        return
    raise DatasetError(
        f"{len(scan.unreadable)} of {scan.total_files} image files ({bad_fraction:.0%}) cannot "
        f"be read, more than the {max_bad_file_fraction:.0%} allowed: {_bad_examples(scan)}.",
        "Fix or delete the broken files (the scan lists each one and why), or raise the "
        "allowed share of bad files in the data settings.",
    )


def _bad_examples(scan: DatasetScan) -> str:
    shown = "; ".join(
        f"{show(path, scan.root)} ({reason})" for path, reason in scan.unreadable[:_EXAMPLES]
    )
    extra = len(scan.unreadable) - _EXAMPLES
    return shown + (f"; and {extra} more" if extra > 0 else "")


def _check_labelled(scan: DatasetScan) -> None:
    if scan.layout == "unlabeled" or not scan.class_names:
        raise DatasetError(
            f"The pictures in {scan.root} are not sorted into classes. Finetuning needs one "
            "subfolder per class (for example cats/ and dogs/), each holding its pictures.",
            "Make one subfolder per class and move each picture into its class, or choose "
            "pretraining, which learns from unlabelled pictures.",
        )
    if len(scan.class_names) == 1:
        name = scan.class_names[0]
        raise DatasetError(
            f"Only one class was found ('{name}'). A classifier needs at least two classes to "
            "tell apart.",
            single_class_advice(scan.root, name, scan.records),
        )


def _check_classes(scan: DatasetScan, validation_fraction: float) -> None:
    pool = "train" if scan.layout == "split_folders" else "unassigned"
    counts = scan.count_by_class(pool)
    where = "train/" if scan.layout == "split_folders" else ""
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        names = ", ".join(f"'{where}{name}'" for name in empty)
        raise DatasetError(
            f"These class folders have no readable training pictures: {names}.",
            "Add pictures to them, or move the folders out of the dataset folder if they are "
            "not meant to be classes.",
        )
    if scan.has_validation_split or validation_fraction <= 0:
        return
    single = [name for name, count in counts.items() if count < 2]
    if single:
        names = ", ".join(f"'{name}'" for name in single)
        raise DatasetError(
            f"These classes have only one picture: {names}. Each class needs at least two, one "
            "to train on and one to check the model with.",
            "Add more pictures to these classes (ten or more each is better), or make a val/ "
            "folder with your own validation pictures.",
        )
