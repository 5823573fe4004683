"""How a Trainer gets its parts: a new run, a resumed run, or parts built by the caller.

A setup is prepared on the training thread when the run starts, so building (scanning the
folder, downloading weights) can be stopped and is reported like any other failure. The parts
are built before the run folder is touched; from then on ``recorder`` is set, so a resume whose
checkpoint cannot be loaded records why in that folder.

A run's folder is locked (run_lock.py) for as long as it trains: a resume takes the lock before
anything else (RunInUseError when another trainer holds it), a new run as soon as its folder is
made; :meth:`release` (the Trainer calls it at the very end) frees it. A resume then checks the
folder still holds the pictures the run started with (same_data.py), still before the run
folder is touched.

Resuming goes on with the run's own settings. A setting given with the resume is applied when
the run can go on with it (more epochs, how often to save) and refused otherwise, naming it:
never silently dropped (:func:`apply_resume_changes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from ptm_studio.core import checkpoints
from ptm_studio.core.config import ConfigError, RunConfig, get_field, replace_field
from ptm_studio.core.data import DatasetScan, demo_data_dir
from ptm_studio.core.engine.control import StoppedBeforeTraining
from ptm_studio.core.engine.distributed import DistributedContext
from ptm_studio.core.engine.failures import check_same_classes
from ptm_studio.core.engine.parts import TrainingParts, build_training
from ptm_studio.core.engine.recorder import RunRecorder
from ptm_studio.core.engine.same_data import check_same_data, describe_data
from ptm_studio.core.engine.setup import resolve_data_dir
from ptm_studio.core.engine.stepping import follow_schedule_from_here, restore_trainer_state
from ptm_studio.core.engine.time_budget import fitted_to_time_budget
from ptm_studio.core.locations import default_runs_root
from ptm_studio.core.run_lock import RunInUseError, RunLock
from ptm_studio.core.run_models import read_resume_point
from ptm_studio.core.runs import RunDirectory, load_run, recorded_trainer, resolve_run_folder

DownloadProgress = Callable[[int, int], None]

# Settings a resumed run can take on without redoing what it did: how long it goes on, how
# often it saves and checks itself, and how it loads pictures.
RESUMABLE_SETTINGS = {
    "optim.num_epochs": "Epochs",
    "optim.early_stopping_patience": "Early stopping patience",
    "optim.evaluate_every_steps": "Check every (steps)",
    "saving.checkpoint_every_steps": "Save every (steps)",
    "saving.checkpoint_every_minutes": "Save every (minutes)",
    "data.num_workers": "Loading processes",
    "data.loader_timeout_seconds": "Loader timeout",
    "device.cpu_threads": "CPU threads",
}


class RunSetup(Protocol):
    recorder: RunRecorder | None

    def prepare(self, download_progress: DownloadProgress) -> TrainingParts: ...

    def release(self) -> None:
        """Free what the run held (its folder's lock); called once, when it has ended."""


@dataclass
class ReadyParts:
    """Parts the caller built (build_training): no run folder, nothing written."""

    parts: TrainingParts
    recorder: RunRecorder | None = None

    def prepare(self, download_progress: DownloadProgress) -> TrainingParts:
        return self.parts

    def release(self) -> None:
        return None


@dataclass
class NewRun:
    """A new run folder under ``runs_root`` (made once the parts are ready: a folder that
    cannot train leaves no empty run behind)."""

    config: RunConfig
    runs_root: Path | None = None
    scan: DatasetScan | None = None
    recorder: RunRecorder | None = None
    lock: RunLock | None = None
    # Asked before the run folder is made: a run stopped by then leaves nothing behind.
    stop_requested: Callable[[], bool] = lambda: False

    def __post_init__(self) -> None:
        # config.json holds no relative path, and no run name where the run's folder is meant.
        self.config = with_run_folder_named(self.config.with_absolute_paths())

    def prepare(self, download_progress: DownloadProgress) -> TrainingParts:
        parts = build_training(self.config, scan=self.scan, download_progress=download_progress)
        if self.stop_requested():  # before the steps a time budget is planned with
            raise StoppedBeforeTraining
        parts = fitted_to_time_budget(
            parts,
            scan=self.scan,
            rebuild=partial(build_training, download_progress=download_progress),
        )
        self.config = parts.config  # the planned epochs are the run's, in its config.json
        if self.stop_requested():  # Stop (or Ctrl-C) while the pictures were checked
            raise StoppedBeforeTraining
        if not parts.distributed.is_main:
            return parts  # under torchrun rank 0 alone keeps the run folder
        run = RunDirectory.create(self.runs_root or default_runs_root(), self.config.run_name)
        self.lock = RunLock.acquire(run.path)  # a new folder: nobody else can hold it yet
        recorder = self.recorder = RunRecorder.start_in(run, self.config)
        recorder.run.write_validation_list(parts.split.val)
        recorder.record_data(describe_data(parts.split, resolve_data_dir(self.config)))
        return parts

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


@dataclass(frozen=True)
class ResumeChanges:
    """The settings a resume was given that differ from the run's, applied."""

    fields: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()  # for the user: "Epochs: 10 → 20 (…)"


@dataclass
class ResumedRun:
    """An existing run, continued from its last checkpoint exactly where it stopped."""

    run_dir: Path
    config: RunConfig
    changes: ResumeChanges = ResumeChanges()
    scan: DatasetScan | None = None
    recorder: RunRecorder | None = None
    lock: RunLock | None = None
    """The run's lock, when the caller took it already (it frees it then); else taken here."""

    def __post_init__(self) -> None:
        self.config = self.config.with_absolute_paths()  # config.json holds no relative path
        self._owns_lock = self.lock is None

    def prepare(self, download_progress: DownloadProgress) -> TrainingParts:
        if not DistributedContext.from_env().is_main:
            return self._prepare_beside_rank_0(download_progress)
        if self.lock is None:
            self.lock = RunLock.acquire(self.run_dir)  # RunInUseError: another trainer has it
        _check_no_other_trainer(self.run_dir)
        # Built first, as a new run is: a run whose pictures are not there (yet) or changed is
        # left as it was, still offered for resuming, and nothing is written into its folder.
        parts = build_training(self.config, scan=self.scan, download_progress=download_progress)
        data_now = describe_data(parts.split, resolve_data_dir(self.config))
        recorded = RunDirectory(self.run_dir).read_status().get("data")
        note = check_same_data(recorded, data_now, resolve_data_dir(self.config))
        if note:
            self.changes = ResumeChanges(self.changes.fields, (*self.changes.words, note))
        recorder = self.recorder = RunRecorder.open(self.run_dir, self.config)
        recorder.record_data(data_now)  # a run from before this record is checked from now on
        loaded = recorder.load_last_checkpoint()
        trained_on = loaded.meta.get("class_names", [])
        if isinstance(trained_on, list) and all(isinstance(name, str) for name in trained_on):
            check_same_classes(tuple(trained_on), parts.task.class_names, self.config_data_dir)
        # else a damaged meta.json: run.json's record of the pictures was checked above
        rng_state = restore_trainer_state(loaded, parts.step.context, parts.progress, parts.task)
        parts.batches.pending_rng_state = rng_state  # restored when the batches start
        if "optim.num_epochs" in self.changes.fields:
            # The restored optimiser holds the old schedule's rate; the next steps follow the
            # schedule stretched over the new number of epochs.
            follow_schedule_from_here(parts.step.context)
        recorder.forget_after(parts.progress.global_step)
        if self.changes.fields:
            recorder.write_config(self.config)  # a later resume goes on with them too
        parts.distributed.from_main(None)  # the others read the checkpoint rank 0 checked
        return parts

    def _prepare_beside_rank_0(self, download_progress: DownloadProgress) -> TrainingParts:
        """Another process of a torchrun run: the same parts from the same checkpoint, read
        once rank 0 has checked (and if need be repaired) it; nothing written, no lock (rank
        0 holds it for the run)."""
        parts = build_training(self.config, scan=self.scan, download_progress=download_progress)
        parts.distributed.from_main(None)
        loaded = checkpoints.load_checkpoint(RunDirectory(self.run_dir).last_checkpoint_dir)
        rng_state = restore_trainer_state(loaded, parts.step.context, parts.progress, parts.task)
        parts.batches.pending_rng_state = rng_state
        # Stopped mid-epoch, the checkpoint holds rank 0's sums of the epoch so far: counted
        # once, by rank 0 (this process's own part of them was not kept).
        progress = parts.progress
        progress.loss_sum, progress.finite_batches, progress.correct, progress.seen = 0.0, 0, 0, 0
        if "optim.num_epochs" in self.changes.fields:
            follow_schedule_from_here(parts.step.context)
        return parts

    @property
    def config_data_dir(self) -> Path:
        return resolve_data_dir(self.config)

    def release(self) -> None:
        if self.lock is not None and self._owns_lock:
            self.lock.release()


def plan_resume(
    run_dir: Path,
    changes: Mapping[str, Any] | None,
    scan: DatasetScan | None = None,
    lock: RunLock | None = None,
) -> ResumedRun:
    """Read the run's settings and apply ``changes`` (dotted names → values); raises
    ConfigError naming a setting that cannot change, FileNotFoundError for a folder that is
    not a run. ``lock``: the run's lock, when the caller holds it already."""
    run = load_run(run_dir)
    point = read_resume_point(run.path)
    if point is None and not run.has_saved_anything():
        raise NothingToResume(run.path)
    epochs_completed = point.epochs_completed if point is not None else 0
    config, applied = apply_resume_changes(run.read_config(), changes or {}, epochs_completed)
    return ResumedRun(run.path, config, applied, scan, lock=lock)


class NothingToResume(FileNotFoundError):
    """A run that stopped before its first checkpoint: there is nothing to go on from."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(
            f"{run_dir}: this run has no saved checkpoint to go on from (it stopped before its "
            f"first save). Start a new run with its settings instead: ptm-studio train --config "
            f"'{run_dir / 'config.json'}'"
        )


def _check_no_other_trainer(run_dir: Path) -> None:
    """The lock is ours; a live process that run.json names (a version from before locks were
    kept) may still be training the run without one."""
    other = recorded_trainer(run_dir)
    if other is not None and other.pid != os.getpid():
        raise RunInUseError(run_dir, other)


def with_run_folder_named(config: RunConfig) -> RunConfig:
    """Starting weights given as an earlier run's name (``--init-from pre_flowers``) name its
    folder instead, so a resume or an evaluation elsewhere finds the same run."""
    weights_path = config.model.weights_path
    if config.model.weights != "run" or not weights_path or Path(weights_path).is_absolute():
        return config
    folder = resolve_run_folder(weights_path)
    if not folder.is_dir():
        return config  # the loader names it as the user wrote it
    return replace_field(config, "model.weights_path", str(folder.absolute()))


def apply_resume_changes(
    config: RunConfig, changes: Mapping[str, Any], epochs_completed: int = 0
) -> tuple[RunConfig, ResumeChanges]:
    """``config`` with the resumable ``changes`` applied, and those changes.

    A setting given with its current value is no change (a folder is the same folder however
    it is written). Any other setting would make the rest of the run differ from what it
    trained so far (other pictures, another model, another learning rate): it is refused with
    a ConfigError naming it and saying what to do instead.
    """
    fields, words = set(), []
    for field_path, value in changes.items():
        current = get_field(config, field_path)
        if _is_same_setting(field_path, value, current):
            continue
        if field_path not in RESUMABLE_SETTINGS:
            raise ConfigError(
                field_path,
                f"cannot change when a run is resumed: it goes on with its own value "
                f"({current!r}). To train with {value!r}, start a new run instead (it can "
                "start from this run's weights).",
            )
        if field_path == "optim.num_epochs":
            _check_more_epochs(config, int(value), epochs_completed)
        config = replace_field(config, field_path, value)
        fields.add(field_path)
        words.append(_describe_change(config, field_path, current, value))
    return config.with_absolute_paths().validate(), ResumeChanges(frozenset(fields), tuple(words))


def _is_same_setting(field_path: str, value: Any, current: Any) -> bool:
    if field_path in ("data.data_dir", "data.monitor_dir") and value and current:
        return bool(_folder(value) == _folder(current))
    if field_path == "data.data_dir":  # no folder means the demo images
        return bool(_folder(value or demo_data_dir()) == _folder(current or demo_data_dir()))
    return bool(value == current)


def _folder(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _check_more_epochs(config: RunConfig, num_epochs: int, epochs_completed: int) -> None:
    if config.optim.schedule == "one_cycle":
        raise ConfigError(
            "optim.num_epochs",
            "cannot change when a run with the one-cycle schedule is resumed: its rise and "
            f"fall are planned for the {config.optim.num_epochs} epochs it started with. To "
            "train longer, start a new run from this run's weights.",
        )
    if num_epochs <= epochs_completed:
        raise ConfigError(
            "optim.num_epochs",
            f"this run has already trained {epochs_completed} epochs; to resume it for longer, "
            f"ask for more than {epochs_completed}.",
        )


def _describe_change(config: RunConfig, field_path: str, current: Any, value: Any) -> str:
    words = f"{RESUMABLE_SETTINGS[field_path]}: {current} → {value}"
    if field_path == "optim.num_epochs" and config.optim.schedule != "constant":
        words += f" (the learning rate now follows its schedule over {value} epochs)"
    return words
