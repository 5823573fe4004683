"""The GUI's view of a dataset scan: classes with counts and examples, the split, problems with advice.

This is the only module that knows the shape of the core's ``DatasetScan``; panels use
:class:`DatasetSummary`, so a change in the core touches one function here. The counts come from
the core's own split (``split_for_run``): the window shows exactly the split the run will use.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptm_studio.core.config import DataConfig
from ptm_studio.core.data import DatasetScan, DataSplit, ImageRecord, split_for_run

EXAMPLES_PER_CLASS = 24
# Pictures between two progress reports: often enough that a small or slow folder shows how far
# it is (the Job passes on at most ten reports a second, however often they come).
SCAN_REPORT_EVERY = 16

ScanFunction = Callable[..., "DatasetSummary"]
"""``scan(root, *, progress, should_stop) -> DatasetSummary`` (tests pass their own)."""


@dataclass(frozen=True)
class SplitSettings:
    """The settings the split depends on (the rest of a run's settings do not change it)."""

    validation_fraction: float = DataConfig.validation_fraction
    label_fraction: float = DataConfig.label_fraction
    seed: int = 0


@dataclass(frozen=True)
class ClassSummary:
    name: str
    train_count: int
    val_count: int
    example_paths: tuple[str, ...] = ()
    test_count: int = 0  # pictures in a test/ folder: kept for a final check, never trained on
    unused_count: int = 0  # labelled pictures a label fraction below 1 leaves out of training

    @property
    def total(self) -> int:
        return self.train_count + self.val_count + self.test_count + self.unused_count


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
    scan: DatasetScan | None = field(default=None, compare=False, repr=False)
    """The core scan behind it: a run started from the window reuses it."""
    picture_facts: Any = field(default=None, compare=False, repr=False)
    """What Auto goes by (core.auto_recipe.PictureFacts), read in the scan's thread."""
    split_settings: SplitSettings = SplitSettings()

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
    root: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    split_settings: SplitSettings | None = None,
    report_every: int = SCAN_REPORT_EVERY,
) -> DatasetSummary:
    """Run the core scan on ``root`` and describe it; ``progress(done, total)`` (0 while the
    total is unknown) every ``report_every`` pictures, ``should_stop() -> bool``."""
    from ptm_studio.core.data import scan_folder

    def report(done: int, total: int | None) -> None:
        if progress is not None:
            progress(done, total or 0)

    from ptm_studio.core.auto_recipe import picture_facts

    scan = scan_folder(
        Path(root), on_progress=report, should_cancel=should_stop, report_every=report_every
    )
    summary = summarize_scan(scan, split_settings or SplitSettings())
    # A few dozen picture headers, here in the background: Auto needs them at a click.
    return dataclasses.replace(summary, picture_facts=picture_facts(scan))


def summarize_scan(scan: DatasetScan, settings: SplitSettings) -> DatasetSummary:
    """Describe a core ``DatasetScan`` with the split a run with ``settings`` uses."""
    split = split_for_run(
        scan,
        validation_fraction=settings.validation_fraction,
        label_fraction=settings.label_fraction,
        seed=settings.seed,
    )
    classes = _class_summaries(scan, split)
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
        classes=classes,
        split_description=_describe_split(scan, classes, settings),
        problems=problems,
        unlabeled_count=unlabeled if not classes else 0,
        ignored=tuple(str(path) for path in scan.ignored),
        scan=scan,
        split_settings=settings,
    )


def _class_summaries(scan: DatasetScan, split: DataSplit) -> tuple[ClassSummary, ...]:
    train, val, test = (_count(part) for part in (split.train, split.val, split.test))
    labelled = _count(scan.records)
    examples: dict[str, list[str]] = {name: [] for name in scan.class_names}
    for record in scan.records:
        bucket = examples.get(record.class_name or "")
        if bucket is not None and len(bucket) < EXAMPLES_PER_CLASS:
            bucket.append(str(record.path))
    summaries = []
    for name in scan.class_names:
        used = train[name] + val[name] + test[name]
        summaries.append(
            ClassSummary(
                name,
                train[name],
                val[name],
                tuple(examples[name]),
                test_count=test[name],
                unused_count=labelled[name] - used,
            )
        )
    return tuple(summaries)


def _count(records: tuple[ImageRecord, ...]) -> Counter[str]:
    return Counter(record.class_name for record in records if record.class_name is not None)


def _describe_split(
    scan: DatasetScan, classes: tuple[ClassSummary, ...], settings: SplitSettings
) -> str:
    if not classes:
        return "No labels: all images are used for pretraining."
    train = sum(item.train_count for item in classes)
    val = sum(item.val_count for item in classes)
    test = sum(item.test_count for item in classes)
    unused = sum(item.unused_count for item in classes)
    counts = f"{train} for training, {val} for checking"
    if test:
        counts += f", {test} in test/ for a final check only"
    if unused:
        counts += f", {unused} left out ({settings.label_fraction:.0%} of the labels are used)"
    if scan.has_validation_split:
        return f"Split: your own train and val folders ({counts})."
    return (
        f"Split: {settings.validation_fraction:.0%} of each class is kept aside to check the "
        f"model ({counts})."
    )
