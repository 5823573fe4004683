"""The main window's actions (with shortcuts), its toolbar and its menus, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence

from ptm_studio.gui import theme

if TYPE_CHECKING:
    from ptm_studio.gui.main_window import MainWindow


@dataclass
class MainActions:
    open_folder: QAction
    use_demo: QAction
    start: QAction
    stop: QAction
    resume: QAction
    auto: QAction


def make_action(
    parent: Any,
    text: str,
    slot: Callable[[], Any],
    shortcut: Any = None,
    icon: str = "",
    tip: str = "",
) -> QAction:
    """An action whose tooltip names its shortcut, so the keyboard path is discoverable."""
    action = QAction(theme.icon(icon) if icon else QIcon(), text, parent)
    tip = tip or text
    if shortcut is not None:
        sequence = QKeySequence(shortcut)
        action.setShortcut(sequence)
        tip = f"{tip} ({sequence.toString(QKeySequence.SequenceFormat.NativeText)})"
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(slot)
    return action


def install_actions(window: MainWindow) -> MainActions:
    """Create the actions, put them in a toolbar and the menus; return the ones that change state."""
    actions = MainActions(
        open_folder=make_action(
            window, "Choose image folder…", window.dataset_panel.choose_folder,
            QKeySequence.StandardKey.Open, "folder", "Choose the folder with your images",
        ),
        use_demo=make_action(
            window, "Use demo images", window.use_demo_data, None, "demo", "Use the small example dataset"
        ),
        start=make_action(
            window, "Start training", window.start_training, "Ctrl+Return", "start", "Start a new training run"
        ),
        stop=make_action(
            window, "Stop training", window.stop_training, "Esc", "stop", "Stop after the current batch and save"
        ),
        resume=make_action(
            window, "Resume training", window.run_controller.resume_training, "Ctrl+Shift+Return", "resume",
            "Continue the stopped run",
        ),
        auto=make_action(
            window, "Auto settings", window.objective_panel.apply_auto, "Ctrl+Shift+A", "auto",
            "Pick sensible values for this data",
        ),
    )  # fmt: skip
    quit_action = make_action(window, "Quit", window.close, QKeySequence.StandardKey.Quit)
    charts = make_action(window, "Charts", window.show_charts, "Ctrl+1")
    predictions = make_action(window, "Predictions", window.show_predictions_tab, "Ctrl+2")
    about = make_action(window, "About PTM Studio", window.show_about)
    compare = make_action(
        window, "Did pretraining help?…", window.run_controller.compare_with_pretraining, None, None,
        "Finetune from a pretrained run and from random weights, and compare",
    )  # fmt: skip
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    groups = (
        (actions.open_folder, actions.use_demo),
        (actions.start, actions.stop, actions.resume),
        (actions.auto,),
    )
    for index, group in enumerate(groups):
        if index:
            toolbar.addSeparator()
        for action in group:
            toolbar.addAction(action)
    menus = {
        "&File": ((actions.open_folder, actions.use_demo), (quit_action,)),
        "&Training": ((actions.start, actions.stop, actions.resume), (actions.auto,), (compare,)),
        "&View": ((charts, predictions),),
        "&Help": ((about,),),
    }
    for title, sections in menus.items():
        menu = window.menuBar().addMenu(title)
        for index, section in enumerate(sections):
            if index:
                menu.addSeparator()
            for action in section:
                menu.addAction(action)
    return actions
