"""MoCo (a memory of recent pictures' keys from a slowly following copy), and VICReg (objectives/small_batch.py): the formulas
on hand-made cases and the memory's bookkeeping (tests/core/test_pretraining.py trains and
resumes runs with them)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from ptm_studio.core.objectives.small_batch import (
    KEY_MOMENTUM,
    VICREG_EPSILON,
    MoCoObjective,
    VICRegObjective,
    info_nce_with_memory,
    vicreg_loss,
)


def _pair(batch: int, size: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    first = torch.randn(batch, size, generator=generator)
    return first, first + 0.3 * torch.randn(batch, size, generator=generator)


def test_with_an_empty_memory_it_is_the_in_batch_loss() -> None:
    queries, keys = _pair(5)
    in_batch = functional.cross_entropy(
        functional.normalize(queries, dim=1) @ functional.normalize(keys, dim=1).T / 0.5,
        torch.arange(5),
    )
    assert torch.allclose(info_nce_with_memory(queries, keys, torch.zeros(0, 6), 0.5), in_batch)


def test_a_memory_holding_the_rest_of_a_batch_gives_that_batchs_loss() -> None:
    """Half a batch with the other half's keys in its memory: the two halves together give
    exactly the whole batch's in-batch loss (each half is the queries of its own share)."""
    queries, keys = _pair(8)
    whole = info_nce_with_memory(queries, keys, torch.zeros(0, 6), 0.2)
    halves = []
    for own, other in ((slice(0, 4), slice(4, 8)), (slice(4, 8), slice(0, 4))):
        memory = functional.normalize(keys[other], dim=1)
        halves.append(info_nce_with_memory(queries[own], keys[own], memory, 0.2))
    assert torch.allclose((halves[0] + halves[1]) / 2, whole, atol=1e-6)


def _moco(memory_size: int) -> MoCoObjective:
    objective = MoCoObjective(6, 16, memory_size=memory_size, projection_dim=4)
    objective.attach(nn.Linear(6, 6))  # the "backbone": pictures are 6 numbers here
    return objective.train()


def test_the_memory_keeps_the_latest_keys_and_only_while_training() -> None:
    objective = _moco(memory_size=3)
    backbone = nn.Linear(6, 6)
    assert objective.memory.shape == (6, 4) and int(objective.memory_filled) == 0
    views = [torch.randn(2, 6), torch.randn(2, 6)]
    output = objective(backbone, views)
    assert objective.key_backbone is not None
    keys = objective.key_projection(objective.key_backbone(torch.cat(views)))
    assert int(objective.memory_filled) == 4 and int(objective.memory_next) == 4
    assert torch.allclose(objective.memory[:4], functional.normalize(keys, dim=1), atol=1e-6)
    assert torch.isfinite(output.loss)
    objective(backbone, views)  # 4 more rows into 6: the ring wraps
    assert int(objective.memory_filled) == 6 and int(objective.memory_next) == 2
    objective.eval()
    kept = objective.memory.clone()
    objective(backbone, [torch.randn(2, 6), torch.randn(2, 6)])
    assert torch.equal(objective.memory, kept)  # measuring does not change what it remembers
    assert {"memory", "memory_filled", "memory_next"} <= set(objective.state_dict())


def test_the_key_copy_follows_slowly_and_learns_nothing_itself() -> None:
    objective = _moco(memory_size=4)
    backbone = nn.Linear(6, 6)
    assert isinstance(objective.key_backbone, nn.Linear)
    before = objective.key_backbone.weight.detach().clone()
    output = objective(backbone, [torch.randn(3, 6), torch.randn(3, 6)])
    output.loss.backward()
    expected = KEY_MOMENTUM * before + (1 - KEY_MOMENTUM) * backbone.weight.detach()
    key_backbone = objective.key_backbone
    assert isinstance(key_backbone, nn.Linear)
    assert torch.allclose(key_backbone.weight, expected)
    assert all(parameter.grad is None for parameter in key_backbone.parameters())
    assert backbone.weight.grad is not None  # the learning network gets the gradients
    assert key_backbone.training  # it normalises each batch by the batch's own statistics


def test_the_memory_makes_the_task_harder_than_the_batch_alone() -> None:
    torch.manual_seed(0)
    objective = _moco(memory_size=64)
    backbone = nn.Linear(6, 6)
    views = [torch.randn(4, 6), torch.randn(4, 6)]
    alone = objective(backbone, views).loss
    for _ in range(8):
        objective(backbone, [torch.randn(4, 6), torch.randn(4, 6)])
    with_memory = objective(backbone, views).loss
    assert with_memory > alone  # more negatives to tell the twin from


def test_vicreg_terms_on_hand_made_cases() -> None:
    spread = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    same = vicreg_loss(spread, spread)
    assert same["invariance"] == 0  # identical views
    # Each dimension: values (2, -2, 0, 0), variance 8/3, std above 1: no variance penalty.
    assert same["variance"] == 0
    assert torch.allclose(same["covariance"], torch.tensor(0.0))  # the dimensions are unrelated
    collapsed = torch.ones(4, 3)  # every picture the same output
    terms = vicreg_loss(collapsed, collapsed)
    expected = 2 * (1.0 - np.sqrt(VICREG_EPSILON))  # both views, every dimension at std 0
    assert torch.allclose(terms["variance"], torch.tensor(expected, dtype=torch.float32))
    tied = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # the two dimensions move together
    # Covariance matrix [[2, 2], [2, 2]]: off-diagonal squares 4 + 4, over 2 dimensions.
    assert torch.allclose(vicreg_loss(tied, tied)["covariance"], torch.tensor(2 * 4.0))
    shifted = vicreg_loss(spread, spread + 1.0)
    assert torch.allclose(shifted["invariance"], torch.tensor(1.0))
    assert torch.allclose(
        shifted["loss"],
        25.0 * shifted["invariance"] + 25.0 * shifted["variance"] + shifted["covariance"],
    )


def test_vicreg_reports_its_terms() -> None:
    objective = VICRegObjective(6, 16, projection_dim=8)
    output = objective(nn.Identity(), [torch.randn(4, 6), torch.randn(4, 6)])
    assert set(output.extras) == {"invariance", "variance", "covariance"}
    assert all(not value.requires_grad for value in output.extras.values())
