"""FolderTask: the task follows the folder only where PTM Studio chose it, and says so.

A folder of pictures without class folders can only pretrain, so choosing one switches
finetuning to pretraining; choosing a folder with classes afterwards undoes that switch. A task
the user chose (in the objective panel, or by resuming a run) is never changed. The decisions
are the core's (:func:`ptm_studio.core.planning.choose_task`); this keeps the automatic choice
between folders, writes it into the settings and puts it into words for the images panel.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Slot

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data.manifest import DatasetScan
from ptm_studio.core.planning import (
    TASK_RESTORED,
    TASK_SWITCH_KEPT,
    TASK_SWITCHED,
    TaskChoice,
    as_the_user_chose,
    choose_task,
    with_task,
)
from ptm_studio.gui.panels.objective_words import TASK_TEXT
from ptm_studio.gui.settings_model import SettingsModel


def task_name(task: str) -> str:
    """The task as the objective panel's Task box names it."""
    return TASK_TEXT.get(task, (task, ""))[0]


def describe_task_choice(choice: TaskChoice | None) -> str:
    """What the images panel says about the task the folder brought (empty: nothing to say)."""
    if choice is None:
        return ""
    if choice.change in (TASK_SWITCHED, TASK_SWITCH_KEPT) and choice.replaced is not None:
        return (
            f"This folder has pictures but no class subfolders, so PTM Studio set the Task (step 3) "
            f"to “{task_name(choice.task)}”. It goes back to “{task_name(choice.replaced[0])}” "
            "when you choose a folder with classes; choose the Task yourself to keep it."
        )
    if choice.change == TASK_RESTORED:
        return (
            f"This folder has classes, so the Task (step 3) is back to “{task_name(choice.task)}”, "
            "as you had it before a folder without classes switched it."
        )
    return ""


class FolderTask(QObject):
    """Owned by the images panel; ``follow`` after each folder is looked at."""

    def __init__(self, settings: SettingsModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.choice: TaskChoice | None = None
        """The last choice made for a folder; automatic while ``choice.replaced`` is set."""
        self.user_chose_task = False
        """Someone else set the task (the Task box, a resumed run, the last session's settings):
        from then on it is the user's, and no folder changes it."""
        self.write_task: Callable[[str, str], None] = self._write_into_settings
        """``write_task(task, loss)``; the window hands over the objective panel's set_task, which selects
        them in its boxes as a user would (its boxes kept for pretraining come along)."""
        self._task_seen = settings.config.objective.task  # the settings' task, or the one written
        settings.changed.connect(self._note_who_chose)

    @property
    def notice(self) -> str:
        return describe_task_choice(self.choice)

    def follow(self, scan: DatasetScan | None) -> None:
        """Choose the task for the folder ``scan`` describes and write it into the settings."""
        objective = self.settings.config.objective
        self.choice = choose_task(
            scan, objective, self.choice, user_chose_task=self.user_chose_task
        )
        if (self.choice.task, self.choice.loss) != (objective.task, objective.loss):
            self._task_seen = self.choice.task  # so its own change is not taken for the user's
            self.write_task(self.choice.task, self.choice.loss)

    def _write_into_settings(self, task: str, loss: str) -> None:
        choice = TaskChoice(task, loss)
        self.settings.update(lambda config: with_task(config, choice))

    def remembered_config(self) -> RunConfig:
        """The settings to keep for the next launch: the user's own task, not the automatic one
        (the same folder switches it again then, and says so)."""
        return as_the_user_chose(self.settings.config, self.choice)

    @Slot(object)
    def _note_who_chose(self, config: RunConfig) -> None:
        """A task set by anyone but this is the user's from now on; an automatic one is
        forgotten then (nothing to undo)."""
        task = config.objective.task
        if task != self._task_seen:
            self.user_chose_task = True
            self.choice = None
        self._task_seen = task
