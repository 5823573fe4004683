"""The pieces of a torchrun run that need no second process: which process this is, each
process's share of the pictures, and the batch size shared out."""

from __future__ import annotations

import pytest

from ptm_studio.core.config import ConfigError
from ptm_studio.core.engine.distributed import DistributedContext, shard
from ptm_studio.core.engine.sampling import ResumableShuffleSampler, epoch_permutation
from ptm_studio.core.engine.setup import batch_per_process


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
