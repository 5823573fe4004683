"""Turns what a folder scan found into plain-language problems: what is wrong, what to do."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ptm_studio.core.data.manifest import ImageRecord, Problem

TINY_CLASS_SIZE = 5
# Files people keep next to their pictures on purpose; not worth an "other files" note.
_DOCUMENT_SUFFIXES = frozenset(
    {".txt", ".md", ".csv", ".tsv", ".json", ".yaml", ".yml", ".pdf", ".doc", ".docx", ".xls",
     ".xlsx", ".html", ".py", ".ipynb", ".zip"}
)  # fmt: skip
IMBALANCE_WARNING_RATIO = 3.0
_EXAMPLES = 3


@dataclass(frozen=True)
class ScanFacts:
    """The raw findings of a scan, before they become Problems."""

    root: Path
    layout: str
    class_names: tuple[str, ...]
    training_counts: dict[str, int]
    records: tuple[ImageRecord, ...]
    unreadable: tuple[tuple[Path, str], ...]
    identical_groups: tuple[tuple[Path, ...], ...] = ()
    multi_frame: tuple[Path, ...] = ()
    loose_images: tuple[Path, ...] = ()
    ignored_folders: tuple[Path, ...] = ()
    other_files: tuple[Path, ...] = ()
    skipped_links: tuple[Path, ...] = ()
    unreadable_folders: tuple[Path, ...] = ()


def imbalance_ratio(counts: dict[str, int]) -> float:
    """Largest over smallest class size among non-empty classes; 1.0 with fewer than two."""
    sizes = [count for count in counts.values() if count > 0]
    return max(sizes) / min(sizes) if len(sizes) >= 2 else 1.0


def find_problems(facts: ScanFacts) -> tuple[Problem, ...]:
    """Every problem worth showing, errors first, then warnings, then information."""
    problems = [
        *_name_problems(facts.root, facts.class_names, facts.records),
        *_unreadable_problems(facts),
        *_class_problems(facts),
        *_duplicate_problems(facts),
        *_layout_problems(facts),
    ]
    order = {"error": 0, "warning": 1, "info": 2}
    return tuple(sorted(problems, key=lambda problem: order[problem.severity]))


def is_not_text(name: str) -> bool:
    """Whether a file or folder name holds bytes that are not UTF-8 (Python keeps them as lone
    surrogates): such a name cannot be written into the run's files, nor shown faithfully."""
    return any("\udc80" <= character <= "\udcff" for character in name)


def _name_problems(
    root: Path, class_names: Sequence[str], records: Sequence[ImageRecord]
) -> list[Problem]:
    bad_classes = [root / name for name in class_names if is_not_text(name)]
    bad_files = [record.path for record in records if is_not_text(str(record.path))]
    paths = tuple(dict.fromkeys([*bad_classes, *bad_files]))
    if not paths:
        return []
    message = (
        f"{_count(len(paths), 'name is', 'names are')} not valid text (not UTF-8, e.g. written "
        f"by an old program or copied from an old disk): {_examples(list(paths), root)}."
    )
    advice = (
        "Rename these folders and files (any name you can type works). On Linux, "
        "`convmv -f latin1 -t utf8 -r --notest FOLDER` renames them all at once."
    )
    return [Problem("names_not_text", "error", message, advice, paths)]


def names_not_text(
    root: Path, class_names: Sequence[str], records: Sequence[ImageRecord]
) -> Problem | None:
    """The problem with names that are not text, or None when every name is text."""
    found = _name_problems(root, class_names, records)
    return found[0] if found else None


def show(path: Path, root: Path) -> str:
    """A path as the user knows it: relative to the chosen folder, with forward slashes."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _examples(paths: Sequence[Path], root: Path) -> str:
    shown = ", ".join(show(path, root) for path in paths[:_EXAMPLES])
    return shown + (f" and {len(paths) - _EXAMPLES} more" if len(paths) > _EXAMPLES else "")


def _count(count: int, one: str, several: str) -> str:
    return f"{count} {one if count == 1 else several}"


def _images(count: int) -> str:
    return _count(count, "image", "images")


def _unreadable_problems(facts: ScanFacts) -> list[Problem]:
    if not facts.unreadable:
        return []
    total = len(facts.records) + len(facts.unreadable)
    examples = "; ".join(
        f"{show(path, facts.root)} ({reason})" for path, reason in facts.unreadable[:_EXAMPLES]
    )
    extra = len(facts.unreadable) - _EXAMPLES
    more = f"; and {extra} more" if extra > 0 else ""
    return [
        Problem(
            "unreadable_files",
            "warning",
            f"{len(facts.unreadable)} of {total} image files cannot be read and will be left out: "
            f"{examples}{more}.",
            "Open these files in an image viewer. Re-save the ones you need as JPEG or PNG and "
            "delete the rest.",
            tuple(path for path, _ in facts.unreadable),
        )
    ]


def _class_problems(facts: ScanFacts) -> list[Problem]:
    if facts.layout == "unlabeled":
        return []
    problems = [_empty_or_tiny(facts, name) for name in facts.class_names]
    found = [problem for problem in problems if problem is not None]
    if len(facts.class_names) == 1:
        found.append(
            Problem(
                "single_class",
                "error",
                f"Only one class was found ('{facts.class_names[0]}'). A classifier needs at "
                "least two classes to tell apart.",
                single_class_advice(facts.root, facts.class_names[0], facts.records),
            )
        )
    ratio = imbalance_ratio(facts.training_counts)
    if ratio >= IMBALANCE_WARNING_RATIO:
        found.append(_imbalance_problem(facts, ratio))
    found.extend(_missing_validation(facts))
    return found


def single_class_advice(root: Path, name: str, records: Sequence[ImageRecord]) -> str:
    """What to do about a folder with one class: usually the user chose the folder one level
    above their dataset (flowers/ holding data/train/daisy/…), so the one "class" holds
    subfolders of its own; then say which folder to choose instead."""
    inner: set[str] = set()
    class_folder: Path | None = None
    for record in records:
        if record.class_name != name:
            continue
        relative = record.path.relative_to(root).parts
        at = relative.index(name) if name in relative[:-1] else -1
        if at >= 0 and len(relative) > at + 2:  # name/<subfolder>/…/picture
            class_folder = root.joinpath(*relative[: at + 1])
            inner.add(relative[at + 1])
    if class_folder is not None and len(inner) >= 2:
        listed = ", ".join(f"'{folder}'" for folder in sorted(inner)[:4])
        return (
            f"'{name}' holds folders of its own ({listed}): choose {class_folder} as the "
            "dataset folder instead."
        )
    return f"Add a second subfolder with pictures of another class next to '{name}'."


def _empty_or_tiny(facts: ScanFacts, name: str) -> Problem | None:
    count = facts.training_counts.get(name, 0)
    where = "train/" if facts.layout == "split_folders" else ""
    if count == 0:
        return Problem(
            "empty_class",
            "error",
            f"The class folder '{where}{name}' has no readable training images.",
            f"Add pictures to '{where}{name}', or move that folder out of {facts.root} if it is "
            "not meant to be a class.",
            (facts.root / where / name,),
        )
    if count < TINY_CLASS_SIZE:
        return Problem(
            "tiny_class",
            "warning",
            f"The class '{name}' has only {_images(count)} for training.",
            f"Add more pictures of '{name}': with fewer than {TINY_CLASS_SIZE} the model can "
            "hardly learn it, and its validation score means little.",
            (facts.root / where / name,),
        )
    return None


def _imbalance_problem(facts: ScanFacts, ratio: float) -> Problem:
    counts = {name: count for name, count in facts.training_counts.items() if count > 0}
    largest = max(counts, key=lambda name: (counts[name], name))
    smallest = min(counts, key=lambda name: (counts[name], name))
    return Problem(
        "class_imbalance",
        "warning",
        f"The classes are unbalanced: '{largest}' has {_images(counts[largest])}, "
        f"{ratio:.1f} times as many as '{smallest}' ({counts[smallest]}).",
        "Add pictures to the small classes if you can, or turn on 'weigh rare classes up' "
        "(class weights) so the model does not just learn to guess the big class.",
    )


def _missing_validation(facts: ScanFacts) -> list[Problem]:
    if facts.layout != "split_folders":
        return []
    validation = Counter(record.class_name for record in facts.records if record.split == "val")
    if not validation:
        return []
    missing = [name for name in facts.class_names if validation[name] == 0]
    if not missing:
        return []
    names = ", ".join(f"'{name}'" for name in missing)
    return [
        Problem(
            "class_without_validation",
            "warning",
            f"The validation folder has no images of {names}.",
            "Move a few pictures of each class into the validation folder, so the model is "
            "checked on every class.",
        )
    ]


def _duplicate_problems(facts: ScanFacts) -> list[Problem]:
    by_path = {record.path: record for record in facts.records}
    leaking: list[tuple[Path, ...]] = []
    within: list[tuple[Path, ...]] = []
    conflicting: list[tuple[Path, ...]] = []
    for group in facts.identical_groups:
        members = [by_path[path] for path in group if path in by_path]
        if len(members) < 2:
            continue
        splits = {record.split for record in members}
        (leaking if len(splits) > 1 else within).append(group)
        if len({record.class_name for record in members}) > 1:
            conflicting.append(group)
    problems = []
    if leaking:
        problems.append(_leak_problem(facts, leaking))
    if within:
        problems.append(_within_problem(facts, within))
    if conflicting:
        problems.append(_conflict_problem(facts, conflicting))
    return problems


def _pairs(groups: list[tuple[Path, ...]], root: Path) -> str:
    shown = [" = ".join(show(path, root) for path in group) for group in groups[:_EXAMPLES]]
    more = f" and {len(groups) - _EXAMPLES} more" if len(groups) > _EXAMPLES else ""
    return "; ".join(shown) + more


def _flatten(groups: list[tuple[Path, ...]]) -> tuple[Path, ...]:
    return tuple(path for group in groups for path in group)


def _leak_problem(facts: ScanFacts, groups: list[tuple[Path, ...]]) -> Problem:
    return Problem(
        "train_val_duplicates",
        "warning",
        f"{_count(len(groups), 'picture is', 'pictures are')} in both the training and the "
        f"validation/test folders (identical files): {_pairs(groups, facts.root)}.",
        "Delete the copy outside train/. The model has already seen these pictures, so the "
        "validation score would look better than it really is.",
        _flatten(groups),
    )


def _within_problem(facts: ScanFacts, groups: list[tuple[Path, ...]]) -> Problem:
    extra = sum(len(group) - 1 for group in groups)
    risk = (
        ""
        if facts.layout == "split_folders"
        else ", and when pictures are set aside for validation a copy may land there while "
        "the original is trained on"
    )
    return Problem(
        "duplicate_files",
        "warning",
        f"{_count(extra, 'image is an exact copy', 'images are exact copies')} of other images: "
        f"{_pairs(groups, facts.root)}.",
        f"Delete the extra copies: they make those pictures count twice{risk}.",
        _flatten(groups),
    )


def _conflict_problem(facts: ScanFacts, groups: list[tuple[Path, ...]]) -> Problem:
    return Problem(
        "conflicting_labels",
        "warning",
        f"{_count(len(groups), 'picture is', 'pictures are')} filed under different classes "
        "(identical files): "
        f"{_pairs(groups, facts.root)}.",
        "Decide which class each picture belongs to and delete the other copy.",
        _flatten(groups),
    )


# kind, severity, (message for one, message for several), advice. {n}: count, {e}: examples.
_PATH_PROBLEMS = {
    "images_at_root": (
        "warning",
        ("1 image is not inside any class folder and is left out: {e}.",
         "{n} images are not inside any class folder and are left out: {e}."),
        "Move each picture into the subfolder of its class.",
    ),
    "multi_frame": (
        "info",
        ("1 file holds several frames or pages; only the first is used: {e}.",
         "{n} files hold several frames or pages; only the first is used: {e}."),
        "If the other frames matter, save them as separate pictures.",
    ),
    "ignored_folders": (
        "info",
        ("1 folder was skipped (a system, hidden or unknown folder): {e}.",
         "{n} folders were skipped (system, hidden or unknown folders): {e}."),
        "Nothing to do, unless pictures you need are in them.",
    ),
    "other_files": (
        "info",
        ("1 file is not an image PTM Studio reads and was left out: {e}.",
         "{n} files are not images PTM Studio reads and were left out: {e}."),
        "PTM Studio reads JPEG, PNG, BMP, GIF, WebP and TIFF; convert other formats you need.",
    ),
    "skipped_links": (
        "info",
        ("1 shortcut (symbolic link) was not followed: {e}.",
         "{n} shortcuts (symbolic links) were not followed: {e}."),
        "Shortcuts that point outside the folder, are broken, or lead to pictures already "
        "counted are skipped. Copy the pictures into the folder if you need them.",
    ),
    "unreadable_folders": (
        "warning",
        ("1 folder could not be opened: {e}.", "{n} folders could not be opened: {e}."),
        "Check that you are allowed to read these folders.",
    ),
}  # fmt: skip


def _layout_problems(facts: ScanFacts) -> list[Problem]:
    found = {
        "images_at_root": facts.loose_images,
        "multi_frame": facts.multi_frame,
        "ignored_folders": facts.ignored_folders,
        "other_files": tuple(
            path for path in facts.other_files if path.suffix.lower() not in _DOCUMENT_SUFFIXES
        ),
        "skipped_links": facts.skipped_links,
        "unreadable_folders": facts.unreadable_folders,
    }
    problems = []
    for kind, paths in found.items():
        if paths:
            severity, (one, several), advice = _PATH_PROBLEMS[kind]
            template = one if len(paths) == 1 else several
            message = template.format(n=len(paths), e=_examples(paths, facts.root))
            problems.append(Problem(kind, severity, message, advice, paths))
    return problems
