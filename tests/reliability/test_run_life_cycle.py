"""The run's life cycle through the real command line (issue 11): one trainer per run, resuming
on the same pictures only, SIGTERM and a second Ctrl-C leaving a resumable run, a failure never
leaving a run marked "running", and a damaged run.json affecting that run alone.

Each case checks the exit code, the message, that no traceback reached the user, that nothing
is left half-written or marked running, and that the picture folder is unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.recorder import RunRecorder
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.run_lock import RunLock, lock_holder
from ptm_studio.core.runs import RunDirectory, find_interrupted_runs, list_runs

from .conftest import assert_checkpoint_loads

HERE = Path(__file__).parent
TINY = ("--image-size", "16", "--batch-size", "4", "--cpu-threads", "1", "--backbone", "small_cnn")
EXIT_OK, EXIT_USAGE, EXIT_DATA, EXIT_INTERRUPTED = 0, 2, 3, 130


# ----------------------------------------------------------------------------- helpers
def _environment(home: Path) -> dict[str, str]:
    return {**os.environ, "PTM_STUDIO_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _cli(home: Path, *arguments: str, cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """Run ``python -m ptm_studio ARGUMENTS``; its exit code and everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "ptm_studio", *arguments],
        cwd=cwd,
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


class Running:
    """A command started in the background, its output collected line by line."""

    def __init__(self, command: list[str], home: Path, cwd: Path) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=_environment(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None or text in self.output, self.output
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output}"
            time.sleep(0.02)

    def count(self, text: str) -> int:
        return self.output.count(text)

    def finish(self, timeout: float = 90) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(command: list[str], home: Path, cwd: Path) -> Running:
        started.append(Running(command, home, cwd))
        return started[-1]

    yield start
    for process in started:
        process.close()


def _train(pictures: Path, run: Path, *options: str) -> list[str]:
    return ["train", "--data", str(pictures), "--output", str(run), *options, *TINY]


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _assert_left_clean(run: Path, output: str) -> dict[str, Any]:
    """No traceback reached the user; run.json says the run is not running; nothing is left
    half-written; the resumable checkpoint loads. Returns run.json."""
    assert "Traceback" not in output, output
    status = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert status["status"] != "running", status
    leftovers = [p for p in run.rglob("*") if "partial" in p.name]
    assert leftovers == [], leftovers
    assert_checkpoint_loads(run / "checkpoints" / "last")
    assert lock_holder(run) is None  # the lock went with the process
    return status


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, image_folder_maker: Callable[..., Path]
) -> tuple[Path, Path]:
    """(work folder, run): a one-epoch run trained with a RELATIVE --data from ``work``."""
    work = tmp_path_factory.mktemp("life_cycle")
    image_folder_maker(work / "pics")
    code, output = _cli(
        work / "home",
        *("train", "--data", "pics", "--output", "runs/base", "--epochs", "1", "--quiet", *TINY),
        cwd=work,
    )
    assert code == EXIT_OK, output
    return work, work / "runs" / "base"


@pytest.fixture
def case(trained: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """(home, pictures, run): a copy of the trained run and its pictures for one test."""
    work, run = trained
    pictures = tmp_path / "pics"
    shutil.copytree(work / "pics", pictures)
    copy = tmp_path / "runs" / "base"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text(encoding="utf-8"))
    config["data"]["data_dir"] = str(pictures)
    (copy / "config.json").write_text(json.dumps(config), encoding="utf-8")
    status = json.loads((copy / "run.json").read_text(encoding="utf-8"))
    status["data"]["folder"] = str(pictures)
    (copy / "run.json").write_text(json.dumps(status), encoding="utf-8")
    return tmp_path / "home", pictures, copy


# ----------------------------------------------------------------------------- cases 1 and 3
def test_a_second_trainer_is_refused_and_sigterm_saves_the_first(
    tmp_path: Path, image_folder_maker: Callable[..., Path], running: Callable[..., Running]
) -> None:
    """A resume of a run another process trains right now exits 2 at once, naming that process,
    while the first goes on; SIGTERM then stops the first as Ctrl-C does: saved, resumable."""
    pictures = image_folder_maker(tmp_path / "pics")
    before = _listing(pictures)
    home, run = tmp_path / "home", tmp_path / "runs" / "slow"
    first = running(
        [sys.executable, "-m", "ptm_studio", *_train(pictures, run, "--epochs", "500")],
        home,
        tmp_path,
    )
    first.wait_for("epoch 1/500")
    started = time.monotonic()
    code, output = _cli(home, "train", "--resume", str(run), "--quiet", cwd=tmp_path)
    assert code == EXIT_USAGE, output
    assert time.monotonic() - started < 15
    assert "is being trained now" in output and f"process {first.process.pid}" in output
    assert "then resume the run again" in output and "Traceback" not in output
    epochs_seen = first.count("/500:")
    first.wait_for(f"epoch {epochs_seen + 2}/500")  # the first one keeps going, untouched
    first.process.send_signal(signal.SIGTERM)
    assert first.finish() == EXIT_INTERRUPTED, first.output
    assert "Asked to stop (SIGTERM)" in first.output
    assert "ptm-studio train --resume" in first.output
    status = _assert_left_clean(run, first.output)
    assert (status["status"], status["ending"]) == ("stopped", "stopped")
    assert _listing(pictures) == before


# ----------------------------------------------------------------------------- case 4
def test_a_second_ctrl_c_stops_at_once_and_leaves_a_stopped_run(
    tmp_path: Path, image_folder_maker: Callable[..., Path], running: Callable[..., Running]
) -> None:
    """The first Ctrl-C says what a second one does; the second stops inside the batch (each
    takes a second here), and run.json says "stopped" with the last complete save kept."""
    pictures = image_folder_maker(tmp_path / "pics")
    before = _listing(pictures)
    home, run = tmp_path / "home", tmp_path / "runs" / "slow"
    trainer = running(
        [
            sys.executable,
            str(HERE / "slow_batches.py"),
            "1.0",
            *_train(pictures, run, "--epochs", "50", "--checkpoint-every-steps", "1"),
        ],
        home,
        tmp_path,
    )
    trainer.wait_for("epoch 1/50")
    trainer.process.send_signal(signal.SIGINT)
    trainer.wait_for("Ctrl-C again to stop at once")
    trainer.process.send_signal(signal.SIGINT)
    assert trainer.finish() == EXIT_INTERRUPTED, trainer.output
    assert "Stopping at once." in trainer.output
    assert "keeps its last complete checkpoint" in trainer.output
    status = _assert_left_clean(run, trainer.output)
    assert status["status"] == "stopped" and "Stopped at once" in status["note"]
    assert _listing(pictures) == before
    assert find_interrupted_runs(run.parent) == []  # stopped, not crashed: resumed on request


# ----------------------------------------------------------------------------- case 2
def test_a_relative_data_folder_means_the_same_pictures_from_anywhere(
    trained: tuple[Path, Path], tmp_path: Path, image_folder_maker: Callable[..., Path]
) -> None:
    """The run was started with ``--data pics``; resumed from another folder that has its own
    ``pics``, it trains on its own pictures, and pictures only touched (their dates) are the same
    pictures: it goes on and says so."""
    work, template = trained
    run = tmp_path / "run"
    shutil.copytree(template, run)
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["data"]["data_dir"] == str(work / "pics")  # stored absolute
    decoy = image_folder_maker(tmp_path / "pics", images_per_class=3, seed=5)
    decoy_before, pictures_before = _listing(decoy), _listing(work / "pics")
    for picture in (work / "pics" / "square").iterdir():
        os.utime(picture, ns=(picture.stat().st_atime_ns, picture.stat().st_mtime_ns + 10**9))
    pictures_before = _listing(work / "pics")
    code, output = _cli(
        work / "home", "train", "--resume", str(run), "--epochs", "2", "--quiet", cwd=tmp_path
    )
    assert code == EXIT_OK, output
    assert "only their modification times changed" in output
    status = _assert_left_clean(run, output)
    assert status["status"] == "completed" and status["data_dir"] == str(work / "pics")
    assert status["data"]["pictures"] == 24  # the run's 3 × 8, not the decoy's 3 × 3
    assert _listing(decoy) == decoy_before and _listing(work / "pics") == pictures_before


def test_resuming_on_changed_pictures_is_refused_saying_what_changed(
    case: tuple[Path, Path, Path],
) -> None:
    home, pictures, run = case
    shutil.copy(pictures / "circle" / "circle_000.png", pictures / "circle" / "new_a.png")
    shutil.copy(pictures / "circle" / "circle_001.png", pictures / "circle" / "new_b.png")
    (pictures / "stripe" / "stripe_000.png").unlink()
    before_pictures, before_run = _listing(pictures), _listing(run)
    code, output = _cli(home, "train", "--resume", str(run), "--epochs", "2", cwd=run.parent)
    assert code == EXIT_DATA, output
    assert "2 pictures were added to 'circle'" in output
    assert "1 picture was removed from 'stripe'" in output
    assert "The classes are the same" in output and "Put the folder back" in output
    assert "Traceback" not in output and "Epochs completed" not in output
    assert _listing(pictures) == before_pictures
    changed = {name for name in _listing(run) if _listing(run)[name] != before_run.get(name)}
    assert changed <= {"run.lock"}, changed  # run.json, checkpoints, log: as they were


def test_relative_paths_in_a_config_file_are_taken_from_its_folder(
    case: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-written config.json saying ``"data_dir": "pics"`` means the pics next to it,
    wherever the command is typed (the flag help says so), and the run stores it absolute."""
    from ptm_studio.cli import main

    _, pictures, _ = case
    config_file = pictures.parent / "settings.json"
    config_file.write_text(json.dumps({"data": {"data_dir": "pics"}}), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "pics").mkdir(parents=True)  # an empty decoy of the same name
    monkeypatch.chdir(elsewhere)
    output = tmp_path / "runs" / "from_config"
    arguments = ["train", "--config", str(config_file), "--output", str(output), "--epochs", "1"]
    assert main([*arguments, "--quiet", *TINY]) == EXIT_OK
    stored = json.loads((output / "config.json").read_text(encoding="utf-8"))
    assert stored["data"]["data_dir"] == str(pictures)


# ----------------------------------------------------------------------------- case 6
DAMAGES: dict[str, bytes] = {
    "not_utf8": b'{"status": "completed", "created": "\xff\xfe"}',
    "a_list": b'["completed", 3]',
    "epochs_a_word": b'{"status": "completed", "epochs_completed": "x"}',
    "accuracy_a_word": b'{"status": "completed", "best_val_accuracy": "high"}',
    "class_names_a_number": b'{"status": "running", "class_names": 5}',
    "status_a_number": b'{"status": 7}',
}


def test_one_damaged_run_json_never_hides_the_others(case: tuple[Path, Path, Path]) -> None:
    home, _, good = case
    for name, damage in DAMAGES.items():
        damaged = good.parent / name
        shutil.copytree(good, damaged)
        (damaged / "run.json").write_bytes(damage)
    code, output = _cli(home, "runs", "--runs-root", str(good.parent), cwd=good.parent)
    assert code == EXIT_OK and "Traceback" not in output, output
    lines = {line.split()[0]: line for line in output.splitlines() if line.strip()}
    assert "completed" in lines["base"]
    for name in DAMAGES:
        assert "damaged" in lines[name], (name, output)
    infos = {info.name: info for info in list_runs(good.parent)}
    assert infos["not_utf8"].status == "damaged (run.json unreadable)"
    assert "epochs_completed" in infos["epochs_a_word"].status
    assert "class_names" in infos["class_names_a_number"].status
    assert find_interrupted_runs(good.parent) == []  # a damaged run is never "running"
    config_damaged = good.parent / "config_damaged"
    shutil.copytree(good, config_damaged)
    (config_damaged / "config.json").write_text('{"data": {"image_size": "big"}}')
    assert list_runs(good.parent)[0].status  # still lists every run
    assert "config.json" in {i.name: i for i in list_runs(good.parent)}["config_damaged"].status


# ----------------------------------------------------------------------------- case 5
class _FailsAt(Callback):
    def __init__(self, hook: str, error: BaseException) -> None:
        self.hook, self.error = hook, error

    def on_event(self, event: Any, control: TrainingControl) -> None:
        if event.hook_name == self.hook:
            raise self.error


@pytest.mark.parametrize(
    "hook",
    ["on_training_started", "on_batch_finished", "on_epoch_finished", "on_checkpoint_saved"],
)
def test_a_run_failing_in_a_callback_is_never_left_running(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, hook: str
) -> None:
    finished = Trainer.new_run(
        tiny_config(num_epochs=1),
        runs_root=tmp_path,
        callbacks=[_FailsAt(hook, RuntimeError("a bug in a callback"))],
    ).run()
    assert finished.status == "failed" and "a bug in a callback" in finished.error_message
    assert finished.run_dir is not None
    assert RunDirectory(finished.run_dir).read_status()["status"] == "failed"
    assert lock_holder(finished.run_dir) is None


def test_a_run_ended_by_system_exit_in_a_callback_is_recorded_then_raises(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    trainer = Trainer.new_run(
        tiny_config(num_epochs=1),
        runs_root=tmp_path,
        callbacks=[_FailsAt("on_batch_finished", SystemExit(4))],
    )
    with pytest.raises(SystemExit):
        trainer.run()
    assert trainer.recorder is not None
    assert trainer.recorder.run.read_status()["status"] == "failed"
    assert lock_holder(trainer.recorder.path) is None


@pytest.mark.parametrize("where", ["building", "saving", "final_status"])
def test_a_run_failing_while_building_or_saving_is_never_left_running(
    tiny_config: Callable[..., RunConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    def broken(*_arguments: Any, **_options: Any) -> None:
        raise ValueError(f"broken while {where}")

    if where == "building":  # after the run folder was made
        monkeypatch.setattr(RunDirectory, "write_validation_list", broken)
    elif where == "saving":
        monkeypatch.setattr("ptm_studio.core.checkpoints.save_checkpoint", broken)
    else:  # the end itself cannot be merged into run.json: the ending alone is written
        plain_write = RunDirectory.write_status

        def write_status(self: RunDirectory, **fields: Any) -> None:
            if "ending" in fields:
                raise TypeError("a field that will not turn into JSON")
            plain_write(self, **fields)

        monkeypatch.setattr(RunDirectory, "write_status", write_status)
    finished = Trainer.new_run(tiny_config(num_epochs=1), runs_root=tmp_path / "runs").run()
    [run] = list((tmp_path / "runs").iterdir())
    status = RunDirectory(run).read_status()
    assert status.get("status") in ("failed", "completed"), status
    assert status.get("status") != "running" and lock_holder(run) is None
    assert (finished.status == "failed") == (where != "final_status")


# ----------------------------------------------------------------------------- the lock
def test_a_killed_trainer_never_blocks_a_resume(tmp_path: Path) -> None:
    """The lock dies with its process (SIGKILL included); the file left behind means nothing."""
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom ptm_studio.core.run_lock import RunLock\n"
            f"RunLock.acquire({str(run)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        found = lock_holder(run)
        assert found is not None and found.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert (run / "run.lock").exists() and lock_holder(run) is None
    with RunLock.acquire(run, patience_seconds=0):
        assert lock_holder(run) is not None  # held here: another look sees it
    assert lock_holder(run) is None


def test_a_recorder_abandoned_from_another_thread_writes_nothing_more(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    """What the second Ctrl-C relies on: once marked stopped, the training thread's later
    writes (its last status included) are skipped; the checkpoint written before stays."""

    class AbandonAfterFirstEpoch(Callback):
        def __init__(self) -> None:
            self.recorder: RunRecorder | None = None

        def on_checkpoint_saved(self, event: Any, control: TrainingControl) -> None:
            if self.recorder is None:
                self.recorder = trainer.recorder
                assert self.recorder is not None and self.recorder.abandon("test: at once")

    abandon = AbandonAfterFirstEpoch()
    trainer = Trainer.new_run(tiny_config(num_epochs=3), runs_root=tmp_path, callbacks=[abandon])
    trainer.run()
    assert abandon.recorder is not None
    status = abandon.recorder.run.read_status()
    assert status["status"] == "stopped" and status["note"] == "test: at once"
    assert status["epochs_completed"] == 1
    assert_checkpoint_loads(abandon.recorder.run.last_checkpoint_dir)


def _same_size_pictures(root: Path) -> Path:
    """Two classes of uncompressed BMPs: every file has exactly the same size."""
    from PIL import Image

    for name, colour in (("cat", (200, 40, 40)), ("dog", (40, 40, 200))):
        (root / name).mkdir(parents=True)
        for index in range(6):
            shade = tuple(max(0, value - 8 * index) for value in colour)
            Image.new("RGB", (16, 16), shade).save(root / name / f"{index}.bmp")
    return root


@pytest.fixture
def same_size_run(tmp_path: Path) -> tuple[Path, Path]:
    """(pictures, run): a one-epoch run of pictures that all have the same file size."""
    from ptm_studio.cli import main

    pictures = _same_size_pictures(tmp_path / "pics")
    run = tmp_path / "runs" / "bmp"
    arguments = ["train", "--data", str(pictures), "--output", str(run), "--epochs", "1"]
    assert main([*arguments, "--quiet", *TINY]) == EXIT_OK
    return pictures, run


def test_pictures_replaced_by_others_of_the_same_size_are_found(
    same_size_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Names and sizes alone said 'the same pictures' when the cats had become dogs."""
    from ptm_studio.cli import main

    pictures, run = same_size_run
    for index in range(6):  # the dogs' files copied over the cats' (dates kept, as cp -p does)
        shutil.copy2(pictures / "dog" / f"{index}.bmp", pictures / "cat" / f"{index}.bmp")
    before_run = _listing(run)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == EXIT_DATA
    assert (
        "pictures in 'cat' were changed (the same names, other contents)" in capsys.readouterr().err
    )
    changed = {name for name in _listing(run) if _listing(run)[name] != before_run.get(name)}
    assert changed <= {"run.lock"}, changed


def test_pictures_only_touched_resume_and_say_so(
    same_size_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from ptm_studio.cli import main

    pictures, run = same_size_run
    for picture in pictures.rglob("*.bmp"):
        os.utime(picture, (time.time() + 60, time.time() + 60))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "2", "--quiet"]) == EXIT_OK
    assert "only their modification times changed" in capsys.readouterr().err


def test_a_run_killed_before_its_first_save_says_there_is_nothing_to_resume(
    case: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from ptm_studio.cli import main

    _, _, run = case
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".last.partial").mkdir()  # what a kill mid-save leaves
    status = json.loads((run / "run.json").read_text(encoding="utf-8"))
    (run / "run.json").write_text(json.dumps({**status, "status": "running"}), encoding="utf-8")
    before = (run / "run.json").read_bytes()
    assert main(["runs", "--runs-root", str(run.parent)]) == EXIT_OK
    assert "interrupted (nothing saved)" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--quiet"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "no saved checkpoint to go on from" in err and "--config" in err
    assert "Traceback" not in err
    assert (run / "run.json").read_bytes() == before  # nothing was written


def test_a_stop_signal_while_the_command_starts_is_remembered_not_raised() -> None:
    """Ctrl-C in the middle of importing torch left it half-imported ('no attribute fx')."""
    from ptm_studio import early_signals
    from ptm_studio.cli_stopping import stopping_on_signals
    from ptm_studio.core.engine.control import StopRequest

    previous = signal.getsignal(signal.SIGINT)
    try:
        early_signals.remember_stop_signals()
        os.kill(os.getpid(), signal.SIGINT)  # raises nothing: written down
        time.sleep(0.05)
        stop_request = StopRequest()
        with stopping_on_signals(stop_request):
            assert stop_request.is_requested  # the command stops before it starts
            os.kill(os.getpid(), signal.SIGINT)  # a second one while starting: no StopAtOnce
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, previous)
        early_signals.take()


def test_a_run_stopped_while_its_pictures_are_checked_leaves_no_folder(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    from ptm_studio.core.engine.control import StopRequest

    stop_request = StopRequest()
    stop_request.request()
    finished = Trainer.new_run(
        tiny_config(), runs_root=tmp_path / "runs", stop_request=stop_request
    ).run()
    assert finished.status == "stopped" and finished.run_dir is None
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
