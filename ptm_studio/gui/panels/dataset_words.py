"""What the images panel says about a folder: what is in it, what keeps it from training, its
problems with what to do about each, and the counts behind each class."""

from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data.manifest import DatasetError
from ptm_studio.core.planning import why_it_cannot_train
from ptm_studio.gui.dataset_summary import ClassSummary, DatasetSummary
from ptm_studio.gui.plain_text import plain_tooltip

SEVERITY_TEXT = {"error": "Must fix", "warning": "Check", "info": "Note"}
PATHS_SHOWN = 200  # files listed under a problem; the rest are counted


def verdict_settings(config: RunConfig) -> tuple[object, ...]:
    """The settings besides the split that decide whether a folder can train."""
    return (config.objective.task, config.data.max_bad_file_fraction)


def blocker_of(summary: DatasetSummary, config: RunConfig) -> DatasetError | None:
    """Why these pictures cannot train with ``config``: the core's check before a run."""
    if summary.scan is not None:
        return why_it_cannot_train(summary.scan, config)
    if summary.num_images == 0:  # a summary without its scan (a preview, a test)
        return DatasetError(f"No pictures were found in {summary.root}.")
    return None


def describe_folder(summary: DatasetSummary, blocker: DatasetError | None) -> str:
    """The line under the folder: what is in it, and what keeps it from training."""
    if summary.is_labeled:
        text = f"{len(summary.classes)} classes, {summary.num_images} images. {summary.split_description}"
    elif summary.num_images:
        text = (
            f"No class subfolders: {summary.unlabeled_count} images without labels. They can be "
            "used to pretrain (“Learn from unlabelled images” in step 3). To learn classes, put "
            "each class in its own subfolder."
        )
    else:
        text = ""
    if blocker is not None:
        text = f"{text}\n" if text else ""
        text += f"Cannot train on this yet: {blocker.message} {blocker.advice}".rstrip()
    return text


def describe_counts(item: ClassSummary) -> str:
    parts = [f"{item.train_count} for training", f"{item.val_count} for validation"]
    if item.test_count:
        parts.append(f"{item.test_count} in test/ (a final check, never trained on)")
    if item.unused_count:
        parts.append(f"{item.unused_count} not used (only part of the labels is used)")
    return ", ".join(parts)


def fill_problem_tree(
    tree: QTreeWidget, summary: DatasetSummary, blocker: DatasetError | None
) -> None:
    """The problems of the folder, first what keeps it from training (unless listed already)."""
    tree.clear()
    if blocker is not None and all(item.title != blocker.message for item in summary.problems):
        top = QTreeWidgetItem(
            tree, [f"{SEVERITY_TEXT['error']}: {blocker.message}", blocker.advice]
        )
        top.setToolTip(0, plain_tooltip(blocker.message))
        top.setToolTip(1, plain_tooltip(blocker.advice))
    if not summary.problems and blocker is None:
        QTreeWidgetItem(tree, ["No problems found.", ""])
        return
    for problem in summary.problems:
        top = QTreeWidgetItem(
            tree,
            [
                f"{SEVERITY_TEXT.get(problem.severity, problem.severity)}: {problem.title}",
                problem.advice,
            ],
        )
        top.setToolTip(0, plain_tooltip(problem.detail or problem.title))
        top.setToolTip(1, plain_tooltip(problem.advice))
        if problem.detail:
            QTreeWidgetItem(top, [problem.detail, ""])
        for path in problem.paths[:PATHS_SHOWN]:
            child = QTreeWidgetItem(top, [path, ""])
            child.setToolTip(0, plain_tooltip(path))
        if len(problem.paths) > PATHS_SHOWN:
            QTreeWidgetItem(top, [f"… and {len(problem.paths) - PATHS_SHOWN} more", ""])
