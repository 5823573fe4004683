"""The question asked at launch when a training run was interrupted (the app or computer stopped).

:class:`ResumeOffer` holds plain values describing the run; :func:`ask_to_resume` shows
:class:`ResumeOfferDialog` and returns the user's :class:`ResumeChoice`. Tests replace
:func:`ask_to_resume` (a modal dialog would block an offscreen run).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from ptm_studio.core.run_models import read_resume_point
from ptm_studio.core.runs import RunDirectory, RunInfo, find_interrupted_runs, list_runs
from ptm_studio.gui.run_history import load_history

TASK_WORDS = {
    "finetune": "Training a classifier on labelled pictures",
    "pretrain": "Pretraining on unlabelled pictures",
}


class ResumeChoice(enum.StrEnum):
    RESUME = "resume"
    LATER = "later"  # ask again at the next launch
    NEVER = "never"  # mark the run stopped: it is not offered again (nothing is deleted)


@dataclass(frozen=True)
class ResumeOffer:
    """What the user needs to decide: which run, how far it got, when it was last saved."""

    run_dir: Path
    name: str
    task: str
    data_folder: str
    epochs_completed: int
    num_epochs: int
    is_mid_epoch: bool
    global_step: int
    saved_at: datetime | None
    other_runs: int = 0  # older interrupted runs, offered after this one


def interrupted_runs(runs_root: Path | None) -> list[RunInfo]:
    """Runs a crash interrupted, newest first. Cheap when none is left "running" (the usual
    case): only then are checkpoints opened, which imports torch."""
    if not any(run.status == "running" for run in list_runs(runs_root)):
        return []
    return find_interrupted_runs(runs_root)


def describe_run(run: RunInfo, other_runs: int = 0) -> ResumeOffer | None:
    """The plain facts the resume question shows, or None when the run cannot be resumed."""
    directory = RunDirectory(run.path)
    point = read_resume_point(run.path)
    try:
        config = directory.read_config()
    except (OSError, ValueError):
        return None
    if point is None:
        return None
    status = directory.read_status()
    history = load_history(directory, point.global_step)
    last_epoch_step = max((int(record["global_step"]) for record in history.epochs), default=0)
    return ResumeOffer(
        run_dir=run.path,
        name=run.name,
        task=config.objective.task,
        data_folder=str(status.get("data_dir") or config.data.data_dir or "the demo images"),
        epochs_completed=point.epochs_completed,
        num_epochs=config.optim.num_epochs,
        is_mid_epoch=point.global_step > last_epoch_step,
        global_step=point.global_step,
        saved_at=point.saved_at,
        other_runs=other_runs,
    )


def format_age(saved_at: datetime | None, now: datetime | None = None) -> str:
    """ "just now", "12 minutes ago", "3 hours ago", "2 days ago"; "at an unknown time"."""
    if saved_at is None:
        return "at an unknown time"
    now = now or datetime.now(saved_at.tzinfo)
    seconds = (now - saved_at).total_seconds()
    if seconds < 60:
        return "just now"
    size, unit = next(
        (size, unit)
        for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute"))
        if seconds >= size
    )
    count = int(seconds // size)
    return f"{count} {unit}{'s' if count != 1 else ''} ago"


def describe_progress(offer: ResumeOffer) -> str:
    """ "epoch 2 of 5 (1 finished; saved at step 57)" or "1 of 5 epochs finished"."""
    if offer.is_mid_epoch:
        return (
            f"stopped during epoch {offer.epochs_completed + 1} of {offer.num_epochs} "
            f"({offer.epochs_completed} finished; saved at step {offer.global_step})"
        )
    return f"{offer.epochs_completed} of {offer.num_epochs} epochs finished"


INTRO = (
    "A training run did not finish: PTM Studio or the computer stopped while it was running. "
    "Everything up to its last save is kept."
)
OUTRO = (
    "Resume training continues from that save with the run's own settings; "
    "its charts continue where they stopped."
)


def offer_facts(offer: ResumeOffer, now: datetime | None = None) -> list[tuple[str, str]]:
    """(caption, value) pairs describing the run, in the order the dialog shows them."""
    when = format_age(offer.saved_at, now)
    if offer.saved_at is not None:
        when += f" ({offer.saved_at:%d %b %Y, %H:%M})"
    return [
        ("Run", offer.name),
        ("Kind", TASK_WORDS.get(offer.task, offer.task)),
        ("Pictures", offer.data_folder),
        ("Progress", describe_progress(offer)),
        ("Last saved", when),
    ]


def _others_note(offer: ResumeOffer) -> str:
    if not offer.other_runs:
        return ""
    runs = "run was" if offer.other_runs == 1 else "runs were"
    return (
        f"{offer.other_runs} older interrupted {runs} found too. "
        "Choose “Don't resume” to see the next one."
    )


def describe_offer(offer: ResumeOffer, now: datetime | None = None) -> str:
    """The offer as plain text (logs, tests); the dialog shows the same words in a table."""
    facts = [f"{caption}: {value}" for caption, value in offer_facts(offer, now)]
    note = _others_note(offer)
    return "\n\n".join(part for part in (INTRO, "\n".join(facts), OUTRO, note) if part)


def offer_html(offer: ResumeOffer, now: datetime | None = None) -> str:
    """The dialog's text: every value escaped, so a name such as "<b>x" shows as typed."""
    rows = "".join(
        f"<tr><td style='padding-right:12px'><b>{escape(caption)}:</b></td>"
        f"<td>{escape(value)}</td></tr>"
        for caption, value in offer_facts(offer, now)
    )
    note = _others_note(offer)
    return (
        f"<p>{escape(INTRO)}</p>"
        f"<table style='margin-top:8px' cellspacing='0' cellpadding='2'>{rows}</table>"
        f"<p style='margin-top:8px'>{escape(OUTRO)}</p>"
        + (f"<p><i>{escape(note)}</i></p>" if note else "")
    )


class ResumeOfferDialog(QMessageBox):
    """Resume training / Not now / Don't resume, with the run described in plain words."""

    def __init__(
        self, offer: ResumeOffer, parent: QWidget | None = None, now: datetime | None = None
    ) -> None:
        super().__init__(parent)
        self.offer = offer
        self.setIcon(QMessageBox.Icon.Question)
        self.setWindowTitle("Resume the interrupted training?")
        self.setTextFormat(Qt.TextFormat.RichText)  # a table; every value is escaped
        self.setText(offer_html(offer, now))
        self.resume_button = self._add(
            "Resume training",
            QMessageBox.ButtonRole.AcceptRole,
            "Continue this run from its last save, with the settings it started with.",
        )
        self.later_button = self._add(
            "Not now",
            QMessageBox.ButtonRole.RejectRole,
            "Leave the run as it is and ask again the next time PTM Studio starts.",
        )
        self.never_button = self._add(
            "Don't resume",
            QMessageBox.ButtonRole.DestructiveRole,
            "Keep the run's files as they are (nothing is deleted) and stop asking about it.",
        )
        self.setDefaultButton(self.resume_button)
        self.setEscapeButton(self.later_button)

    def _add(self, text: str, role: QMessageBox.ButtonRole, tip: str) -> QPushButton:
        button = self.addButton(text, role)
        button.setToolTip(tip)
        return button

    def choice(self) -> ResumeChoice:
        clicked = self.clickedButton()
        if clicked is self.resume_button:
            return ResumeChoice.RESUME
        if clicked is self.never_button:
            return ResumeChoice.NEVER
        return ResumeChoice.LATER  # "Not now", Escape, or the window closed


def ask_to_resume(parent: QWidget | None, offer: ResumeOffer) -> ResumeChoice:
    """Show the offer modally and return what the user chose."""
    dialog = ResumeOfferDialog(offer, parent)
    dialog.exec()
    choice = dialog.choice()
    dialog.deleteLater()
    return choice
