"""The pieces of a torchrun run that need no second process: which process this is, each
process's share of the pictures, and the batch size shared out."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn

from ptm_studio.core.config import ConfigError
from ptm_studio.core.engine.distributed import DistributedContext, no_sync_unless_last, shard
from ptm_studio.core.engine.loops import BatchResult, StepContext, accumulate_gradients
from ptm_studio.core.engine.memory import split_batch
from ptm_studio.core.engine.sampling import ResumableShuffleSampler, epoch_permutation
from ptm_studio.core.engine.setup import batch_per_process
from ptm_studio.core.objectives.self_supervised import across_processes, nt_xent_loss


def test_the_process_is_read_from_what_torchrun_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert DistributedContext.from_env() == DistributedContext()
    assert DistributedContext().is_main and not DistributedContext().is_distributed
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    context = DistributedContext.from_env()
    assert (context.rank, context.world_size, context.local_rank) == (3, 4, 1)
    assert context.is_distributed and not context.is_main


@pytest.mark.parametrize("world_size", [2, 3, 4])
@pytest.mark.parametrize("num_items", [12, 13, 39])
def test_the_processes_kth_batches_are_the_single_process_kth_batch(
    world_size: int, num_items: int
) -> None:
    batch = 2 * world_size
    per_process = batch // world_size
    order = epoch_permutation(num_items, seed=7, epoch_index=3)
    shares = [
        ResumableShuffleSampler(num_items, 7, distributed=DistributedContext(rank, world_size))
        for rank in range(world_size)
    ]
    for sampler in shares:
        sampler.set_epoch(3)
    lists = [list(sampler) for sampler in shares]
    assert len({len(items) for items in lists}) == 1  # the same number of steps everywhere
    assert all(len(items) == len(sampler) for items, sampler in zip(lists, shares, strict=True))
    full_batches = num_items // batch
    for k in range(full_batches):
        together = sorted(
            i for items in lists for i in items[k * per_process : (k + 1) * per_process]
        )
        assert together == sorted(order[k * batch : (k + 1) * batch])
    # Every picture is trained on; the repeats only fill the last shares up.
    assert set().union(*map(set, lists)) == set(range(num_items))
    assert sum(map(len, lists)) - num_items < world_size


def test_a_resumed_process_skips_only_its_own_share_of_the_epoch() -> None:
    context = DistributedContext(rank=1, world_size=2)
    sampler = ResumableShuffleSampler(20, 0, distributed=context)
    sampler.set_epoch(0)
    whole = list(sampler)
    sampler.set_epoch(0, start_index=4)  # two batches of 2 done before the stop
    assert list(sampler) == whole[4:] and len(sampler) == len(whole) - 4


def test_validation_is_shared_without_repeats() -> None:
    shares = [shard(list(range(9)), DistributedContext(rank, 2), pad=False) for rank in (0, 1)]
    assert shares == [[0, 2, 4, 6, 8], [1, 3, 5, 7]]


def test_the_batch_is_shared_out_evenly_or_refused_by_name() -> None:
    assert batch_per_process(32, DistributedContext(0, 4)) == 8
    assert batch_per_process(30, DistributedContext()) == 30
    with pytest.raises(ConfigError, match="multiple of 4") as refused:
        batch_per_process(30, DistributedContext(0, 4))
    assert refused.value.field_path == "data.batch_size"


def _nt_xent_on_two_processes(rank: int, port: int, results: Any, shares: list[int]) -> None:
    """One of two gloo processes: its share of fixed projections (``shares``: how many rows
    each process holds), the loss over both shares."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        first, second = _projections()
        start = sum(shares[:rank])
        mine = slice(start, start + shares[rank])
        local_first = first[mine].clone().requires_grad_(True)
        local_second = second[mine].clone().requires_grad_(True)
        loss = nt_xent_loss(
            across_processes(local_first), across_processes(local_second), temperature=0.5
        )
        loss.backward()
        assert local_first.grad is not None
        # Plain numbers: a tensor would be shared through a file this process takes with it.
        results.put((rank, float(loss.detach()), local_first.grad.tolist()))
    finally:
        dist.destroy_process_group()


def _on_two_processes(worker: Callable[..., None], argument: Any) -> list[tuple[Any, ...]]:
    """``worker(rank, port, results, argument)`` in two spawned gloo processes; what each put
    in ``results``, in rank order."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(rank, port, results, argument)) for rank in (0, 1)
    ]
    for process in processes:
        process.start()
    gathered = sorted(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return gathered


def _projections() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(8, 6, generator=generator), torch.randn(8, 6, generator=generator)


@pytest.mark.parametrize(
    "shares",
    [[4, 4], [4, 3]],
    ids=["even shares", "one process a picture short (one could not be read)"],
)
def test_nt_xent_compares_each_picture_with_every_process_s_pictures(shares: list[int]) -> None:
    """Two processes' shares give the loss of the one batch they make together, and
    gradients that DDP's mean over the processes turns into exactly the one batch's."""
    first, second = _projections()
    total = sum(shares)
    first, second = first[:total].clone(), second[:total].clone()
    first.requires_grad_(True)
    expected = nt_xent_loss(first, second.clone(), temperature=0.5)
    expected_value = float(expected.detach())
    expected.backward()
    assert first.grad is not None
    gathered = _on_two_processes(_nt_xent_on_two_processes, shares)
    for rank, loss, gradient in gathered:
        assert loss == pytest.approx(expected_value, rel=1e-6)  # not each share's own loss
        start = sum(shares[:rank])
        mine = first.grad[start : start + shares[rank]]
        torch.testing.assert_close(torch.tensor(gradient) / 2, mine)  # DDP's mean over 2


def _small_batch_objective(name: str) -> nn.Module:
    """MoCo or VICReg on a backbone without batch norm (a picture's output is its own, whatever
    else is in its batch), the same weights in every process."""
    from ptm_studio.core.objectives.small_batch import MoCoObjective, VICRegObjective

    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6))
    if name == "moco":
        objective: nn.Module = MoCoObjective(6, 4, memory_size=8, projection_dim=5)
        objective.attach(backbone)  # type: ignore[operator]
    else:
        objective = VICRegObjective(6, 4, projection_dim=5)
    objective.train()
    return nn.ModuleDict({"backbone": backbone, "objective": objective})


def _views() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(8, 3, 4, 4, generator=generator) for _ in range(2)]


def _one_step(name: str, share: slice) -> tuple[float, list[list[float]], list[list[float]]]:
    """The objective's loss on ``share`` of the views, its weights' gradients and, for MoCo,
    its memory after the step."""
    parts = _small_batch_objective(name)
    output = parts["objective"](parts["backbone"], [view[share] for view in _views()])
    output.loss.backward()
    gradients = [p.grad.flatten().tolist() for p in parts.parameters() if p.grad is not None]
    memory = parts["objective"].memory.tolist() if name == "moco" else []
    return float(output.loss.detach()), gradients, memory


def _small_batch_on_two_processes(rank: int, port: int, results: Any, name: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        results.put((rank, *_one_step(name, slice(4 * rank, 4 * rank + 4))))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", ["moco", "vicreg"])
def test_small_batch_objectives_see_the_whole_step_s_batch(name: str) -> None:
    """Two processes of 4 pictures as one of 8: MoCo's keys are every process's (negatives,
    and the same memory in both), VICReg's variance and covariance the whole batch's; the
    processes' mean gradient (what DDP applies) is the one process's."""
    loss, gradients, memory = _one_step(name, slice(0, 8))
    gathered = _on_two_processes(_small_batch_on_two_processes, name)
    losses = [entry[1] for entry in gathered]
    if name == "moco":  # each process's loss is over its own queries: the mean is the whole's
        assert sum(losses) / 2 == pytest.approx(loss, rel=1e-5)
        for entry in gathered:
            torch.testing.assert_close(torch.tensor(entry[3]), torch.tensor(memory))
    else:  # every process computes the whole batch's loss
        assert losses == pytest.approx([loss, loss], rel=1e-5)
    for index, expected in enumerate(gradients):
        mean = (torch.tensor(gathered[0][2][index]) + torch.tensor(gathered[1][2][index])) / 2
        torch.testing.assert_close(mean, torch.tensor(expected), rtol=1e-4, atol=1e-5)


class _CountingNoSync(nn.Module):
    """A stand-in for a DDP-wrapped model: counts the pieces computed inside ``no_sync``."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)
        self.in_no_sync = False
        self.pieces_without_exchange = 0
        self.pieces_with_exchange = 0

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        self.in_no_sync = True
        try:
            yield
        finally:
            self.in_no_sync = False

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.in_no_sync:
            self.pieces_without_exchange += 1
        else:
            self.pieces_with_exchange += 1
        return self.layer(images)


def test_a_batch_in_pieces_exchanges_gradients_once_with_its_last_piece() -> None:
    model = _CountingNoSync()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    context = StepContext(
        model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False), 0.0
    )
    batch = (torch.randn(8, 4), torch.randint(0, 2, (8,)))

    def compute_loss(piece: tuple[torch.Tensor, torch.Tensor]) -> BatchResult:
        logits = model(piece[0])
        return BatchResult(nn.functional.cross_entropy(logits, piece[1]), None, len(piece[1]))

    accumulate_gradients(
        context,
        split_batch(batch, 4),
        compute_loss,
        gradient_sync=lambda is_last: no_sync_unless_last(model, is_last),
    )
    assert (model.pieces_without_exchange, model.pieces_with_exchange) == (3, 1)
    one_piece = _CountingNoSync()
    assert isinstance(no_sync_unless_last(one_piece, True), contextlib.nullcontext)
    assert isinstance(no_sync_unless_last(nn.Linear(2, 2), False), contextlib.nullcontext)
