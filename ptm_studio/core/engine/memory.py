"""Keep training after the graphics card runs out of memory: cut each batch into smaller pieces.

After an out-of-memory error the batch is retried in twice as many pieces; the pieces' gradients
are added up before the optimiser steps, so the effective batch size (and the learning-rate
schedule) stays what the user chose; only batch-norm layers, which average over the pictures
they see at once, work with the smaller pieces. Only when a single picture does not fit does the
run fail, with advice. The error is handled outside the ``except`` block: the exception's traceback holds
the frames that hold the activations, and memory can only be freed once it is gone.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

LOGGER = logging.getLogger(__name__)
Result = TypeVar("Result")


class OutOfMemoryError(RuntimeError):
    """Even one picture at a time does not fit in the device's memory."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA raises ``torch.OutOfMemoryError``; Apple's MPS backend a RuntimeError saying so."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def batch_length(batch: Any) -> int:
    """The number of pictures in a batch of tensors, nested in tuples and lists."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, Sequence) and batch:
        return batch_length(batch[0])
    raise TypeError(f"cannot tell the size of a batch of type {type(batch).__name__}")


def split_batch(batch: Any, pieces: int) -> list[Any]:
    """Cut every tensor in ``batch`` into ``pieces`` nearly equal parts along the first dimension."""
    if pieces == 1:
        return [batch]
    if isinstance(batch, torch.Tensor):
        return list(torch.tensor_split(batch, pieces))
    if isinstance(batch, tuple | list):
        parts_per_item = [split_batch(item, pieces) for item in batch]
        return [type(batch)(parts) for parts in zip(*parts_per_item, strict=True)]
    raise TypeError(f"cannot split a batch of type {type(batch).__name__}")


def free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


class MicroBatching:
    """How many pieces each batch is cut into; doubled after every out-of-memory error.

    ``on_shrunk(message)`` is called after each doubling, to tell the user what changed.
    """

    def __init__(
        self, device: torch.device, on_shrunk: Callable[[str], None] | None = None
    ) -> None:
        self.device = device
        self.pieces = 1
        self.on_shrunk = on_shrunk
        # Contrastive losses compare the pictures of a piece with each other: they need two.
        self.smallest_piece = 1

    def run(self, batch: Any, work: Callable[[list[Any]], Result], what: str) -> Result:
        """``work(pieces)`` processes the batch; out of memory means retrying with more pieces.

        ``what`` names the work for messages ("training", "validation").
        """
        size = batch_length(batch)
        while True:
            try:
                return work(split_batch(batch, min(self.pieces, self._most_pieces(size))))
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
            # Outside the except block the traceback, and the activations it pins, are gone.
            free_device_memory(self.device)
            self._shrink(size, what)

    def _most_pieces(self, size: int) -> int:
        return max(1, size // self.smallest_piece)

    def _shrink(self, size: int, what: str) -> None:
        if self.pieces >= self._most_pieces(size):
            at_a_time = (
                "one picture" if self.smallest_piece == 1 else f"{self.smallest_piece} pictures"
            )
            raise OutOfMemoryError(
                f"The {self.device.type.upper()} device ran out of memory during {what}, even with"
                f" {at_a_time} at a time. Choose a smaller image size or a smaller model, close"
                " other programs that use the graphics card, or train on the processor (CPU)."
            )
        self.pieces = min(self.pieces * 2, self._most_pieces(size))
        piece_size = -(-size // self.pieces)
        message = (
            f"The graphics card ran out of memory during {what}. Each batch of {size} pictures is"
            f" now processed in {self.pieces} pieces of about {piece_size} whose results are"
            f" added up, so each step still learns from all {size} pictures, a little more"
            " slowly."
        )
        LOGGER.warning(message)
        if self.on_shrunk is not None:
            self.on_shrunk(message)
