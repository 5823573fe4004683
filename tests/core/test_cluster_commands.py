"""The commands "Run on a cluster…" shows: torchrun on one or several machines, a SLURM script,
the settings file they train with, and what would stop them, said before anyone tries."""

from __future__ import annotations

import shlex
from pathlib import Path

from ptm_studio.cli_arguments import build_parser
from ptm_studio.core.cluster_commands import (
    ClusterPlan,
    cluster_commands,
    problems_with,
    write_settings_file,
)
from ptm_studio.core.config import RunConfig, replace_field


def _config(tmp_path: Path, **changes: object) -> RunConfig:
    config = replace_field(RunConfig(), "data.data_dir", str(tmp_path / "pictures"))
    for field_path, value in changes.items():
        config = replace_field(config, field_path.replace("__", "."), value)
    return config


def test_one_machine_runs_standalone(tmp_path: Path) -> None:
    settings = tmp_path / "my settings.json"
    commands = cluster_commands(_config(tmp_path), ClusterPlan(4), settings)
    assert shlex.split(commands.torchrun) == [
        "torchrun", "--nproc_per_node=4", "--standalone",
        "-m", "ptm_studio", "train", "--config", str(settings),
    ]  # fmt: skip
    assert commands.problems == ()


def test_several_machines_meet_at_the_first_one(tmp_path: Path) -> None:
    plan = ClusterPlan(8, machines=3, first_machine=" node01 ", port=29600)
    commands = cluster_commands(_config(tmp_path, data__batch_size=48), plan, tmp_path / "s.json")
    words = shlex.split(commands.torchrun)
    assert "--nnodes=3" in words and "--rdzv-endpoint=node01:29600" in words
    assert "--rdzv-backend=c10d" in words
    script = commands.slurm_script
    assert script.startswith("#!/bin/bash") and "#SBATCH --nodes=3" in script
    assert "#SBATCH --gpus-per-node=8" in script and "--nproc_per_node=8" in script
    assert '--rdzv-endpoint="$FIRST_MACHINE:29600"' in script
    assert commands.problems == ()


def test_what_would_fail_is_said_first(tmp_path: Path) -> None:
    problems = problems_with(_config(tmp_path, data__batch_size=30), ClusterPlan(4, machines=2))
    assert any("multiple of the 8 processes" in problem for problem in problems)
    assert any("address of the first one" in problem for problem in problems)
    pretraining = _config(tmp_path, objective__task="pretrain", objective__loss="nt_xent")
    assert problems_with(pretraining, ClusterPlan(2)) == ()
    command = cluster_commands(pretraining, ClusterPlan(2), tmp_path / "s.json").torchrun
    assert " -m ptm_studio pretrain --config " in command
    assert any("picture folder" in p for p in problems_with(RunConfig(), ClusterPlan(2)))


def test_the_settings_file_is_what_the_command_trains_with(tmp_path: Path) -> None:
    config = _config(tmp_path, optim__num_epochs=7, run_name="mine")
    settings = write_settings_file(config, tmp_path / "cluster.json")
    loaded = RunConfig.load(settings)
    assert loaded.optim.num_epochs == 7 and loaded.run_name is None
    assert loaded.data.data_dir == str(tmp_path / "pictures")
    words = shlex.split(cluster_commands(config, ClusterPlan(2), settings).torchrun)
    train = words[words.index("ptm_studio") + 1 :]
    arguments = build_parser().parse_args(train)  # the command line takes it as written
    assert Path(arguments.config) == settings
