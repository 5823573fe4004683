"""The main window's actions (with shortcuts), its toolbar and its menus, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QMainWindow

from ptm_studio.gui import theme

Handler = Callable[[], Any]


@dataclass(frozen=True)
class ActionHandlers:
    """What each action does (the window's and its parts' methods)."""

    choose_folder: Handler
    use_demo: Handler
    start: Handler
    stop: Handler
    resume: Handler
    auto: Handler
    compare: Handler
    compare_by_labels: Handler
    run_on_cluster: Handler
    show_charts: Handler
    show_predictions: Handler
    show_evaluation: Handler
    show_predict: Handler
    show_runs: Handler
    evaluate_run: Handler
    export_model: Handler
    show_about: Handler


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


def install_actions(window: QMainWindow, handlers: ActionHandlers) -> MainActions:
    """Create the actions, put them in a toolbar and the menus; return the ones that change state."""
    actions = MainActions(
        open_folder=make_action(
            window, "Choose image folder…", handlers.choose_folder,
            QKeySequence.StandardKey.Open, "folder", "Choose the folder with your images",
        ),
        use_demo=make_action(
            window, "Use demo images", handlers.use_demo, None, "demo", "Use the small example dataset"
        ),
        start=make_action(
            window, "Start training", handlers.start, "Ctrl+Return", "start", "Start a new training run"
        ),
        stop=make_action(
            window, "Stop training", handlers.stop, "Esc", "stop", "Stop after the current batch and save"
        ),
        resume=make_action(
            window, "Resume training", handlers.resume, "Ctrl+Shift+Return", "resume",
            "Continue the stopped run",
        ),
        auto=make_action(
            window, "Auto settings", handlers.auto, "Ctrl+Shift+A", "auto",
            "Pick sensible values for this data",
        ),
    )  # fmt: skip
    quit_action = make_action(window, "Quit", window.close, QKeySequence.StandardKey.Quit)
    charts = make_action(window, "Charts", handlers.show_charts, "Ctrl+1")
    predictions = make_action(window, "Predictions", handlers.show_predictions, "Ctrl+2")
    evaluation = make_action(window, "Evaluation", handlers.show_evaluation, "Ctrl+3")
    runs = make_action(
        window, "Runs", handlers.show_runs, "Ctrl+5", "",
        "Every run on this computer: reopen, resume, compare, rename or delete",
    )  # fmt: skip
    export = make_action(
        window, "Export the model…", handlers.export_model, "Ctrl+Shift+E", "",
        "Write the trained model as a folder others can use (TorchScript, ONNX, weights)",
    )  # fmt: skip
    predict = make_action(
        window, "Predict new pictures", handlers.show_predict, "Ctrl+4", "",
        "Drop pictures or a folder to see what the trained model says",
    )  # fmt: skip
    evaluate = make_action(
        window, "Evaluate a run…", handlers.evaluate_run, "Ctrl+E", "",
        "Measure a saved run on its validation pictures: scores per class, mix-ups, calibration",
    )  # fmt: skip
    about = make_action(window, "About PTM Studio", handlers.show_about)
    compare = make_action(
        window, "Did pretraining help?…", handlers.compare, None, "",
        "Finetune from a pretrained run and from random weights, and compare",
    )  # fmt: skip
    compare_by_labels = make_action(
        window, "Did pretraining help, by the number of labels?…", handlers.compare_by_labels,
        None, "",
        "Finetune from a pretrained run and from random weights with 1 %, 10 % and all of the "
        "labels, 3 seeds each, and draw accuracy against the labels used",
    )  # fmt: skip
    cluster = make_action(
        window, "Run on a cluster…", handlers.run_on_cluster, None, "",
        "Write these settings to a file and show the torchrun command (and a SLURM script) "
        "that trains them on several graphics cards or machines",
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
        "&Training": (
            (actions.start, actions.stop, actions.resume),
            (actions.auto,),
            (compare, compare_by_labels),
            (cluster,),
        ),
        "&Model": ((evaluate, predict), (export,)),
        "&View": ((charts, predictions, evaluation, runs),),
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


def update_actions(
    actions: MainActions,
    *,
    is_running: bool,
    is_stopping: bool,
    can_resume: bool,
    can_start: bool = True,
) -> None:
    """Enable what can be done now: nothing that changes the run's settings while it trains,
    and no Start before the images shown can train (``can_start``)."""
    actions.start.setEnabled(not is_running and can_start)
    actions.stop.setEnabled(is_running and not is_stopping)
    actions.resume.setEnabled(not is_running and can_resume)
    for action in (actions.open_folder, actions.use_demo, actions.auto):
        action.setEnabled(not is_running)
