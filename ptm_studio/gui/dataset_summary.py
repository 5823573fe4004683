"""The GUI's view of a dataset scan: classes with counts and examples, the split, problems with advice.

This is the only module that knows the shape of the core's ``DatasetScan``; panels use
:class:`DatasetSummary`, so a change in the core touches one function here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES_PER_CLASS = 24


@dataclass(frozen=True)
class ClassSummary:
    name: str
    train_count: int
    val_count: int
    example_paths: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.train_count + self.val_count


@dataclass(frozen=True)
class ProblemSummary:
    """One finding of the scan, in words: what is wrong, where, and what to do about it."""

    severity: str  # "error" blocks training, "warning" does not, "info" is a note
    title: str
    detail: str = ""
    advice: str = ""
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    classes: tuple[ClassSummary, ...]
    split_description: str
    problems: tuple[ProblemSummary, ...] = ()
    unlabeled_count: int = 0
    ignored: tuple[str, ...] = field(default=())

    @property
    def is_labeled(self) -> bool:
        return len(self.classes) > 0

    @property
    def num_train_images(self) -> int:
        if not self.is_labeled:
            return self.unlabeled_count
        return sum(item.train_count for item in self.classes)

    @property
    def num_images(self) -> int:
        return sum(item.total for item in self.classes) + (
            0 if self.is_labeled else self.unlabeled_count
        )

    @property
    def has_errors(self) -> bool:
        return any(problem.severity == "error" for problem in self.problems)


def scan_dataset(
    root: Path, *, progress: Any = None, should_stop: Any = None, validation_fraction: float = 0.2
) -> DatasetSummary:
    """Run the core scan on ``root`` and convert it; ``progress(done, total)``, ``should_stop() -> bool``."""
    import inspect

    from ptm_studio.core.data import scan_folder

    accepted = inspect.signature(scan_folder).parameters
    kwargs: dict[str, Any] = {}
    for name in accepted:
        if "progress" in name:
            kwargs[name] = progress
        elif "cancel" in name or "stop" in name:
            kwargs[name] = should_stop
    scan = scan_folder(Path(root), **kwargs)
    return summarize_scan(scan, validation_fraction=validation_fraction)


def summarize_scan(scan: Any, *, validation_fraction: float = 0.2) -> DatasetSummary:
    """Convert a core ``DatasetScan`` (classes, records, problems) into a DatasetSummary."""
    examples: dict[str, list[str]] = {name: [] for name in scan.class_names}
    for record in scan.records:
        bucket = examples.get(record.class_name)
        if bucket is not None and len(bucket) < EXAMPLES_PER_CLASS:
            bucket.append(str(record.path))
    has_val = scan.has_validation_split
    all_counts = scan.count_by_class()
    val_counts = scan.count_by_class("val") if has_val else {}
    classes = []
    for name in scan.class_names:
        total = all_counts.get(name, 0)
        if has_val:
            val = val_counts.get(name, 0)
        else:
            val = round(total * validation_fraction) if total > 1 else 0
        classes.append(ClassSummary(name, total - val, val, tuple(examples[name])))
    train = sum(item.train_count for item in classes)
    val = sum(item.val_count for item in classes)
    if not classes:
        split = "No labels: all images are used for pretraining."
    elif has_val:
        split = f"Split: your own train and val folders ({train} for training, {val} for checking)."
    else:
        split = (
            f"Split: {validation_fraction:.0%} of each class is kept aside to check the model "
            f"(about {train} for training, {val} for checking)."
        )
    problems = tuple(
        ProblemSummary(
            severity=problem.severity,
            title=problem.message,
            advice=problem.advice,
            paths=tuple(str(path) for path in problem.paths),
        )
        for problem in scan.problems
    )
    unlabeled = sum(1 for record in scan.records if record.class_name is None)
    return DatasetSummary(
        root=Path(scan.root),
        classes=tuple(classes),
        split_description=split,
        problems=problems,
        unlabeled_count=unlabeled if not classes else 0,
        ignored=tuple(str(path) for path in scan.ignored),
    )
