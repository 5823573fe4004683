"""`ptm-studio train` under `torchrun --nproc_per_node=2` on the CPU (gloo), the real command:
the same result as one process, one set of files, and a run stopped mid-training (the stop
asked of one process only) that resumes without a missing or repeated step (issue 13)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from ptm_studio.core.cluster_commands import ClusterPlan, cluster_commands, write_settings_file
from ptm_studio.core.config import RunConfig, replace_field
from tests.conftest import make_image_folder

pytestmark = pytest.mark.slow

TRAINING = (
    "--image-size", "16", "--batch-size", "8", "--cpu-threads", "1", "--backbone",
    "small_cnn", "--precision", "off", "--augmentations",
)  # fmt: skip


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "pictures", images_per_class=16, size=16)


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PTM_STUDIO_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _torchrun(*arguments: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "ptm_studio", *arguments,
    ]  # fmt: skip


def _single(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ptm_studio", *arguments]


def _run(command: list[str], environment: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def test_two_processes_train_as_one_and_write_one_set_of_files(
    pictures: Path, environment: dict[str, str], tmp_path: Path
) -> None:
    # A frozen network (batch norm on its running statistics) makes each picture's gradient
    # independent of the others in its batch: two processes of 4 must then equal one of 8.
    common = ("train", "--data", str(pictures), "--epochs", "2", *TRAINING,
              "--training-mode", "feature_extraction")  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    _run(_single(*common, "--output", str(tmp_path / "one")), environment, work)
    output = _run(_torchrun(*common, "--output", str(tmp_path / "two")), environment, work)
    one, two = tmp_path / "one", tmp_path / "two"
    assert output.count("Run folder:") == 2, output  # rank 0 alone prints (start and summary)
    weights_one = load_file(one / "checkpoints" / "last" / "model.safetensors")
    weights_two = load_file(two / "checkpoints" / "last" / "model.safetensors")
    assert weights_one.keys() == weights_two.keys()
    for name, tensor in weights_one.items():
        # Close, not equal: one process's last batch has 7 pictures, the two processes' 8
        # (each share is filled up to the same length with a repeated picture).
        difference = float((tensor.float() - weights_two[name].float()).abs().max())
        assert difference < 2e-3, (name, difference)
    epochs_one = [r for r in _metrics(one) if r["type"] == "epoch"]
    epochs_two = [r for r in _metrics(two) if r["type"] == "epoch"]
    assert len(epochs_one) == len(epochs_two) == 2
    for first, second in zip(epochs_one, epochs_two, strict=True):
        # Validation is shared out and gathered: the scores are the whole set's.
        assert second["val_loss"] == pytest.approx(first["val_loss"], abs=2e-3)
        assert second["val_accuracy"] == pytest.approx(first["val_accuracy"], abs=1e-9)
        assert second["global_step"] == first["global_step"]  # the same steps per epoch
    predictions = (two / "predictions.csv").read_text().splitlines()
    assert len(predictions) == len((one / "predictions.csv").read_text().splitlines())
    # One set of files, all in the run folder: nothing from the other process anywhere.
    assert _files(two) == _files(one)
    assert not list(work.iterdir())
    assert not (tmp_path / "home" / "runs").exists() or not list(
        (tmp_path / "home" / "runs").iterdir()
    )


EPOCHS_BEFORE_THE_END = 8


def test_a_run_stopped_mid_epoch_in_one_process_stops_in_both_and_resumes(
    environment: dict[str, str], tmp_path: Path
) -> None:
    # 180 pictures: 144 to train on, 18 steps an epoch; Ctrl-C is sent once epoch 1 has been
    # written down, so the stop lands in the middle of epoch 2 (a few steps later).
    pictures = make_image_folder(tmp_path / "pictures", images_per_class=60, size=16)
    run = tmp_path / "run"
    epochs = str(EPOCHS_BEFORE_THE_END)
    command = _torchrun(
        "train", "--data", str(pictures), "--epochs", epochs, *TRAINING, "--output", str(run)
    )
    process = subprocess.Popen(
        command, env=environment, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        _wait_for_the_first_epoch(run, process)
        workers = _worker_pids(process.pid)
        assert len(workers) == 2, workers
        os.kill(max(workers), signal.SIGINT)  # Ctrl-C reaches one process (rank 1 or 0)
        output = process.communicate(timeout=120)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "stopped", output
    per_epoch = next(r["global_step"] for r in _metrics(run) if r["type"] == "epoch")
    stopped_at = max(r["global_step"] for r in _metrics(run) if r["type"] == "batch")
    assert per_epoch < stopped_at < 2 * per_epoch, (per_epoch, stopped_at)  # mid epoch 2
    _run(_torchrun("train", "--resume", str(run)), environment, tmp_path)
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "completed"
    assert status["epochs_completed"] == EPOCHS_BEFORE_THE_END
    steps = [r["global_step"] for r in _metrics(run) if r["type"] == "batch"]
    # No step missing or trained twice: the rank-aware order went on where it stopped.
    assert steps == list(range(1, EPOCHS_BEFORE_THE_END * per_epoch + 1))


def _wait_for_the_first_epoch(run: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        metrics = run / "metrics.jsonl"
        if metrics.is_file() and '"type": "epoch"' in metrics.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(process.stdout.read().decode())  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no epoch within 2 minutes"
        time.sleep(0.01)


def _worker_pids(parent: int) -> list[int]:
    """The training processes torchrun started (its children running ptm_studio)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent_pid = int(stat.rsplit(")", 1)[1].split()[1])
        if parent_pid == parent and b"ptm_studio" in command:
            found.append(int(entry.name))
    return found


def test_the_command_run_on_a_cluster_shows_trains(
    pictures: Path, environment: dict[str, str], tmp_path: Path
) -> None:
    """What "Run on a cluster…" gives the user to copy, run as given (torchrun on PATH or
    not: the same launcher)."""
    config = RunConfig()
    for field_path, value in (
        ("data.data_dir", str(pictures)), ("data.image_size", 16), ("data.batch_size", 8),
        ("optim.num_epochs", 1), ("device.cpu_threads", 1), ("data.augmentations", ()),
    ):  # fmt: skip
        config = replace_field(config, field_path, value)
    settings = write_settings_file(config, tmp_path / "cluster settings.json")
    command = shlex.split(cluster_commands(config, ClusterPlan(2), settings).torchrun)
    assert command[0] == "torchrun"
    _run([sys.executable, "-m", "torch.distributed.run", *command[1:]], environment, tmp_path)
    (run,) = (tmp_path / "home" / "runs").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "completed"


def test_contrastive_pretraining_runs_under_torchrun(
    pictures: Path, environment: dict[str, str], tmp_path: Path
) -> None:
    """NT-Xent over the whole step's batch (the projections gathered from both processes):
    the run completes, writes the files a one-process pretraining writes, and its backbone
    is one later runs can start from."""
    common = ("pretrain", "--data", str(pictures), "--epochs", "1", "--loss", "nt_xent",
              *TRAINING)  # fmt: skip
    _run(_single(*common, "--output", str(tmp_path / "one")), environment, tmp_path)
    output = _run(_torchrun(*common, "--output", str(tmp_path / "two")), environment, tmp_path)
    two = tmp_path / "two"
    assert json.loads((two / "run.json").read_text())["status"] == "completed", output
    assert _files(two) == _files(tmp_path / "one")
    backbone = load_file(two / "checkpoints" / "last" / "model.safetensors")
    assert backbone and all(name.startswith("backbone.") for name in backbone)


def test_two_machines_meet_at_a_rendezvous_point(
    pictures: Path, environment: dict[str, str], tmp_path: Path
) -> None:
    """Multi-node as a cluster runs it (--nnodes, --rdzv-endpoint), the two "machines" being
    two torchrun agents on this one: they meet, train one run together, one prints."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--nnodes=2",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=test",
        "-m", "ptm_studio", "train", "--data", str(pictures), "--epochs", "1", *TRAINING,
        "--output", str(run),
    ]  # fmt: skip
    machines = [
        subprocess.Popen(
            command,
            env=environment,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for machine in machines:
        try:
            outputs.append(machine.communicate(timeout=240)[0])
        finally:
            if machine.poll() is None:
                machine.kill()
    assert [machine.returncode for machine in machines] == [0, 0], outputs
    assert sum(output.count("Run folder:") for output in outputs) == 2  # rank 0's start and end
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
