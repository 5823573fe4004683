"""Lists the files of a dataset folder: junk skipped, symbolic links followed once, inside only.

Real folders are walked first and linked folders afterwards, so a link can never claim a folder
(and label its images) before the folder itself is seen, and a link back up the tree is simply a
folder already visited: no loops, no duplicates.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ptm_studio.core.data.loader import has_image_extension
from ptm_studio.core.data.manifest import ScanCancelled

# Compared in lower case. Names starting with "." (.DS_Store, .git, ._x.jpg AppleDouble files,
# .ipynb_checkpoints, .Trash) are junk anyway; these are the other usual suspects.
JUNK_NAMES = frozenset(
    {
        "thumbs.db",
        "desktop.ini",
        "__macosx",
        "__pycache__",
        "$recycle.bin",
        "system volume information",
        "@eadir",  # Synology thumbnail folders
    }
)

_CANCEL_CHECK_EVERY = 64
PROGRESS_EVERY = 512  # files between two progress reports, unless asked otherwise


def is_junk_name(name: str) -> bool:
    """Files and folders that are never images or classes: hidden, system and thumbnail caches."""
    return name.startswith(".") or name.lower() in JUNK_NAMES


class ProgressReporter:
    """Calls the user's progress callback at a modest rate and raises ScanCancelled when asked."""

    def __init__(
        self,
        on_progress: Callable[[int, int | None], None] | None,
        should_cancel: Callable[[], bool] | None,
        *,
        report_every: int = PROGRESS_EVERY,
    ) -> None:
        self._on_progress = on_progress
        self._should_cancel = should_cancel
        self._report_every = max(1, report_every)

    def check_cancel(self) -> None:
        if self._should_cancel is not None and self._should_cancel():
            raise ScanCancelled("The folder scan was cancelled.")

    def step(self, done: int, total: int | None, *, force: bool = False) -> None:
        """Report ``done`` of ``total``; checks for cancel every few steps."""
        if force or done % _CANCEL_CHECK_EVERY == 0:
            self.check_cancel()
        if self._on_progress is not None and (force or done % self._report_every == 0):
            self._on_progress(done, total)


@dataclass(frozen=True)
class FoundFile:
    """An image candidate. ``relative`` is its path below the root; ``real`` is its resolved
    location as (folder, name), kept apart because joining them for 100k files is slow."""

    path: Path
    relative: tuple[str, ...]
    real: tuple[Path, str]
    size: int | None
    via_link: bool
    modified_ns: int | None = None  # last modification, for telling an unchanged folder


@dataclass
class Listing:
    """Everything one walk found, in a deterministic order."""

    files: list[FoundFile] = field(default_factory=list)
    folders: list[tuple[str, ...]] = field(default_factory=list)
    junk: list[Path] = field(default_factory=list)
    junk_folders: list[Path] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)
    skipped_links: list[Path] = field(default_factory=list)
    unreadable_folders: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Folder:
    path: Path
    relative: tuple[str, ...]
    real: Path
    via_link: bool


def list_tree(root: Path, progress: ProgressReporter) -> Listing:
    """Walk ``root`` (already absolute) and sort what is there into a Listing."""
    return _Walker(root, progress).walk()


def fingerprint(listing: Listing) -> str:
    """A digest of the folders and picture files (names, sizes, modification times): equal
    fingerprints mean nothing a scan looks at changed, without opening a single picture."""
    digest = hashlib.sha256()
    for folder in listing.folders:
        digest.update(("d\0" + "/".join(folder) + "\n").encode("utf-8", "surrogateescape"))
    for found in listing.files:
        line = f"f\0{'/'.join(found.relative)}\0{found.size}\0{found.modified_ns}\n"
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


class _Walker:
    def __init__(self, root: Path, progress: ProgressReporter) -> None:
        self.real_root = root.resolve()
        self.progress = progress
        self.listing = Listing()
        self.visited = {self.real_root}
        self.pending = deque([_Folder(root, (), self.real_root, False)])
        self.linked: deque[tuple[Path, tuple[str, ...]]] = deque()

    def walk(self) -> Listing:
        while self.pending or self.linked:
            if self.pending:
                self._list_folder(self.pending.popleft())
            else:
                self._follow_link(*self.linked.popleft())
        return self.listing

    def _follow_link(self, link: Path, relative: tuple[str, ...]) -> None:
        target = self._resolve_inside(link)
        if target is None or target in self.visited:
            self.listing.skipped_links.append(link)
            return
        self.visited.add(target)
        self.pending.append(_Folder(link, relative, target, True))

    def _list_folder(self, folder: _Folder) -> None:
        # Listed even when it cannot be opened: a class folder that cannot be read must show up
        # as an empty class (and stop training), not silently vanish from the class list.
        if folder.relative:
            self.listing.folders.append(folder.relative)
        try:
            with os.scandir(folder.path) as scanned:
                entries = sorted(scanned, key=lambda entry: entry.name)
        except OSError:
            self.listing.unreadable_folders.append(folder.path)
            return
        for entry in entries:
            self._add_entry(folder, entry)

    def _add_entry(self, folder: _Folder, entry: os.DirEntry[str]) -> None:
        path, relative = folder.path / entry.name, (*folder.relative, entry.name)
        if is_junk_name(entry.name):
            self.listing.junk.append(path)
            if entry.is_dir(follow_symlinks=False):
                self.listing.junk_folders.append(path)
        elif entry.is_symlink():
            self._add_link(entry, path, relative)
        elif entry.is_dir(follow_symlinks=False):
            real = folder.real / entry.name
            self.visited.add(real)
            self.pending.append(_Folder(path, relative, real, folder.via_link))
        elif entry.is_file(follow_symlinks=False):
            self._add_file(entry, path, relative, (folder.real, entry.name), folder.via_link)

    def _add_link(self, entry: os.DirEntry[str], path: Path, relative: tuple[str, ...]) -> None:
        target = self._resolve_inside(path)
        if target is None:
            self.listing.skipped_links.append(path)
        elif target.is_dir():
            # Linked folders wait until every real folder is listed (see the module docstring).
            self.linked.append((path, relative))
        elif target.is_file():
            self._add_file(entry, path, relative, (target.parent, target.name), True)
        else:  # a device, a pipe: never an image
            self.listing.skipped_links.append(path)

    def _add_file(
        self,
        entry: os.DirEntry[str],
        path: Path,
        relative: tuple[str, ...],
        real: tuple[Path, str],
        via_link: bool,
    ) -> None:
        if not has_image_extension(entry.name):
            self.listing.other_files.append(path)
            return
        try:
            stat = entry.stat()
            size: int | None = stat.st_size
            modified_ns: int | None = stat.st_mtime_ns
        except OSError:
            size = modified_ns = None  # the loader will say what is wrong with the file
        self.listing.files.append(FoundFile(path, relative, real, size, via_link, modified_ns))
        self.progress.step(len(self.listing.files), None)

    def _resolve_inside(self, link: Path) -> Path | None:
        """The link's resolved target if it stays inside the root, else None (never leave it)."""
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):  # broken link, or links pointing at each other
            return None
        inside = target == self.real_root or target.is_relative_to(self.real_root)
        return target if inside else None
