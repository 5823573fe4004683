"""RunsPanel: every run on this computer, by a name people can read, and what can be done
with each: reopen it (its curves, predictions and evaluation come back), resume a stopped one,
start a new run from its settings, rename it, compare several side by side, open its folder,
write its settings to a file or read settings from one, and delete (to the system trash).

What a run is called, its state and what is allowed come from core's run catalogue; this panel
only lists them and asks. It never starts anything by itself: reopening and "start from" hand
the window a folder or settings (signals), and the window decides.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.config import ConfigError
from ptm_studio.core.run_catalog import (
    RunBusyError,
    RunEntry,
    TrashUnavailable,
    delete_permanently,
    delete_run,
    describe_runs,
    export_settings,
    import_settings,
    read_settings,
    rename_run,
)
from ptm_studio.gui import dialogs
from ptm_studio.gui.plain_text import plain_label, plain_tooltip
from ptm_studio.gui.wording import format_duration

COLUMNS = (
    ("Name", "The run's name: yours (double-click or F2 to rename) or made from its pictures, "
     "network and result."),
    ("Started", "When the run started."),
    ("Pictures", "The folder of pictures it trained on."),
    ("Network", "The network it trained."),
    ("Task", "Classifier (trained with labels) or pretraining (without labels)."),
    ("Status", "Finished, stopped (it can be resumed), training now, or failed."),
    ("Best", "The best validation accuracy it reached."),
    ("Time", "Time spent training."),
)  # fmt: skip
NAME_COLUMN = 0
SortRole = Qt.ItemDataRole.UserRole + 1  # what a column sorts by (a date, a number)
PathRole = Qt.ItemDataRole.UserRole + 2  # the run folder of the row

EMPTY_TEXT = (
    "No runs yet. Each training you start is kept here: reopen it later to see its curves and "
    "predictions, resume it, compare it with others or start a new run from its settings."
)
HINT_TEXT = (
    "Double-click a run to reopen it. Select several (Ctrl or Shift) to compare them. "
    "Runs are kept in {root}."
)
SETTINGS_FILTER = "PTM Studio settings (*.json);;All files (*)"


# The file dialogs, apart so that tests can answer them.
def choose_settings_destination(parent: QWidget, suggested: str) -> str:
    chosen, _ = QFileDialog.getSaveFileName(
        parent, "Save the run's settings", suggested, SETTINGS_FILTER
    )
    return chosen


def choose_settings_file(parent: QWidget, start: str) -> str:
    chosen, _ = QFileDialog.getOpenFileName(parent, "Open settings", start, SETTINGS_FILTER)
    return chosen


def open_folder(path: Path) -> bool:
    """Show the folder in the system's file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class SortableItem(QTableWidgetItem):
    """A cell that sorts by its SortRole value (a date, a number) rather than by its text."""

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.data(SortRole), other.data(SortRole)
        if mine is None or theirs is None or type(mine) is not type(theirs):
            return (mine is None, self.text()) < (theirs is None, other.text())
        return bool(mine < theirs)


class RunsPanel(QWidget):
    reopen_requested = Signal(object)
    """A RunEntry to show again: its curves, predictions and evaluation."""
    resume_requested = Signal(object)
    """The Path of a stopped run to continue."""
    settings_chosen = Signal(object, str)
    """(RunConfig, where they came from): settings for the next run, to show in the window."""
    compare_requested = Signal(object)
    """A list of RunEntry to compare side by side."""
    run_deleted = Signal(object)
    """The Path of a run that was moved to the trash (or deleted)."""

    def __init__(self, runs_root: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs_root = runs_root
        self.entries: dict[Path, RunEntry] = {}
        self.is_running = False
        self._is_stale = True  # the list is read when the tab shows it
        self.table = self._build_table()
        self.empty_label = plain_label(EMPTY_TEXT)
        self.hint_label = plain_label("")
        self.hint_label.setObjectName("hint")
        self.actions_ = self._build_actions()
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_buttons())
        layout.addWidget(self.empty_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint_label)
        self._update_actions()

    # ------------------------------------------------------------------ building
    def _build_table(self) -> QTableWidget:
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels([name for name, _tip in COLUMNS])
        for column, (_name, tip) in enumerate(COLUMNS):
            header_item = table.horizontalHeaderItem(column)
            if header_item is not None:
                header_item.setToolTip(plain_tooltip(tip))
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)  # F2 renames
        table.verticalHeader().hide()
        table.setAlternatingRowColors(True)
        table.setWordWrap(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME_COLUMN, QHeaderView.ResizeMode.Stretch)
        table.setSortingEnabled(True)
        table.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # newest first
        table.itemSelectionChanged.connect(self._update_actions)
        table.itemChanged.connect(self._on_item_changed)
        table.cellDoubleClicked.connect(lambda _row, _column: self.reopen_selected())
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        return table

    def _build_actions(self) -> dict[str, QAction]:
        made: dict[str, QAction] = {}
        for key, text, tip, slot in (
            ("reopen", "Reopen", "Show this run's curves, predictions and evaluation again.",
             self.reopen_selected),
            ("resume", "Resume", "Continue a stopped run from its last save.",
             self.resume_selected),
            ("start_from", "Use its settings",
             "Put this run's settings in the window, for a new run (press Start when ready).",
             self.use_selected_settings),
            ("compare", "Compare", "Overlay the curves of the selected runs and show their "
             "settings side by side, differences marked.", self.compare_selected),
            ("rename", "Rename", "Give the run a name of your own (F2).", self.rename_selected),
            ("open_folder", "Open folder", "Show the run's folder in the file manager.",
             self.open_selected_folder),
            ("export", "Save settings…", "Write this run's settings to a file, to start another "
             "run from them (here or with ptm-studio train --config).", self.export_selected),
            ("import", "Open settings…", "Read settings from a file into the window, for a new "
             "run.", self.import_settings_file),
            ("delete", "Delete…", "Move the selected runs to the system trash (you are asked "
             "first).", self.delete_selected),
            ("refresh", "Refresh", "List the runs again.", self.refresh),
        ):  # fmt: skip
            action = QAction(text, self)
            action.setToolTip(plain_tooltip(tip))
            action.triggered.connect(slot)
            made[key] = action
        made["delete"].setShortcut(QKeySequence.StandardKey.Delete)
        made["delete"].setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        for key in ("reopen", "resume", "start_from", "compare", "rename", "open_folder",
                    "export", "delete"):  # fmt: skip
            self.table.addAction(made[key])
        return made

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        for key in ("reopen", "resume", "start_from", "compare", "rename", "open_folder",
                    "export", "import", "delete"):  # fmt: skip
            button = QToolButton()
            button.setDefaultAction(self.actions_[key])
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setObjectName(f"runs_{key}")
            row.addWidget(button)
        row.addStretch(1)
        refresh = QToolButton()
        refresh.setDefaultAction(self.actions_["refresh"])
        row.addWidget(refresh)
        return row

    # ------------------------------------------------------------------ listing
    def showEvent(self, event: QShowEvent) -> None:
        """The runs are read when the tab is shown (not while the window starts)."""
        super().showEvent(event)
        if self._is_stale:
            self.refresh()

    def mark_changed(self) -> None:
        """Runs were added or changed: list them again now if shown, else when next shown."""
        if self.isVisible():
            self.refresh()
        else:
            self._is_stale = True

    @Slot()
    def refresh(self) -> None:
        """List the runs again, keeping the selection."""
        self._is_stale = False
        selected = set(self.selected_paths())
        entries = describe_runs(self.runs_root)
        self.entries = {entry.path: entry for entry in entries}
        table = self.table
        with QSignalBlocker(table):
            table.setSortingEnabled(False)
            table.setRowCount(len(entries))
            for row, entry in enumerate(entries):
                self._fill_row(row, entry)
            table.setSortingEnabled(True)
            table.clearSelection()
            for row in range(table.rowCount()):
                if self._row_path(row) in selected:
                    table.selectRow(row)
        self.empty_label.setVisible(not entries)
        self.table.setVisible(bool(entries))
        root = self.runs_root
        if root is None:
            from ptm_studio.core.locations import default_runs_root

            root = default_runs_root()
        self.hint_label.setText(HINT_TEXT.format(root=root) if entries else "")
        self._update_actions()

    def _fill_row(self, row: int, entry: RunEntry) -> None:
        best = entry.best_accuracy
        cells: list[tuple[str, Any]] = [
            (entry.title, entry.title.lower()),
            (_date_text(entry.created), entry.created.timestamp() if entry.created else None),
            (entry.data_name, entry.data_name.lower()),
            (entry.network, entry.network.lower()),
            (entry.objective, entry.objective),
            (entry.state_words, entry.state_words),
            ("–" if entry.is_pretraining or best is None else f"{100 * best:.1f} %",
             None if entry.is_pretraining else best),
            (format_duration(entry.duration_seconds)
             if entry.duration_seconds is not None else "–", entry.duration_seconds),
        ]  # fmt: skip
        for column, (text, sort_key) in enumerate(cells):
            item = SortableItem(text)
            item.setData(SortRole, sort_key)
            item.setData(PathRole, str(entry.path))
            flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled
            if column == NAME_COLUMN and entry.state != "damaged":
                flags |= Qt.ItemFlag.ItemIsEditable
            item.setFlags(flags)
            item.setToolTip(plain_tooltip(self._row_tip(entry)))
            self.table.setItem(row, column, item)

    @staticmethod
    def _row_tip(entry: RunEntry) -> str:
        lines = [entry.title, f"Folder: {entry.path}"]
        if entry.info.data_dir:
            lines.append(f"Pictures: {entry.info.data_dir}")
        if entry.info.problem:
            lines.append(f"Damaged: {entry.info.problem}")
        return "\n".join(lines)

    def _row_path(self, row: int) -> Path | None:
        item = self.table.item(row, NAME_COLUMN)
        value = item.data(PathRole) if item is not None else None
        return Path(value) if value else None

    def selected_paths(self) -> list[Path]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [path for row in rows if (path := self._row_path(row)) is not None]

    def selected_entries(self) -> list[RunEntry]:
        return [self.entries[path] for path in self.selected_paths() if path in self.entries]

    def select_runs(self, paths: list[Path]) -> None:
        """Select these runs (the others are unselected)."""
        wanted = {Path(path) for path in paths}
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row in range(self.table.rowCount()):
            if self._row_path(row) in wanted:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def set_running(self, is_running: bool) -> None:
        """While a run trains, nothing here may start another or change the window's
        settings; the list is read again when a run starts or ends."""
        self.is_running = is_running
        self.mark_changed()
        self._update_actions()

    @Slot()
    def _update_actions(self) -> None:
        chosen = self.selected_entries()
        one = chosen[0] if len(chosen) == 1 else None
        usable = one is not None and one.state != "damaged"
        idle = not self.is_running
        actions = self.actions_
        actions["reopen"].setEnabled(idle and usable)
        actions["resume"].setEnabled(idle and one is not None and one.can_resume)
        actions["start_from"].setEnabled(idle and usable)
        actions["compare"].setEnabled(len(chosen) >= 2)
        actions["rename"].setEnabled(usable)
        actions["open_folder"].setEnabled(one is not None)
        actions["export"].setEnabled(usable)
        actions["import"].setEnabled(idle)
        actions["delete"].setEnabled(bool(chosen) and all(e.state != "running" for e in chosen))

    # ------------------------------------------------------------------ verbs
    def _one_selected(self) -> RunEntry | None:
        chosen = self.selected_entries()
        return chosen[0] if len(chosen) == 1 else None

    @Slot()
    def reopen_selected(self) -> None:
        entry = self._one_selected()
        if entry is not None and entry.state != "damaged" and not self.is_running:
            self.reopen_requested.emit(entry)

    @Slot()
    def resume_selected(self) -> None:
        entry = self._one_selected()
        if entry is not None and entry.can_resume and not self.is_running:
            self.resume_requested.emit(entry.path)

    @Slot()
    def use_selected_settings(self) -> None:
        entry = self._one_selected()
        if entry is None or self.is_running:
            return
        config = read_settings(entry.path)
        if config is None:
            dialogs.show_error(
                self,
                "The settings cannot be read",
                f"The settings of “{entry.title}” ({entry.path / 'config.json'}) could not be "
                "read; the file may be damaged. Choose another run.",
            )
            return
        self.settings_chosen.emit(config.for_another_run(), entry.title)

    @Slot()
    def compare_selected(self) -> None:
        chosen = self.selected_entries()
        if len(chosen) >= 2:
            self.compare_requested.emit(chosen)

    @Slot()
    def rename_selected(self) -> None:
        entry = self._one_selected()
        if entry is None:
            return
        for row in range(self.table.rowCount()):
            if self._row_path(row) == entry.path:
                item = self.table.item(row, NAME_COLUMN)
                if item is not None:
                    self.table.setCurrentItem(item)
                    self.table.editItem(item)
                return

    def rename(self, path: Path, name: str) -> None:
        """Give the run this name ("" goes back to the made one) and list it again."""
        try:
            rename_run(path, name)
        except OSError as error:
            dialogs.show_error(
                self,
                "Could not rename the run",
                f"PTM Studio could not write the name into {path}. The run is unchanged.",
                str(error),
            )
        self.refresh()

    @Slot(QTableWidgetItem)
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != NAME_COLUMN:
            return
        path = item.data(PathRole)
        entry = self.entries.get(Path(path)) if path else None
        if entry is None or item.text() == entry.title:
            return
        # After the editor has handed its text over: listing again replaces this very item.
        QTimer.singleShot(0, self, partial(self.rename, entry.path, item.text()))

    @Slot()
    def open_selected_folder(self) -> None:
        entry = self._one_selected()
        if entry is not None and not open_folder(entry.path):
            dialogs.show_info(
                self, "Could not open the folder", f"The run's folder is {entry.path}."
            )

    @Slot()
    def export_selected(self) -> None:
        entry = self._one_selected()
        if entry is None:
            return
        suggested = str(Path.home() / f"{_file_name(entry.title)}.json")
        destination = choose_settings_destination(self, suggested)
        if not destination:
            return
        try:
            written = export_settings(entry.path, destination)
        except (OSError, ValueError) as error:
            dialogs.show_error(
                self,
                "Could not save the settings",
                f"The settings of “{entry.title}” could not be written to {destination}. "
                "Check that the folder exists and can be written to.",
                str(error),
            )
            return
        dialogs.show_info(
            self,
            "Settings saved",
            f"The settings of “{entry.title}” are in {written}. Open them here with "
            "“Open settings…”, or train with them: ptm-studio train --config "
            f'"{written}"',
        )

    @Slot()
    def import_settings_file(self) -> None:
        if self.is_running:
            return
        chosen = choose_settings_file(self, str(Path.home()))
        if not chosen:
            return
        try:
            config = import_settings(chosen)
        except (ConfigError, OSError, ValueError) as error:
            dialogs.show_error(
                self,
                "These settings cannot be used",
                f"{chosen} could not be read as PTM Studio settings: {error}",
            )
            return
        self.settings_chosen.emit(config, Path(chosen).name)

    @Slot()
    def delete_selected(self) -> None:
        chosen = [entry for entry in self.selected_entries() if entry.state != "running"]
        if not chosen:
            return
        names = "\n".join(f"• {entry.title}" for entry in chosen[:10])
        more = f"\n… and {len(chosen) - 10} more" if len(chosen) > 10 else ""
        what = "this run" if len(chosen) == 1 else f"these {len(chosen)} runs"
        if not dialogs.ask_yes_no(
            self,
            "Delete runs?",
            f"Move {what} to the trash?\n\n{names}{more}\n\nTheir curves, models and "
            "predictions go with them; you can restore them from the trash.",
        ):
            return
        for entry in chosen:
            if self._delete(entry):
                self.run_deleted.emit(entry.path)
        self.refresh()

    def _delete(self, entry: RunEntry) -> bool:
        try:
            delete_run(entry.path)
            return True
        except RunBusyError as error:
            dialogs.show_error(self, "This run is being trained now", str(error))
            return False
        except TrashUnavailable as error:
            if not dialogs.ask_yes_no(
                self,
                "No trash for this folder",
                f"“{entry.title}” cannot be moved to a trash here ({error}). Delete it for "
                "good instead? This cannot be undone.",
            ):
                return False
        try:
            delete_permanently(entry.path)
            return True
        except (OSError, RunBusyError) as error:
            dialogs.show_error(
                self,
                "Could not delete the run",
                f"PTM Studio could not delete {entry.path}. Some of its files may be open in "
                "another program.",
                str(error),
            )
            return False


def _date_text(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "–"


def _file_name(title: str) -> str:
    """A run's name as a file name: no characters that file systems refuse."""
    kept = "".join(c if c.isalnum() or c in " -_." else "_" for c in title.replace(" · ", " - "))
    return " ".join(kept.split()).strip(" .") or "settings"
