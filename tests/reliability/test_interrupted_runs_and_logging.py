"""T5: a run killed mid-way is found at the next start (to offer Resume); the log file and
faulthandler are set up for the app and the CLI."""

from __future__ import annotations

import faulthandler
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import psutil

from ptm_studio.core.app_logging import configure_logging
from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import StopRequest, TrainingControl
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory, find_interrupted_runs


def test_runs_left_running_with_a_checkpoint_are_offered_for_resume(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    completed = Trainer.new_run(tiny_config(num_epochs=1), runs_root=tmp_path).run()
    stop = StopRequest()
    stop.request()
    stopped = Trainer.new_run(
        tiny_config(num_epochs=1), runs_root=tmp_path, stop_request=stop
    ).run()
    crashed = Trainer.new_run(tiny_config(num_epochs=1), runs_root=tmp_path).run()
    # As if the process died mid-run: run.json still says "running".
    RunDirectory(crashed.run_dir).write_status(status="running")  # type: ignore[arg-type]
    never_saved = RunDirectory.create(tmp_path, "died before its first checkpoint")
    never_saved.write_config(tiny_config())
    never_saved.write_status(status="running")

    found = [run.path for run in find_interrupted_runs(tmp_path)]
    assert found == [crashed.run_dir]
    assert completed.status == "completed" and stopped.status == "stopped"


def test_log_file_and_faulthandler(tmp_path: Path) -> None:
    log_file = configure_logging(tmp_path / "logs")
    logging.getLogger("ptm_studio.test").warning("something to look at later")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert log_file.parent == tmp_path / "logs"
    assert "something to look at later" in log_file.read_text(encoding="utf-8")
    assert faulthandler.is_enabled()
    for handler in list(logging.getLogger().handlers):
        if getattr(handler, "baseFilename", None) == str(log_file):
            logging.getLogger().removeHandler(handler)
            handler.close()


def test_a_run_still_training_in_another_process_is_not_offered(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    """Two windows (or the app and the CLI): the other one's live run is not 'interrupted'."""
    import subprocess
    import sys

    finished = Trainer.new_run(tiny_config(num_epochs=1), runs_root=tmp_path).run()
    run = RunDirectory(finished.run_dir)  # type: ignore[arg-type]
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = psutil.Process(alive.pid).create_time()
    try:
        run.write_status(status="running", pid=alive.pid, process_started=started)
        assert find_interrupted_runs(tmp_path) == []
        # The same pid, but a process started at another time: the pid was reused.
        run.write_status(process_started=started - 3600)
        assert [info.path for info in find_interrupted_runs(tmp_path)] == [run.path]
        # Recorded under another computer name: it cannot be checked, so it is offered.
        run.write_status(process_started=started, host="another-computer")
        assert [info.path for info in find_interrupted_runs(tmp_path)] == [run.path]
    finally:
        alive.kill()
        alive.wait()
    run.write_status(host=socket.gethostname())
    assert [info.path for info in find_interrupted_runs(tmp_path)] == [run.path]  # it died


def test_a_run_training_in_this_process_is_not_offered_until_it_ends(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    seen_during_run: list[list[Path]] = []

    class LookForInterrupted(Callback):
        def on_epoch_finished(self, event: object, control: TrainingControl) -> None:
            seen_during_run.append([info.path for info in find_interrupted_runs(tmp_path)])

    Trainer.new_run(
        tiny_config(num_epochs=1), runs_root=tmp_path, callbacks=[LookForInterrupted()]
    ).run()
    assert seen_during_run == [[]]
