"""Training on several processes (GPUs, machines) with torch.distributed, as ``torchrun`` starts
them: which process this is, the process group, and the few collective moves a run needs.

``torchrun --nproc_per_node=N -m ptm_studio train …`` starts N copies of the same command;
each reads its rank from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK). Every
copy builds the same parts from the same config and seed; the training pictures are shared out
(see ResumableShuffleSampler), the gradients averaged by DistributedDataParallel once per step,
the validation answers gathered so that every copy computes the same scores, and only rank 0
writes the run folder. Outside torchrun (WORLD_SIZE unset or 1) nothing here does anything.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")

# A collective that waits this long for another process means that process is gone.
COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class DistributedContext:
    """Which of the run's processes this one is."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistributedContext:
        """The process torchrun (or SLURM via torchrun) started; one process otherwise."""
        world_size = _int_from_env("WORLD_SIZE", 1)
        if world_size <= 1:
            return cls()
        return cls(
            rank=_int_from_env("RANK", 0),
            world_size=world_size,
            local_rank=_int_from_env("LOCAL_RANK", 0),
        )

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run folder and prints."""
        return self.rank == 0

    def device(self, chosen: torch.device) -> torch.device:
        """Each process on a machine gets its own GPU (its local rank); the CPU is shared."""
        if not self.is_distributed or chosen.type != "cuda":
            return chosen
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def start(self, device: torch.device) -> None:
        """Join the process group (NCCL between GPUs, gloo on CPUs); once per process."""
        if not self.is_distributed or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)

    def leave(self, *, together: bool = False) -> None:
        """Leave the process group when the run ends (a later run in the process joins again).
        ``together`` (the run ended as agreed, on every process): wait for the others first,
        so none tears down its connections while another still works (rank 0 writes the run's
        last records): a second process once aborted at exit, tearing down alone."""
        if self.is_distributed and dist.is_initialized():
            if together:
                dist.barrier()
            dist.destroy_process_group()

    # ----------------------------------------------------------------- collective moves
    def any_rank(self, flag: bool) -> bool:
        """True on every process when it is True on any (a stop asked of one stops all at the
        same step: the others would otherwise wait for it in the next gradient exchange)."""
        if not self.is_distributed:
            return flag
        value = torch.tensor(
            [1 if flag else 0], dtype=torch.int32, device=self._collective_device()
        )
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def total(self, value: float) -> float:
        """The sum of ``value`` over the processes."""
        if not self.is_distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item())

    def sum_counts(self, *counts: int) -> tuple[int, ...]:
        if not self.is_distributed:
            return counts
        tensor = torch.tensor(counts, dtype=torch.int64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tuple(int(value) for value in tensor.tolist())

    def gather(self, value: T) -> list[T]:
        """Every process's ``value`` (any picklable object), in rank order, on every process."""
        if not self.is_distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` on every process (a time budget's plan; with None, a wait for
        rank 0 to get there)."""
        if not self.is_distributed:
            return value
        holder: list[Any] = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def _collective_device(self) -> torch.device:
        backend = dist.get_backend() if dist.is_initialized() else "gloo"
        return torch.device("cuda", self.local_rank) if backend == "nccl" else torch.device("cpu")

    # ----------------------------------------------------------------- the model
    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` in DistributedDataParallel (its gradients averaged over the processes
        in the backward pass); the module itself on one process. The trainable parameters
        are the ones that require gradients now: wrap again when that changes."""
        if not self.is_distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)


def no_sync_unless_last(module: nn.Module, is_last: bool) -> contextlib.AbstractContextManager:
    """For a batch computed in pieces: the gradients are exchanged once, with the last piece."""
    no_sync = getattr(module, "no_sync", None)
    if is_last or no_sync is None:
        return contextlib.nullcontext()
    return no_sync()


def shard(indices: list[int], context: DistributedContext, *, pad: bool) -> list[int]:
    """This process's share of ``indices``: every world_size-th, from its rank on, so that the
    processes' k-th batches together are the k-th batch one process would have trained on.
    ``pad``: repeat the first indices so that every process gets as many (training must
    take the same number of steps on every process; validation need not)."""
    if not context.is_distributed:
        return indices
    if pad and indices:
        short = -len(indices) % context.world_size
        indices = indices + (indices * (short // len(indices) + 1))[:short]
    return indices[context.rank :: context.world_size]


def _int_from_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default
