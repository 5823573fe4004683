"""The two inner loops of training: one optimisation step, and one evaluation pass."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from ptm_studio.core.engine.distributed import DistributedContext
from ptm_studio.core.engine.events import PredictionRecord
from ptm_studio.core.engine.memory import MicroBatching, batch_length
from ptm_studio.core.metrics import accuracy, confusion_matrix, per_class_report, top_k_accuracy

TOP_K = 5


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite several steps in a row."""


@dataclass
class StepContext:
    """Everything one optimisation step needs besides the loss."""

    trained_module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    gradient_clip_norm: float


@contextlib.contextmanager
def kept_as_it_was(module: nn.Module) -> Iterator[None]:
    """Run a measurement in the middle of training without changing the training: every
    submodule gets its train/eval mode back, and the random state (torch's, on every GPU too) is
    forked, so the batches after it are drawn exactly as without it."""
    modes = [(child, child.training) for child in module.modules()]
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            yield
    finally:
        for child, was_training in modes:
            child.train(was_training)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def move_batch(
    images: torch.Tensor, targets: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(device, non_blocking=True)


@dataclass
class BatchResult:
    """The loss of a batch (or of a piece of one) and how many of its pictures were right."""

    loss: torch.Tensor
    correct: int | None  # None when the objective has no notion of a right answer
    count: int


@dataclass(frozen=True)
class StepResult:
    loss: float
    correct: int | None
    count: int


def accumulate_gradients(
    context: StepContext,
    pieces: list[Any],
    compute_loss: Callable[[Any], BatchResult],
    loss_share: Callable[[Any], float] = batch_length,
    gradient_sync: Callable[[bool], contextlib.AbstractContextManager] | None = None,
) -> StepResult:
    """Back-propagate the loss of a batch given in ``pieces``; the weights are not changed yet.

    Each piece's mean loss is weighted by its share of the batch's loss denominator
    (``loss_share``: the number of pictures, or the summed class weights of a class-weighted
    loss), so the summed gradients equal those of the whole batch (batch-norm statistics apart).
    A NaN or infinite loss clears the gradients and returns a NaN loss: the caller skips the
    update (and stops a run that keeps diverging), so one bad batch never poisons the weights.
    ``gradient_sync(is_last_piece)``: under torchrun, DDP's ``no_sync`` for every piece but the
    last, so the processes exchange gradients once per step however the batch was cut.
    """
    context.optimizer.zero_grad(set_to_none=True)
    total = sum(batch_length(piece) for piece in pieces)
    shares = [loss_share(piece) for piece in pieces] if len(pieces) > 1 else [1.0]
    total_share = sum(shares)
    results, losses = [], []
    for index, (piece, share) in enumerate(zip(pieces, shares, strict=True)):
        is_last = index == len(pieces) - 1
        with gradient_sync(is_last) if gradient_sync else contextlib.nullcontext():
            result = compute_loss(piece)
            losses.append(float(result.loss.detach()))
            if not math.isfinite(losses[-1]):
                context.optimizer.zero_grad(set_to_none=True)
                return StepResult(float("nan"), None, total)
            # One piece (the usual case) is not rescaled: its numbers stay bit-for-bit the same.
            loss = result.loss if len(pieces) == 1 else result.loss * (share / total_share)
            context.scaler.scale(loss).backward()
        results.append(result)
    return _combine(results, losses, shares, total)


def apply_update(context: StepContext) -> None:
    """Clip, step the optimiser and the schedule once, with the gradients accumulated."""
    update_weights(context)
    context.scheduler.step()


def update_weights(context: StepContext) -> None:
    """Clip and step the optimiser at the rates it holds now (the schedule is not moved)."""
    if context.gradient_clip_norm > 0:
        context.scaler.unscale_(context.optimizer)
        nn.utils.clip_grad_norm_(context.trained_module.parameters(), context.gradient_clip_norm)
    context.scaler.step(context.optimizer)
    context.scaler.update()


def optimization_step(
    context: StepContext,
    pieces: list[Any],
    compute_loss: Callable[[Any], BatchResult],
    loss_share: Callable[[Any], float] = batch_length,
) -> StepResult:
    """:func:`accumulate_gradients`, then :func:`apply_update` unless the loss was not finite."""
    result = accumulate_gradients(context, pieces, compute_loss, loss_share)
    if math.isfinite(result.loss):
        apply_update(context)
    return result


def _combine(
    results: list[BatchResult], losses: list[float], shares: list[float], total: int
) -> StepResult:
    """The whole batch's loss and right answers from its pieces' (``losses``: their losses as
    numbers, read once)."""
    loss = losses[0]
    if len(results) > 1:
        loss = sum(value * share for value, share in zip(losses, shares, strict=True)) / sum(shares)
    corrects = [result.correct for result in results]
    correct = None if None in corrects else sum(c for c in corrects if c is not None)
    return StepResult(loss, correct, total)


@dataclass(frozen=True)
class EvaluationResult:
    loss: float
    accuracy: float
    top5_accuracy: float
    confusion: np.ndarray
    per_class: tuple[dict[str, float | str | int], ...]
    records: tuple[PredictionRecord, ...]
    unreadable: tuple[str, ...] = ()  # validation pictures that could not be read any more


def evaluate(
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    paths: tuple[str, ...],
    class_names: tuple[str, ...],
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    channels_last: bool,
    micro_batching: MicroBatching | None = None,
    distributed: DistributedContext | None = None,
) -> EvaluationResult:
    """Run the model over the validation set and keep a record per image.

    Batches are (images, targets, positions); a negative position ``-(p + 1)`` marks picture
    ``p`` as unreadable (see MarkUnreadable): it is left out and listed in ``unreadable``.
    Under torchrun each process sees its share of the pictures; the answers of all are
    gathered first, so the scores, the confusion matrix and the records are the whole set's,
    the same on every process, in the pictures' order.
    """
    model.eval()
    micro_batching = micro_batching or MicroBatching(device)

    def predict(pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
        logits = []
        for images, targets in pieces:
            images, targets = move_batch(images, targets, device, channels_last)
            with autocast(device, autocast_dtype):
                logits.append(model(images).float())
        return logits

    probability_chunks, loss_chunks, target_chunks, position_chunks = [], [], [], []
    unreadable: list[str] = []
    with torch.inference_mode():
        for images, targets, positions in batches:
            readable = positions >= 0
            if not bool(readable.all()):
                unreadable.extend(paths[-int(p) - 1] for p in positions[~readable])
                images, targets, positions = (
                    images[readable],
                    targets[readable],
                    positions[readable],
                )
                if len(targets) == 0:
                    continue
            logits = torch.cat(micro_batching.run((images, targets), predict, "validation"))
            targets = targets.to(logits.device)
            loss_chunks.append(functional.cross_entropy(logits, targets, reduction="none").cpu())
            probability_chunks.append(torch.softmax(logits, dim=1).cpu())
            target_chunks.append(targets.cpu())
            position_chunks.append(positions)
    answers = _Answers.of(probability_chunks, loss_chunks, target_chunks, position_chunks)
    if distributed is not None and distributed.is_distributed:
        shares = distributed.gather((answers, unreadable))
        answers = _Answers.joined([share[0] for share in shares])
        unreadable = [path for share in shares for path in share[1]]
    if answers is None:
        empty = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
        nan = float("nan")
        return EvaluationResult(nan, nan, nan, empty, (), (), tuple(unreadable))
    probabilities, losses, targets_array = answers.probabilities, answers.losses, answers.targets
    kept_paths = tuple(paths[int(p)] for p in answers.positions)
    predictions = probabilities.argmax(axis=1)
    matrix = confusion_matrix(targets_array, predictions, len(class_names))
    return EvaluationResult(
        loss=float(losses.mean()),
        accuracy=accuracy(targets_array, predictions),
        top5_accuracy=top_k_accuracy(probabilities, targets_array, TOP_K),
        confusion=matrix,
        per_class=per_class_report(matrix, class_names),
        records=_prediction_records(kept_paths, targets_array, probabilities, losses),
        unreadable=tuple(unreadable),
    )


@dataclass(frozen=True)
class _Answers:
    """The model's answers on some validation pictures, as arrays (picklable: gathered)."""

    probabilities: np.ndarray
    losses: np.ndarray
    targets: np.ndarray
    positions: np.ndarray

    @classmethod
    def of(
        cls,
        probabilities: list[torch.Tensor],
        losses: list[torch.Tensor],
        targets: list[torch.Tensor],
        positions: list[torch.Tensor],
    ) -> _Answers | None:
        if not targets:
            return None
        return cls(
            torch.cat(probabilities).numpy(),
            torch.cat(losses).numpy(),
            torch.cat(targets).numpy(),
            torch.cat(positions).numpy(),
        )

    @classmethod
    def joined(cls, shares: list[_Answers | None]) -> _Answers | None:
        """The processes' answers as one set, in the pictures' order."""
        present = [share for share in shares if share is not None]
        if not present:
            return None
        positions = np.concatenate([share.positions for share in present])
        order = np.argsort(positions, kind="stable")
        return cls(
            np.concatenate([share.probabilities for share in present])[order],
            np.concatenate([share.losses for share in present])[order],
            np.concatenate([share.targets for share in present])[order],
            positions[order],
        )


def _prediction_records(
    paths: tuple[str, ...], targets: np.ndarray, probabilities: np.ndarray, losses: np.ndarray
) -> tuple[PredictionRecord, ...]:
    k = min(TOP_K, probabilities.shape[1])
    top_indices = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    top_probabilities = np.take_along_axis(probabilities, top_indices, axis=1)
    # Whole arrays to Python numbers at once (tolist), not one number at a time: a record per
    # validation picture every epoch (1.4 ms for 250 pictures, issue 14's B2, before).
    return tuple(
        PredictionRecord(
            path=path,
            true_index=true_index,
            predicted_index=top[0],
            confidence=probabilities_of_top[0],
            loss=loss,
            top_indices=tuple(top),
            top_probabilities=tuple(probabilities_of_top),
        )
        for path, true_index, loss, top, probabilities_of_top in zip(
            paths,
            targets.tolist(),
            losses.astype(np.float64).tolist(),
            top_indices.tolist(),
            top_probabilities.astype(np.float64).tolist(),
            strict=True,
        )
    )
