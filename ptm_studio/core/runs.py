"""Run folders: one per training run, holding its config, metrics log, checkpoints and predictions.

Layout of a run folder::

    config.json          the frozen RunConfig the run used
    run.json             status, timestamps, class names, best/final accuracy (rewritten atomically)
    metrics.jsonl        one JSON object per line: {"type": "epoch" | "batch", ...}
    checkpoints/last/    model.safetensors + meta.json + trainer_state.pt (see engine/checkpoints.py)
    checkpoints/best/    the best epoch so far (model.safetensors + meta.json)
    predictions.csv      per-image predictions on the validation set after the last epoch
    validation.csv       the validation pictures and classes drawn at the start (measured later)
    checkpoints/*/calibration.json   the temperature fitted for those weights (when evaluated)
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ptm_studio.core.atomic_io import json_safe, write_json_atomic, write_text_atomic
from ptm_studio.core.checkpoints import (
    META_FILE,
    MODEL_FILE,
    CheckpointError,
    intact_previous,
    is_complete_checkpoint,
    recover_checkpoint,
    verify_checkpoint,
)
from ptm_studio.core.config import RunConfig
from ptm_studio.core.locations import default_runs_root

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInfo:
    """A run as listed in the history: what the run.json and config.json say."""

    path: Path
    name: str
    status: str
    task: str
    backbone: str
    created: str
    epochs_completed: int
    best_val_accuracy: float | None
    class_names: tuple[str, ...]


class RunDirectory:
    """Paths and atomic writers for one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "run.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    last_checkpoint_dir = property(lambda self: self.path / "checkpoints" / "last")
    best_checkpoint_dir = property(lambda self: self.path / "checkpoints" / "best")
    validation_list_path = property(lambda self: self.path / "validation.csv")
    predictions_path = property(lambda self: self.path / "predictions.csv")

    @classmethod
    def create(cls, runs_root: str | Path, name: str | None = None) -> RunDirectory:
        """Make a new, uniquely named run folder (``2026-11-22_21-52-11`` or ``name``, ``name-2`` …)."""
        root = Path(runs_root)
        root.mkdir(parents=True, exist_ok=True)
        base = _safe_folder_name(name) if name else datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        for attempt in range(1, 10_000):
            candidate = root / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return cls(candidate)
        raise RuntimeError(f"could not create a new run folder in {root}")

    def write_config(self, config: RunConfig) -> None:
        write_text_atomic(self.config_path, config.to_json() + "\n")

    def read_config(self) -> RunConfig:
        return RunConfig.load(self.config_path)

    def write_status(self, **fields: Any) -> None:
        status = self.read_status()
        status.update(fields)
        status["updated"] = datetime.now().isoformat(timespec="seconds")
        status.setdefault("created", status["updated"])
        write_json_atomic(self.status_path, json_safe(status))

    def read_status(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.status_path.read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def append_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(json_safe(record)) + "\n" for record in records)
        if not lines:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def read_metrics(self, record_type: str | None = None) -> list[dict[str, Any]]:
        """All complete lines of the metrics log (a line cut by a crash is ignored)."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record_type is None or record.get("type") == record_type:
                records.append(record)
        return records

    def truncate_metrics_after(self, global_step: int) -> None:
        """Drop log lines written after the checkpoint a resumed run continues from."""
        kept = [r for r in self.read_metrics() if int(r.get("global_step", 0)) <= global_step]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def write_predictions(self, rows: Sequence[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        write_text_atomic(self.predictions_path, buffer.getvalue())

    def write_validation_list(self, records: Sequence[Any]) -> None:
        """The run's validation pictures and their classes, as drawn when it started: an
        evaluation later measures exactly these, even after pictures were added to the folder
        (which would redraw the split and mix training pictures in)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "class"])
        writer.writerows([str(record.path), record.class_name or ""] for record in records)
        write_text_atomic(self.validation_list_path, buffer.getvalue())

    def read_validation_list(self) -> list[tuple[Path, str]] | None:
        """(path, class) of each validation picture the run was given; None for older runs."""
        try:
            with open(self.validation_list_path, encoding="utf-8", newline="") as handle:
                return [(Path(row["path"]), row["class"]) for row in csv.DictReader(handle)]
        except (OSError, KeyError, csv.Error):
            return None

    def read_predictions(self) -> list[dict[str, str]]:
        with open(self.predictions_path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))

    def info(self) -> RunInfo:
        status = self.read_status()
        try:
            config = self.read_config()
            task, backbone = config.objective.task, config.model.backbone
        except (OSError, ValueError):
            task, backbone = "?", "?"
        best = status.get("best_val_accuracy")
        return RunInfo(
            path=self.path,
            name=self.path.name,
            status=str(status.get("status", "unknown")),
            task=task,
            backbone=backbone,
            created=str(status.get("created", "")),
            epochs_completed=int(status.get("epochs_completed", 0)),
            best_val_accuracy=float(best) if isinstance(best, int | float) else None,
            class_names=tuple(status.get("class_names", ())),
        )


def list_runs(runs_root: str | Path | None = None) -> list[RunInfo]:
    """Every run folder under ``runs_root``, newest first."""
    root = Path(runs_root) if runs_root else default_runs_root()
    if not root.is_dir():
        return []
    runs = [
        RunDirectory(child).info() for child in root.iterdir() if (child / "config.json").is_file()
    ]
    return sorted(runs, key=lambda run: (run.created, run.name), reverse=True)


def find_interrupted_runs(runs_root: str | Path | None = None) -> list[RunInfo]:
    """Runs that were still "running" when the app or computer stopped (a crash, a kill, a power
    cut) and have a complete checkpoint to resume from, newest first."""
    interrupted = []
    for run in list_runs(runs_root):
        if run.status != "running" or is_being_trained(run.path):
            continue
        last = recover_checkpoint(RunDirectory(run.path).last_checkpoint_dir)
        # A damaged last save still counts when the one before it is intact (offered then).
        if is_complete_checkpoint(last) or intact_previous(last) is not None:
            interrupted.append(run)
    return interrupted


# Runs a Trainer in this process is training now (a process cannot tell from its own pid).
RUNS_TRAINING_HERE: set[Path] = set()


def this_process() -> dict[str, Any]:
    """What run.json records about the process training a run, to tell a live run from a dead one."""
    import psutil

    return {
        "pid": os.getpid(),
        "process_started": psutil.Process().create_time(),
        "host": socket.gethostname(),
    }


def is_being_trained(run_path: str | Path) -> bool:
    """Whether a live process (this one or another) is training this run right now."""
    status = RunDirectory(run_path).read_status()
    return status.get("status") == "running" and _is_still_running(Path(run_path), status)


def _is_still_running(run_path: Path, status: dict[str, Any]) -> bool:
    """Whether the process that wrote "running" is still alive (another window, or the CLI, is
    training the run). The process start time rules out a new process that got the same pid
    after a restart. A run recorded by another computer (a shared drive, or this one under an
    earlier name) cannot be checked, and counts as not running: offering a resume too often
    loses nothing, never offering it would hide the run."""
    pid, started, host = status.get("pid"), status.get("process_started"), status.get("host")
    if not isinstance(pid, int) or not isinstance(started, int | float):
        return False  # written before processes were recorded
    if host != socket.gethostname():
        return False
    if pid == os.getpid():
        return run_path.resolve() in RUNS_TRAINING_HERE
    started_now = _process_started_at(pid)
    return started_now is not None and abs(started_now - float(started)) < 1.0


def _process_started_at(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class NoSavedModel(CheckpointError):
    """A run folder holds no checkpoint with a model (yet)."""


class UnusableCheckpoints(CheckpointError):
    """Every checkpoint of a run that could hold its model is damaged; ``problems`` says how."""

    def __init__(self, problems: list[CheckpointError]) -> None:
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


def model_checkpoint(run_path: str | Path) -> Path:
    """The checkpoint of a run whose model predictions and later runs use: ``best`` when it is
    complete, else ``last`` (pretraining keeps only ``last``).

    A checkpoint swap a crash cut short is finished first, unless another window is training
    the run right now (its half-written folders are work in progress, not debris).

    Raises:
        NoSavedModel: the run has no checkpoint yet.
        UnusableCheckpoints: its checkpoints are incomplete or damaged (each problem named).
    """
    run = RunDirectory(run_path)
    may_repair = not is_being_trained(run.path)
    problems: list[CheckpointError] = []
    for folder in (run.best_checkpoint_dir, run.last_checkpoint_dir):
        if may_repair:
            recover_checkpoint(folder)
        if not (folder / MODEL_FILE).exists() and not (folder / META_FILE).exists():
            continue
        try:
            verify_checkpoint(folder)
        except CheckpointError as problem:
            LOGGER.warning("%s cannot be used: %s", folder, problem)
            problems.append(problem)
            continue
        return folder
    if problems:
        raise UnusableCheckpoints(problems)
    raise NoSavedModel(f"{run.path}: no saved model was found in this run folder")


@dataclass(frozen=True)
class SavedModel:
    """A checkpoint of a run that holds a model, as a user picks one: "Best (epoch 7, 81 %)"."""

    folder: Path
    kind: str  # "best" or "last"
    epoch: int
    val_accuracy: float | None

    def describe(self) -> str:
        accuracy = f", {100 * self.val_accuracy:.0f} %" if self.val_accuracy is not None else ""
        return f"{self.kind.capitalize()} (epoch {self.epoch}{accuracy})"


def saved_models(run_path: str | Path) -> list[SavedModel]:
    """The run's complete checkpoints, best first, from their meta.json alone (cheap enough to
    fill a menu; the weights are verified when one is loaded)."""
    run = RunDirectory(run_path)
    found = []
    for kind, folder in (("best", run.best_checkpoint_dir), ("last", run.last_checkpoint_dir)):
        meta = _read_complete_meta(folder)
        if meta is None:
            continue
        accuracy = meta.get("val_accuracy")
        found.append(
            SavedModel(
                folder=folder,
                kind=kind,
                epoch=int(meta.get("epoch", 0)),
                val_accuracy=float(accuracy)
                if isinstance(accuracy, int | float) and math.isfinite(accuracy)
                else None,
            )
        )
    return found


def _read_complete_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("complete") else None


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: what its last checkpoint's meta.json records."""

    epochs_completed: int
    global_step: int
    saved_at: datetime | None


def read_resume_point(run_path: str | Path) -> ResumePoint | None:
    """The counters of ``checkpoints/last`` (read-only, no torch; None when there is none).

    When last's meta.json is unreadable, those of the save before it (``last-previous``), which
    a resume is then offered to go on from. It does not verify the checkpoint's files:
    :func:`find_interrupted_runs` and the loader do.
    """
    last = RunDirectory(run_path).last_checkpoint_dir
    for folder in (last, last.with_name(f"{last.name}-previous")):
        meta = _read_complete_meta(folder)
        if meta is not None:
            break
    else:
        return None
    try:
        saved_at: datetime | None = datetime.fromisoformat(str(meta.get("saved_at", "")))
    except ValueError:
        saved_at = None
    return ResumePoint(
        epochs_completed=int(meta.get("epoch", 0) or 0),
        global_step=int(meta.get("global_step", 0) or 0),
        saved_at=saved_at,
    )


def resolve_run_folder(name_or_path: str, runs_root: str | Path | None = None) -> Path:
    """A run given by its folder, or by its name in the runs folder (``--init-from pre_flowers``)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    candidate = (Path(runs_root) if runs_root else default_runs_root()) / name_or_path
    if candidate.is_dir():
        return candidate
    return path  # missing either way; the loader names it in its message


def load_run(path: str | Path) -> RunDirectory:
    run = RunDirectory(path)
    if not run.config_path.is_file():
        raise FileNotFoundError(
            f"{run.path} is not a PTM Studio run folder (it has no config.json)"
        )
    return run


def _safe_folder_name(name: str) -> str:
    cleaned = re.sub(r"[^\w.\- ]+", "_", name, flags=re.UNICODE).strip(" .")
    return cleaned[:100] or "run"
