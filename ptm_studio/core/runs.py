"""Run folders: one per training run, holding its config, metrics log, checkpoints and predictions.

Layout of a run folder::

    config.json          the frozen RunConfig the run used
    run.json             status, timestamps, class names, best/final accuracy (rewritten atomically)
    metrics.jsonl        one JSON object per line: {"type": "epoch" | "batch", ...}
    checkpoints/last/    model.safetensors + meta.json + trainer_state.pt (see engine/checkpoints.py)
    checkpoints/best/    the best epoch so far (model.safetensors + meta.json)
    predictions.csv      per-image predictions on the validation set after the last epoch
    name.txt             the name the user gave the run (run_catalog.py; absent: a made one)
    validation.csv       the validation pictures and classes drawn at the start (measured later)
    checkpoints/*/calibration.json   the temperature fitted for those weights (when evaluated)
    run.lock             held by the process training the run (see run_lock.py); never deleted

Every field read from run.json or config.json is checked for its type: a damaged file (not
UTF-8, not JSON, a list, a word where a number belongs) makes that one run show as damaged
(``RunInfo.status`` "damaged (…)") and never stops the listing of the others.
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
from ptm_studio.core.checkpoint_files import (
    intact_previous,
    is_complete_checkpoint,
    previous_checkpoint_dir,
    recover_checkpoint,
)
from ptm_studio.core.config import RunConfig
from ptm_studio.core.file_reading import MAX_LIST_FILE_BYTES, read_bytes, read_text
from ptm_studio.core.locations import default_runs_root
from ptm_studio.core.run_lock import LockHolder, lock_holder
from ptm_studio.core.status_fields import StatusFields, kind_of_json
from ptm_studio.core.status_fields import whole_number as whole_number

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
    problem: str = ""  # what is damaged in its run.json or config.json ("" when nothing)
    loss: str = ""
    data_dir: str = ""  # the pictures it trained on, as run.json records them ("" unknown)
    updated: str = ""  # when run.json was last written
    training_seconds: float | None = None  # time spent in its epochs (None: not recorded)

    @property
    def is_damaged(self) -> bool:
        return bool(self.problem)


STATUS_UNREADABLE = "run.json unreadable"


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

    def has_saved_anything(self) -> bool:
        """Whether a checkpoint of the run exists at all (complete, damaged, or the one before)."""
        last = self.last_checkpoint_dir
        return last.exists() or previous_checkpoint_dir(last).exists()

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
        """run.json's fields; {} when there is none yet or it is damaged (see
        :meth:`read_status_checked`). Each field's type is still the reader's to check."""
        return self.read_status_checked()[0]

    def read_status_checked(self) -> tuple[dict[str, Any], str]:
        """run.json's fields and what is wrong with the file ("" when nothing is)."""
        try:
            raw = json.loads(read_text(self.status_path))
        except FileNotFoundError:
            return {}, ""
        except (OSError, ValueError):  # a folder, a pipe, not UTF-8, not JSON
            return {}, STATUS_UNREADABLE
        if not isinstance(raw, dict):
            return {}, f"{STATUS_UNREADABLE}: it holds {kind_of_json(raw)}, not fields"
        return raw, ""

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
        try:
            data = read_bytes(self.metrics_path, max_bytes=MAX_LIST_FILE_BYTES)
        except OSError as error:  # a pipe or a folder in its place, far too large, unreadable
            LOGGER.warning("%s cannot be read: %s", self.metrics_path, error)
            return []
        text = data.decode("utf-8", errors="replace")
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue  # a damaged line that happens to be JSON
            if record_type is None or record.get("type") == record_type:
                records.append(record)
        return records

    def truncate_metrics_after(self, global_step: int) -> None:
        """Drop log lines written after the checkpoint a resumed run continues from (and
        lines whose step cannot be read)."""
        kept = [
            record
            for record in self.read_metrics()
            if (step := whole_number(record.get("global_step", 0))) is not None
            and step <= global_step
        ]
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
            text = read_text(self.validation_list_path, max_bytes=MAX_LIST_FILE_BYTES)
            rows = [(row["path"], row["class"]) for row in csv.DictReader(io.StringIO(text))]
        except (OSError, KeyError, ValueError, csv.Error):  # ValueError: not UTF-8
            return None
        if any(not isinstance(path, str) or not path for path, _ in rows):
            return None  # a cut row: the list cannot be trusted
        return [(Path(path), name if isinstance(name, str) else "") for path, name in rows]

    def read_predictions(self) -> list[dict[str, str]]:
        text = read_text(self.predictions_path, max_bytes=MAX_LIST_FILE_BYTES)
        return list(csv.DictReader(io.StringIO(text)))

    def info(self) -> RunInfo:
        """The run as the history lists it; a damaged run.json or config.json shows as
        status "damaged (…)" naming what is wrong, with what could be read."""
        status, problem = self.read_status_checked()
        fields = StatusFields(status)
        state = fields.text("status", "unknown")
        created = fields.text("created", "")
        epochs = fields.count("epochs_completed")
        best = fields.fraction("best_val_accuracy")
        class_names = fields.names("class_names")
        data_dir = fields.text("data_dir", "")
        updated = fields.text("updated", "")
        training_seconds = _seconds(status.get("training_seconds"))
        problem = problem or fields.problem
        try:
            config = self.read_config()
            task, backbone, loss = (
                config.objective.task,
                config.model.backbone,
                config.objective.loss,
            )
            data_dir = data_dir or config.data.data_dir or ""
        except Exception as error:  # any damage: this run shows as damaged
            LOGGER.warning("%s cannot be read: %s", self.config_path, error)
            task, backbone, loss = "?", "?", ""
            problem = problem or "config.json unreadable"
        return RunInfo(
            path=self.path,
            name=self.path.name,
            status=f"damaged ({problem})" if problem else state,
            task=task,
            backbone=backbone,
            created=created,
            epochs_completed=epochs,
            best_val_accuracy=best,
            class_names=class_names,
            problem=problem,
            loss=loss,
            data_dir=data_dir,
            updated=updated,
            training_seconds=training_seconds,
        )


def _seconds(value: Any) -> float | None:
    """A recorded duration, or None when it is missing or not a sensible number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def list_runs(runs_root: str | Path | None = None) -> list[RunInfo]:
    """Every run folder under ``runs_root``, newest first."""
    root = Path(runs_root) if runs_root else default_runs_root()
    if not root.is_dir():
        return []
    runs = [_run_info(child) for child in sorted(root.iterdir()) if _is_run_folder(child)]
    return sorted(runs, key=lambda run: (run.created, run.name), reverse=True)


def _is_run_folder(path: Path) -> bool:
    try:
        return (path / "config.json").is_file()
    except OSError:  # a folder we may not look into
        return False


def _run_info(path: Path) -> RunInfo:
    """One run's line of the history; whatever is wrong with it stays on its line."""
    try:
        return RunDirectory(path).info()
    except Exception as error:  # one damaged run never hides the others
        LOGGER.warning("run %s cannot be read: %s", path, error)
        problem = "its files cannot be read"
        return RunInfo(path, path.name, f"damaged ({problem})", "?", "?", "", 0, None, (), problem)


def find_interrupted_runs(runs_root: str | Path | None = None) -> list[RunInfo]:
    """Runs that were still "running" when the app or computer stopped (a crash, a kill, a power
    cut) and have a complete checkpoint to resume from, newest first. A run that cannot be
    looked at (its checkpoints unreadable) is left out, never the others."""
    interrupted = []
    for run in list_runs(runs_root):
        if run.status != "running":
            continue
        try:
            if _can_resume_interrupted(run.path):
                interrupted.append(run)
        except Exception:  # one damaged run never hides the others
            LOGGER.exception("could not check whether %s can be resumed", run.path)
    return interrupted


def _can_resume_interrupted(run_path: Path) -> bool:
    if is_being_trained(run_path):
        return False
    last = recover_checkpoint(RunDirectory(run_path).last_checkpoint_dir)
    # A damaged last save still counts when the one before it is intact (offered then).
    return is_complete_checkpoint(last) or intact_previous(last) is not None


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
    return trainer_of(run_path) is not None


def trainer_of(run_path: str | Path) -> LockHolder | None:
    """Who trains this run right now (None: nobody): the holder of the run's lock
    (run_lock.py), or else a live process that run.json says is training it (a version from
    before locks were kept, or a drive that keeps no locks)."""
    try:
        holder = lock_holder(run_path)
    except OSError:
        holder = None
    return holder or recorded_trainer(run_path)


def recorded_trainer(run_path: str | Path) -> LockHolder | None:
    """The live process run.json names as training the run, if it still runs."""
    status = RunDirectory(run_path).read_status()
    if status.get("status") != "running" or not _is_still_running(Path(run_path), status):
        return None
    pid, started, host = status.get("pid"), status.get("process_started"), status.get("host")
    since = datetime.fromtimestamp(started) if isinstance(started, int | float) else None
    return LockHolder(
        pid if isinstance(pid, int) else None, host if isinstance(host, str) else "", since, ""
    )


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
