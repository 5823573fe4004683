"""Out-of-memory recovery pieces: cutting batches, equal gradients, and when to give up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ptm_studio.core.engine.loops import BatchResult, StepContext, optimization_step
from ptm_studio.core.engine.memory import (
    MicroBatching,
    OutOfMemoryError,
    batch_length,
    is_out_of_memory,
    split_batch,
)

CUDA_OOM = "CUDA out of memory. Tried to allocate 20.00 MiB"


def test_batches_of_nested_tensors_are_cut_into_nearly_equal_pieces() -> None:
    views = [torch.arange(5), torch.arange(5) + 10]
    batch = (views, torch.arange(5) * 2)
    pieces = split_batch(batch, 2)
    assert [batch_length(piece) for piece in pieces] == [3, 2]
    assert pieces[1][0][1].tolist() == [13, 14] and pieces[1][1].tolist() == [6, 8]
    assert isinstance(pieces[0][0], list) and isinstance(pieces[0], tuple)
    assert split_batch(batch, 1) == [batch]


def test_out_of_memory_is_recognised_from_cuda_and_mps_errors_only() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError(CUDA_OOM))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


def tiny_step_context(seed: int) -> tuple[nn.Module, StepContext]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return model, StepContext(model, optimizer, scheduler, scaler, gradient_clip_norm=1.0)


@pytest.mark.parametrize(
    "loss_function",
    [
        nn.CrossEntropyLoss(),
        nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0]), label_smoothing=0.1),
    ],
    ids=["plain", "class_weights_and_smoothing"],
)
def test_a_batch_in_pieces_updates_the_weights_as_the_whole_batch_does(
    loss_function: nn.CrossEntropyLoss,
) -> None:
    generator = torch.Generator().manual_seed(0)
    batch = (torch.randn(7, 6, generator=generator), torch.randint(0, 3, (7,), generator=generator))

    def loss_share(piece: tuple[torch.Tensor, torch.Tensor]) -> float:
        weight = loss_function.weight
        return float(len(piece[1]) if weight is None else weight[piece[1]].sum())

    weights_after = []
    for pieces in (1, 3):
        model, context = tiny_step_context(seed=1)

        def compute_loss(
            piece: tuple[torch.Tensor, torch.Tensor], model: nn.Module = model
        ) -> BatchResult:
            logits = model(piece[0])
            correct = int((logits.argmax(dim=1) == piece[1]).sum())
            return BatchResult(loss_function(logits, piece[1]), correct, len(piece[1]))

        step = optimization_step(context, split_batch(batch, pieces), compute_loss, loss_share)
        assert step.count == 7
        weights_after.append((step, [p.detach().clone() for p in model.parameters()]))
    (whole, whole_weights), (cut, cut_weights) = weights_after
    assert cut.loss == pytest.approx(whole.loss, rel=1e-6)
    assert cut.correct == whole.correct
    for whole_tensor, cut_tensor in zip(whole_weights, cut_weights, strict=True):
        torch.testing.assert_close(cut_tensor, whole_tensor, rtol=1e-5, atol=1e-6)


def test_micro_batching_doubles_the_pieces_until_the_work_fits_and_says_so() -> None:
    messages: list[str] = []
    micro = MicroBatching(torch.device("cpu"), messages.append)
    seen_sizes: list[list[int]] = []

    def work(pieces: list[torch.Tensor]) -> int:
        seen_sizes.append([len(piece) for piece in pieces])
        if max(len(piece) for piece in pieces) > 3:
            raise torch.OutOfMemoryError(CUDA_OOM)
        return sum(int(piece.sum()) for piece in pieces)

    assert micro.run(torch.arange(10), work, "training") == 45
    assert seen_sizes == [[10], [5, 5], [3, 3, 2, 2]]
    assert micro.pieces == 4 and len(messages) == 2
    assert "batch of 10 pictures" in messages[-1] and "all 10 pictures" in messages[-1]
    # The next batch starts with the pieces that worked.
    micro.run(torch.arange(10), work, "training")
    assert seen_sizes[-1] == [3, 3, 2, 2]


def test_when_one_picture_does_not_fit_the_message_says_what_to_change() -> None:
    def never_fits(_pieces: list[torch.Tensor]) -> None:
        raise torch.OutOfMemoryError(CUDA_OOM)

    micro = MicroBatching(torch.device("cpu"))
    with pytest.raises(OutOfMemoryError, match="one picture at a time") as caught:
        micro.run(torch.arange(4), never_fits, "validation")
    assert "smaller image size" in str(caught.value) and "during validation" in str(caught.value)
    assert micro.pieces == 4


def test_other_errors_are_not_retried() -> None:
    calls = []

    def broken(_pieces: list[torch.Tensor]) -> None:
        calls.append(1)
        raise RuntimeError("shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        MicroBatching(torch.device("cpu")).run(torch.arange(4), broken, "training")
    assert len(calls) == 1


def test_contrastive_pieces_keep_at_least_two_pictures() -> None:
    seen_sizes: list[list[int]] = []

    def fits_two(pieces: list[torch.Tensor]) -> None:
        seen_sizes.append([len(piece) for piece in pieces])
        raise torch.OutOfMemoryError(CUDA_OOM)

    micro = MicroBatching(torch.device("cpu"))
    micro.smallest_piece = 2
    with pytest.raises(OutOfMemoryError, match="even with 2 pictures at a time"):
        micro.run(torch.arange(5), fits_two, "training")
    assert seen_sizes == [[5], [3, 2]]
