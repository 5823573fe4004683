"""What to type to train a run on several GPUs or machines: the settings written to a file and
the exact ``torchrun`` command (one machine, or several with a rendezvous point), plus a SLURM
batch script for clusters that use it. The window shows these for the user to copy ("Run on a
cluster…"); nothing here starts anything.

torchrun starts ``processes_per_machine`` copies of ``ptm_studio train --config FILE`` on each
machine; the batch size in the settings is the whole step's, shared out evenly (see
engine/distributed.py), so it must be a multiple of the number of processes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ptm_studio.core.atomic_io import write_text_atomic
from ptm_studio.core.config import RunConfig

DEFAULT_PORT = 29500


@dataclass(frozen=True)
class ClusterPlan:
    """How many machines and processes, and where they meet."""

    processes_per_machine: int = 1  # usually the GPUs in each machine
    machines: int = 1
    first_machine: str = ""  # host name or address of the machine the others join
    port: int = DEFAULT_PORT

    @property
    def processes(self) -> int:
        return self.processes_per_machine * self.machines


@dataclass(frozen=True)
class ClusterCommands:
    torchrun: str
    slurm_script: str
    problems: tuple[str, ...]  # what would stop the command from working, in words


def cluster_commands(config: RunConfig, plan: ClusterPlan, settings_file: Path) -> ClusterCommands:
    """The commands that train ``config`` (saved in ``settings_file``) as ``plan`` says."""
    # torchrun starts Python with what follows: the module, as `python -m ptm_studio` does.
    verb = "pretrain" if config.objective.task == "pretrain" else "train"
    train = ["-m", "ptm_studio", verb, "--config", str(settings_file)]
    return ClusterCommands(
        torchrun=shlex.join([*_torchrun_start(plan), *train]),
        slurm_script=_slurm_script(plan, train),
        problems=problems_with(config, plan),
    )


def problems_with(config: RunConfig, plan: ClusterPlan) -> tuple[str, ...]:
    found = []
    if config.data.batch_size % plan.processes:
        found.append(
            f"The batch size ({config.data.batch_size}) must be a multiple of the "
            f"{plan.processes} processes, which share each step's pictures out evenly."
        )
    if plan.machines > 1 and not plan.first_machine.strip():
        found.append("Several machines need the address of the first one, where the others meet.")
    if not config.data.data_dir:
        found.append("Choose a picture folder first; every machine must see it at that path.")
    return tuple(found)


def write_settings_file(config: RunConfig, destination: Path) -> Path:
    """The settings a cluster run trains with (its own run name and consent left out)."""
    write_text_atomic(destination, config.for_another_run().with_absolute_paths().to_json() + "\n")
    return destination


def _torchrun_start(plan: ClusterPlan) -> list[str]:
    start = ["torchrun", f"--nproc_per_node={plan.processes_per_machine}"]
    if plan.machines == 1:
        return [*start, "--standalone"]
    endpoint = f"{plan.first_machine.strip() or 'FIRST_MACHINE'}:{plan.port}"
    return [
        *start,
        f"--nnodes={plan.machines}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        "--rdzv-id=ptm-studio",
    ]


def _slurm_script(plan: ClusterPlan, train: list[str]) -> str:
    """One task per machine, each a torchrun that starts that machine's processes; the first
    machine SLURM gives the job is where they meet."""
    launch = [
        "torchrun",
        f"--nproc_per_node={plan.processes_per_machine}",
        f"--nnodes={plan.machines}",
        "--rdzv-backend=c10d",
        f'--rdzv-endpoint="$FIRST_MACHINE:{plan.port}"',
        '--rdzv-id="$SLURM_JOB_ID"',
        *(shlex.quote(part) for part in train),
    ]
    return "\n".join(
        (
            "#!/bin/bash",
            "#SBATCH --job-name=ptm-studio",
            f"#SBATCH --nodes={plan.machines}",
            "#SBATCH --ntasks-per-node=1",
            f"#SBATCH --gpus-per-node={plan.processes_per_machine}",
            "#SBATCH --time=04:00:00",
            "",
            "# Every machine needs PTM Studio installed and the pictures at the same path.",
            'FIRST_MACHINE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            "srun " + " ".join(launch),
            "",
        )
    )
