"""DatasetPanel: choose a folder (dialog or drag-and-drop), scan it in the background, show what is in it.

Shows classes with counts (and a bar per class), example thumbnails of the selected class, the
split the run will use (the core's own split, with the settings' validation share), and the
problems found with what to do about each, first of all anything that keeps the folder from
training with the settings (the core's own check before a run). A folder with no class
subfolders switches the task to pretraining, and a folder with classes switches it back
(:class:`FolderTask`: only a switch PTM Studio made, never the user's own choice), with a
notice saying so. The folder is a setting (``data.data_dir``): the panel scans whatever folder
the settings name, whoever chose it (the user, a resumed run, the last session). The moment
another folder is named, what described the previous one is cleared and the panel is not ready
(``readiness_changed``) until the new one has been looked at and can train.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data.manifest import DatasetError
from ptm_studio.gui import dialogs, theme
from ptm_studio.gui.dataset_summary import (
    DatasetSummary,
    ScanFunction,
    SplitSettings,
    scan_dataset,
    summarize_scan,
)
from ptm_studio.gui.device_probe import demo_folder
from ptm_studio.gui.jobs.job import Job, JobContext
from ptm_studio.gui.panels.dataset_words import (
    blocker_of,
    describe_counts,
    describe_folder,
    fill_problem_tree,
    verdict_settings,
)
from ptm_studio.gui.panels.folder_task import FolderTask
from ptm_studio.gui.plain_text import plain_label, plain_tooltip
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.widgets.job_progress import JobProgress
from ptm_studio.gui.widgets.settings_binding import show_text
from ptm_studio.gui.widgets.thumbnail_grid import PathListModel, ThumbnailCache, ThumbnailGrid


def split_settings_of(config: RunConfig) -> SplitSettings:
    data = config.data
    return SplitSettings(data.validation_fraction, data.label_fraction, config.seed)


class DatasetPanel(QGroupBox):
    """``dataset_changed(DatasetSummary | None)`` fires when a scan ends (None when it failed);
    ``readiness_changed(bool)`` whenever whether the folder can train changes (False from the
    moment another folder is named until its scan says it can train with the settings)."""

    dataset_changed = Signal(object)
    readiness_changed = Signal(bool)

    def __init__(
        self,
        settings: SettingsModel | None = None,
        parent: QWidget | None = None,
        *,
        scan_function: ScanFunction | None = None,
    ) -> None:
        super().__init__("1. Images", parent)
        self.setAcceptDrops(True)
        self.settings = settings or SettingsModel(parent=self)
        self.summary: DatasetSummary | None = None
        self.blocker: DatasetError | None = None
        """Why the folder shown cannot train with the settings (None: it can, or none shown)."""
        self.is_checking = False
        self._readiness: tuple[bool, bool, str] | None = None  # last told (ready, checking, why)
        self._verdict_settings = verdict_settings(self.settings.config)
        self._is_describing = False
        self._scan_function = scan_function or scan_dataset
        self._scanned_folder = ""  # the folder the summary (or the scan under way) is of
        self._split = split_settings_of(self.settings.config)
        self.folder_task = FolderTask(self.settings, self)
        self.scan_job = Job("ptm-scan", self)
        self.scan_job.succeeded.connect(self.show_summary)
        self.scan_job.failed.connect(self._on_scan_failed)
        self.scan_job.cancelled.connect(self._on_scan_cancelled)

        self.folder_edit = QLineEdit()
        self.folder_edit.setReadOnly(True)
        self.folder_edit.setPlaceholderText("No folder chosen: choose one or drop it here")
        self.folder_edit.setToolTip("The folder of images. Put each class in its own subfolder.")
        self.choose_button = QPushButton(theme.icon("folder"), "Choose folder…")
        self.choose_button.setToolTip("Choose the folder with your images (Ctrl+O).")
        self.choose_button.clicked.connect(self.choose_folder)
        self.demo_button = QPushButton(theme.icon("demo"), "Demo images")
        self.demo_button.setToolTip("Use the small example dataset that comes with PTM Studio.")
        self.demo_button.clicked.connect(self.use_demo_images)
        self.scan_progress = JobProgress(
            self.scan_job,
            "pictures",
            starting_text="Looking for pictures…",
            counting_text="{done} pictures found so far…",
        )
        self.scan_progress.setToolTip("Looking at every picture in the folder.")
        self.scan_progress.cancel_button.setToolTip("Stop looking at the folder.")
        self.summary_label = plain_label(
            "Choose a folder of images to start. Tip: try the demo images."
        )
        self.notice_label = plain_label()
        self.notice_label.setObjectName("noticeBanner")
        self.notice_label.setToolTip(
            "PTM Studio changed a setting because of the folder chosen; it says which and why."
        )
        self.notice_label.setVisible(False)
        self.class_table = QTableWidget(0, 3)
        self.class_table.setHorizontalHeaderLabels(["Class", "Images", ""])
        self.class_table.setToolTip(
            "The classes found (one per subfolder) and how many images each has."
        )
        self.class_table.verticalHeader().setVisible(False)
        self.class_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.class_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.class_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.class_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.class_table.setMinimumHeight(110)
        self.class_table.itemSelectionChanged.connect(self._on_class_selected)
        self.thumbnail_cache = ThumbnailCache(64, self)
        self.thumbnail_model = PathListModel(self.thumbnail_cache, self)
        self.thumbnail_strip = ThumbnailGrid(QSize(76, 76), single_row=True)
        self.thumbnail_strip.setIconSize(QSize(64, 64))
        self.thumbnail_strip.setModel(self.thumbnail_model)
        self.thumbnail_strip.setToolTip("Examples from the selected class.")
        self.problem_tree = QTreeWidget()
        self.problem_tree.setHeaderLabels(["Found", "What to do"])
        self.problem_tree.setToolTip("Problems found in the folder, and what to do about each.")
        self.problem_tree.setWordWrap(True)
        self.problem_tree.setMinimumHeight(90)
        self.problem_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.problem_tree.header().resizeSection(0, 220)

        top = QHBoxLayout()
        top.addWidget(self.folder_edit, 1)
        top.addWidget(self.choose_button)
        top.addWidget(self.demo_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.scan_progress)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.notice_label)
        layout.addWidget(self.class_table, 2)
        layout.addWidget(self.thumbnail_strip)
        layout.addWidget(plain_label("Problems:"))
        layout.addWidget(self.problem_tree, 1)
        self.settings.changed.connect(self.show_settings)
        self.show_settings(self.settings.config)

    @property
    def folder(self) -> str:
        return self.settings.config.data.data_dir or ""

    @property
    def is_ready(self) -> bool:
        """The folder shown has been looked at and can train with the settings as they are."""
        return self.summary is not None and self.blocker is None and not self.is_checking

    @Slot()
    def choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Choose the folder with your images", self.folder
        )
        if chosen:
            self.set_folder(chosen)

    def set_folder(self, folder: str | Path) -> None:
        """Use ``folder``; choosing the folder already shown looks at it again."""
        folder = str(folder)
        if folder == self.folder:
            self._scan(folder)
        else:
            self.settings.set("data.data_dir", folder)  # show_settings scans it

    @Slot(object)
    def show_settings(self, config: RunConfig) -> None:
        folder = config.data.data_dir or ""
        show_text(self.folder_edit, folder)
        split = split_settings_of(config)
        split_changed = split != self._split
        self._split = split
        if folder != self._scanned_folder:
            self._scan(folder)
        elif split_changed and self.summary is not None and self.summary.scan is not None:
            self._show_summary(self.summary)  # the same pictures, split as the settings say
        elif verdict_settings(config) != self._verdict_settings:
            self._show_verdict()  # another task (or share of bad files) may decide it now

    def _scan(self, folder: str) -> None:
        self._scanned_folder = folder
        self._forget_shown_folder()
        if not folder:
            self.is_checking = False
            self.scan_job.cancel()  # a scan of the folder before would describe the wrong one
            self.summary_label.setText("Choose a folder of images to start.")
            self._tell_readiness()
            return
        self.is_checking = True
        self.summary_label.setText(f"Looking at {folder} … Start waits until it has been checked.")
        self._tell_readiness()
        scan, root = self._scan_function, Path(folder)

        def work(context: JobContext) -> DatasetSummary:
            return scan(root, progress=context.progress, should_stop=lambda: context.is_cancelled)

        self.scan_job.restart(work)

    def _forget_shown_folder(self) -> None:
        """Another folder is named: nothing of the previous one stays on screen."""
        self.summary = None
        self.blocker = None
        self.class_table.setRowCount(0)
        self.thumbnail_model.set_paths([])
        self.problem_tree.clear()
        self.notice_label.setVisible(False)

    @Slot()
    def use_demo_images(self) -> None:
        folder = demo_folder()
        if folder is None:
            dialogs.show_info(
                self,
                "Demo images missing",
                "The demo images are not installed with this copy of PTM Studio.",
            )
            return
        self.set_folder(folder)

    def open_first_folder(self, folder: Path | None, *, use_demo: bool) -> bool:
        """At launch: the folder of the last session, else the demo images (at first launch,
        or when asked); True when the demo images are shown."""
        if not use_demo and folder is not None and folder.is_dir():
            self.set_folder(folder)
            return False
        if demo_folder() is None:
            return False
        self.use_demo_images()
        return True

    @property
    def is_showing_demo(self) -> bool:
        demo = demo_folder()
        return self.summary is not None and demo is not None and Path(self.summary.root) == demo

    @Slot()
    def cancel_scan(self) -> None:
        self.scan_job.cancel()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_folder(event) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = self._dropped_folder(event)
        if folder is not None:
            event.acceptProposedAction()
            self.set_folder(folder)

    @staticmethod
    def _dropped_folder(event: Any) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        for url in urls:
            path = Path(url.toLocalFile())
            if url.isLocalFile() and path.is_dir():
                return str(path)
        return None

    @Slot(str, str)
    def _on_scan_failed(self, message: str, details: str) -> None:
        message = f"Could not read the folder {self._scanned_folder}: {message}"
        self.summary_label.setText(message)
        self.summary = None
        self.is_checking = False
        self._tell_readiness()
        self.dataset_changed.emit(None)
        dialogs.show_error(self, "Could not read the folder", message, details)

    @Slot()
    def _on_scan_cancelled(self) -> None:
        if not self.is_checking:
            return  # the folder was cleared: nothing to check any more
        self.is_checking = False
        self.summary_label.setText("Looking at the folder was cancelled. Choose it again to retry.")
        self._tell_readiness()

    @Slot(object)
    def show_summary(self, summary: DatasetSummary) -> None:
        """A folder has been looked at: show it, with the task it needs (and say so)."""
        self.is_checking = False
        self._show_summary(summary, follow_task=True)

    def _show_summary(self, summary: DatasetSummary, *, follow_task: bool = False) -> None:
        if summary.scan is not None and summary.split_settings != self._split:
            summary = summarize_scan(summary.scan, self._split)
        self.summary = summary
        self._is_describing = True  # readiness is told once the folder is described
        try:
            if follow_task:
                self.folder_task.follow(summary.scan)  # may switch the task, or switch it back
            self._fill_classes(summary)
            self._show_verdict()
            self.dataset_changed.emit(summary)
        finally:
            self._is_describing = False
        self._tell_readiness()

    def _show_verdict(self) -> None:
        """Whether the folder shown can train with the settings now, in the label and the
        problems; the task's notice; and tell the window."""
        summary = self.summary
        self._verdict_settings = verdict_settings(self.settings.config)
        if summary is not None:
            self.blocker = blocker_of(summary, self.settings.config)
            self.summary_label.setText(describe_folder(summary, self.blocker))
            fill_problem_tree(self.problem_tree, summary, self.blocker)
        notice = self.folder_task.notice
        self.notice_label.setText(notice)
        self.notice_label.setVisible(bool(notice) and summary is not None)
        self._tell_readiness()

    def _tell_readiness(self) -> None:
        if self._is_describing:
            return
        why = f"{self.blocker.message}" if self.blocker is not None else ""
        readiness = (self.is_ready, self.is_checking, why)
        if readiness != self._readiness:
            self._readiness = readiness
            self.readiness_changed.emit(self.is_ready)

    def _fill_classes(self, summary: DatasetSummary) -> None:
        self.class_table.setRowCount(len(summary.classes))
        largest = max((item.total for item in summary.classes), default=1) or 1
        for row, item in enumerate(summary.classes):
            name_item = QTableWidgetItem(item.name)  # table items are always plain text
            name_item.setToolTip(plain_tooltip(item.name))
            count_item = QTableWidgetItem(f"{item.total}")
            count_item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            count_item.setToolTip(describe_counts(item))
            self.class_table.setItem(row, 0, name_item)
            self.class_table.setItem(row, 1, count_item)
            bar = QProgressBar()
            bar.setRange(0, largest)
            bar.setValue(item.total)
            bar.setTextVisible(False)
            bar.setMaximumHeight(14)
            bar.setToolTip(count_item.toolTip())
            self.class_table.setCellWidget(row, 2, bar)
        if summary.classes:
            self.class_table.selectRow(0)
        else:
            self.thumbnail_model.set_paths([])

    @Slot()
    def _on_class_selected(self) -> None:
        if self.summary is None:
            return
        rows = {index.row() for index in self.class_table.selectedIndexes()}
        if not rows:
            return
        item = self.summary.classes[min(rows)]
        self.thumbnail_model.set_paths(list(item.example_paths))

    def shutdown(self) -> None:
        self.scan_job.cancel()
        self.scan_job.wait()
        self.thumbnail_cache.clear()
        self.thumbnail_cache.wait_for_done()


def _preview() -> None:  # pragma: no cover - manual preview
    import tempfile

    from ptm_studio.gui.panels._preview import make_sample_images, run_preview

    def build() -> DatasetPanel:
        panel = DatasetPanel()
        folder = Path(tempfile.mkdtemp(prefix="ptm-preview-"))
        make_sample_images(folder, size=48)
        panel.set_folder(folder)
        return panel

    run_preview(build, size=(520, 640))


if __name__ == "__main__":
    _preview()
