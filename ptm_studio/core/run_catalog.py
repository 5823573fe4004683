"""The runs history as people see it: a readable name for every run, what state it is in and
what can be done with it, renaming, deleting to the system trash, the settings of several runs
side by side, a run's settings written out or read back, and its saved predictions.

The runs panel, the lists that pick an earlier run and the command line all name runs through
:func:`describe_runs`, so a run is called the same everywhere: the user's name when they gave
one (``name.txt`` in the run folder, apart from run.json so that a rename never races the
trainer rewriting run.json), else one made from data · network · task, e.g.
"flowers · Small CNN · 76 %".
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ptm_studio.core.atomic_io import write_text_atomic
from ptm_studio.core.config import RunConfig
from ptm_studio.core.config_values import config_fields
from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_STOPPED,
    PredictionRecord,
    PredictionsReady,
)
from ptm_studio.core.file_reading import MAX_LIST_FILE_BYTES, read_text
from ptm_studio.core.models.catalogue import get_backbone_spec
from ptm_studio.core.models.errors import ModelError
from ptm_studio.core.run_models import read_resume_point
from ptm_studio.core.runs import RunDirectory, RunInfo, is_being_trained, list_runs, trainer_of

LOGGER = logging.getLogger(__name__)

NAME_FILE = "name.txt"
MAX_NAME_LENGTH = 120

# Folder names that say nothing about the pictures: the name is taken from the folder above.
GENERIC_FOLDER_NAMES = frozenset(
    {"data", "dataset", "datasets", "train", "training", "images", "imgs", "pictures",
     "photos", "labelled", "labeled", "all", "raw", "input"}
)  # fmt: skip

# Short names of the pretraining objectives, for a run's name (the objective panel has the
# long ones).
PRETRAINING_WORDS = {
    "nt_xent": "SimCLR",
    "moco": "MoCo",
    "vicreg": "VICReg",
    "contrastive_margin": "margin contrastive",
    "reconstruction": "autoencoder",
    "rotation": "rotation",
}

STATE_WORDS = {
    "finished": "finished",
    "stopped": "stopped (can be resumed)",
    "interrupted": "interrupted (can be resumed)",
    "running": "training now",
    "failed": "failed",
    "unknown": "not started",
}


class RunBusyError(RuntimeError):
    """The run is being trained right now: it cannot be deleted or changed under the trainer."""


class TrashUnavailable(OSError):
    """There is no system trash for this folder (or it refused it); nothing was deleted."""


@dataclass(frozen=True)
class RunEntry:
    """One run as the history lists it."""

    info: RunInfo
    title: str  # the user's name, or the made one
    own_name: str  # the user's name ("" when none was given)
    data_name: str  # "flowers", "demo pictures"
    network: str  # "Small CNN"
    objective: str  # "classifier" or "pretraining (SimCLR)"
    state: str  # a key of STATE_WORDS, or "damaged"
    created: datetime | None
    duration_seconds: float | None

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def state_words(self) -> str:
        return self.info.status if self.state == "damaged" else STATE_WORDS[self.state]

    @property
    def best_accuracy(self) -> float | None:
        value = self.info.best_val_accuracy
        return value if value is not None and math.isfinite(value) else None

    @property
    def can_resume(self) -> bool:
        """Stopped or interrupted with a save to go on from (a finished run has nothing left)."""
        return self.state in ("stopped", "interrupted") and read_resume_point(self.path) is not None

    @property
    def is_pretraining(self) -> bool:
        return self.info.task == "pretrain"


def describe_runs(runs_root: str | Path | None = None) -> list[RunEntry]:
    """Every run under ``runs_root`` (the default runs folder when None), newest first."""
    return [describe_run(info) for info in list_runs(runs_root)]


def describe_run(info: RunInfo) -> RunEntry:
    data_name = data_name_of(info.data_dir)
    network = network_name(info.backbone)
    objective = objective_words(info.task, info.loss)
    own_name = read_own_name(info.path)
    best = info.best_val_accuracy
    made = made_title(data_name, network, info.task, info.loss, best)
    created = _timestamp(info.created)
    return RunEntry(
        info=info,
        title=own_name or made,
        own_name=own_name,
        data_name=data_name,
        network=network,
        objective=objective,
        state=_state(info),
        created=created,
        duration_seconds=_duration(info, created),
    )


def run_title(run_path: str | Path) -> str:
    """The run's name as the runs list shows it (its folder's name when it cannot be read)."""
    path = Path(run_path)
    run = RunDirectory(path)
    if not run.config_path.is_file():
        return path.name  # not a run folder (or not any more): nothing else to name it by
    try:
        return describe_run(run.info()).title
    except Exception:  # a damaged run is still named, by its folder
        LOGGER.warning("run %s cannot be described", path, exc_info=True)
        return path.name


def made_title(
    data_name: str, network: str, task: str, loss: str, best_accuracy: float | None
) -> str:
    """ "flowers · Small CNN · 76 %"; "flowers · ResNet-18 · pretraining (SimCLR)"."""
    if task == "pretrain":
        result = objective_words(task, loss)
    elif best_accuracy is not None and math.isfinite(best_accuracy):
        result = f"{100 * best_accuracy:.0f} %"
    else:
        result = "no score yet"
    return " · ".join((data_name, network, result))


def data_name_of(data_dir: str) -> str:
    """The pictures' name: the folder's, or the nearest above it that says more than "train"."""
    if not data_dir:
        return "demo pictures"
    path = Path(data_dir)
    if "demo_data" in path.parts:
        return "demo pictures"
    for part in reversed(path.parts):
        if part.lower() not in GENERIC_FOLDER_NAMES and part not in ("/", "\\"):
            return part
    return path.name or str(path)


def network_name(backbone: str) -> str:
    try:
        return get_backbone_spec(backbone).display_name
    except ModelError:
        return backbone


def objective_words(task: str, loss: str) -> str:
    if task == "pretrain":
        return f"pretraining ({PRETRAINING_WORDS.get(loss, loss)})"
    return "classifier"


def _state(info: RunInfo) -> str:
    if info.is_damaged:
        return "damaged"
    if info.status == "running":
        return "running" if is_being_trained(info.path) else "interrupted"
    return {
        STATUS_COMPLETED: "finished",
        STATUS_STOPPED: "stopped",
        STATUS_FAILED: "failed",
    }.get(info.status, "unknown")


def _timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _duration(info: RunInfo, created: datetime | None) -> float | None:
    """Time spent training: the epochs' own times when recorded, else first to last write
    (older runs; it includes any pause before a resume)."""
    if info.training_seconds is not None:
        return info.training_seconds
    updated = _timestamp(info.updated)
    if created is None or updated is None:
        return None
    seconds = (updated - created).total_seconds()
    return seconds if seconds >= 0 else None


# ---------------------------------------------------------------------- naming
def read_own_name(run_path: Path) -> str:
    """The name the user gave the run ("" when none, or when name.txt cannot be read)."""
    try:
        text = read_text(run_path / NAME_FILE, max_bytes=4096)
    except FileNotFoundError:
        return ""
    except (OSError, ValueError):
        LOGGER.warning("the name of run %s cannot be read", run_path)
        return ""
    return clean_name(text)


def clean_name(name: str) -> str:
    """One line, no surrounding spaces, at most MAX_NAME_LENGTH characters."""
    return " ".join(name.split())[:MAX_NAME_LENGTH]


def rename_run(run_path: str | Path, name: str) -> str:
    """Give the run the user's name (an empty name goes back to the made one); the folder keeps
    its name, so nothing that points at it breaks. Returns the name kept."""
    path = Path(run_path)
    kept = clean_name(name)
    target = path / NAME_FILE
    if kept:
        write_text_atomic(target, kept + "\n")
    else:
        target.unlink(missing_ok=True)
    return kept


# ---------------------------------------------------------------------- deleting
def delete_run(run_path: str | Path) -> None:
    """Move the run folder to the system trash (it can be restored from there).

    RunBusyError while a process trains it; TrashUnavailable when there is no trash for it
    (the caller may then offer :func:`delete_permanently`). Nothing is deleted in either case.
    """
    path = Path(run_path)
    _refuse_if_training(path)
    try:
        from send2trash import send2trash
    except ImportError:
        raise TrashUnavailable(
            "the send2trash package is not installed (pip install send2trash)"
        ) from None
    try:
        send2trash(str(path))
    except OSError as error:  # send2trash's TrashPermissionError is an OSError too
        raise TrashUnavailable(str(error) or type(error).__name__) from error


def delete_permanently(run_path: str | Path) -> None:
    """Delete the run folder for good (when there is no trash and the user said so)."""
    path = Path(run_path)
    _refuse_if_training(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a PTM Studio run folder; it was left alone")
    shutil.rmtree(path)


def _refuse_if_training(path: Path) -> None:
    holder = trainer_of(path)
    if holder is not None:
        raise RunBusyError(
            f"The run in {path} is being trained now, by {holder.describe()}. "
            "Stop that training first."
        )


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SettingRow:
    """One setting across the compared runs."""

    name: str  # dotted: optim.learning_rate
    values: tuple[str, ...]  # one per run, as text
    differs: bool


# Settings that belong to one run only; comparing them says nothing.
NOT_COMPARED = frozenset({"run_name", "model.allow_download"})


def setting_rows(configs: Sequence[RunConfig | None]) -> list[SettingRow]:
    """Every setting of the runs side by side (a run whose settings cannot be read shows "?"),
    in the config's order; ``differs`` marks those that are not the same in all of them."""
    fields = [config_fields(config) if config is not None else {} for config in configs]
    names = list(config_fields(RunConfig()))
    rows = []
    for name in names:
        if name in NOT_COMPARED:
            continue
        values = tuple(_as_text(run[name]) if name in run else "?" for run in fields)
        rows.append(SettingRow(name, values, len(set(values)) > 1))
    return rows


def _as_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple | list):
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def read_settings(run_path: str | Path) -> RunConfig | None:
    try:
        return RunDirectory(run_path).read_config()
    except Exception:  # damaged: shown as "?" beside the others
        LOGGER.warning("the settings of run %s cannot be read", run_path, exc_info=True)
        return None


def export_settings(run_path: str | Path, destination: str | Path) -> Path:
    """Write the run's settings to a file another run (or ``ptm-studio train --config``) can
    start from; what belonged to that run only (its folder's name, download consent) is left
    out."""
    config = RunDirectory(run_path).read_config().for_another_run()
    target = Path(destination)
    write_text_atomic(target, config.to_json() + "\n")
    return target


def import_settings(settings_file: str | Path) -> RunConfig:
    """The settings in a file written by :func:`export_settings` (or a run's config.json),
    checked; ConfigFileError names the file and what is wrong."""
    return RunConfig.load(settings_file).for_another_run()


# ---------------------------------------------------------------------- predictions
def saved_predictions(run_path: str | Path) -> PredictionsReady | None:
    """The validation answers a finished run saved (predictions.csv), as the event the
    predictions gallery shows; None when there are none or they cannot be read."""
    run = RunDirectory(run_path)
    info = run.info()
    names = info.class_names
    if not names or not run.predictions_path.is_file():
        return None
    try:
        rows = list(
            csv.DictReader(
                io.StringIO(read_text(run.predictions_path, max_bytes=MAX_LIST_FILE_BYTES))
            )
        )
        index = {name: position for position, name in enumerate(names)}
        records = tuple(_prediction(row, index) for row in rows)
    except (OSError, ValueError, KeyError, TypeError, csv.Error):
        LOGGER.warning("the predictions of run %s cannot be read", run_path, exc_info=True)
        return None
    return PredictionsReady(epoch=info.epochs_completed, class_names=names, records=records)


def _prediction(row: dict[str, str], index: dict[str, int]) -> PredictionRecord:
    predicted = index[row["predicted_class"]]
    confidence = float(row["confidence"])
    return PredictionRecord(
        path=row["path"],
        true_index=index[row["true_class"]],
        predicted_index=predicted,
        confidence=confidence,
        loss=float(row["loss"]),
        top_indices=(predicted,),
        top_probabilities=(confidence,),
    )
