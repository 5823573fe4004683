"""Background picture loading with a watchdog: a hung or crashed loading process is replaced by
loading in the training thread, and the epoch goes on from the batch where it stopped.

With ``num_workers > 0`` PyTorch's DataLoader reads pictures in separate processes. One of them
can hang (a network drive that stops answering) or die (killed for memory). The DataLoader's
``timeout`` turns a hang into an error; both errors are recognised here by their text, which is
the only thing PyTorch gives to tell them apart from other RuntimeErrors. Off the main thread (the
app and the CLI train on another thread) PyTorch notices a dead process only when that timeout
runs out; on the main thread its SIGCHLD handler raises at once, at whatever line is running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data.skipping import forget_skips_inherited

LOGGER = logging.getLogger(__name__)

_LOADER_FAILURE_STARTS = ("DataLoader worker", "DataLoader timed out")


def loader_options(config: RunConfig, device: torch.device) -> dict[str, Any]:
    """DataLoader keyword arguments shared by every loader of a run."""
    workers = config.data.num_workers
    options: dict[str, Any] = {
        "num_workers": workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": workers > 0,
    }
    if workers > 0:  # the DataLoader refuses a timeout without worker processes
        options["timeout"] = config.data.loader_timeout_seconds
        options["worker_init_fn"] = forget_skips_inherited
    return options


def is_loader_failure(error: BaseException) -> bool:
    """A loading process timed out, crashed or was killed (not an error in the data itself)."""
    return isinstance(error, RuntimeError) and str(error).startswith(_LOADER_FAILURE_STARTS)


def without_workers(loader: DataLoader) -> DataLoader:
    """The same loader (dataset, sampler, batching) loading in the calling thread."""
    if loader.num_workers == 0:
        return loader
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=loader.sampler,
        drop_last=loader.drop_last,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        num_workers=0,
    )


def shut_down(batches: Iterator[Any]) -> None:
    """Stop a loader iterator's processes now (a hung one is terminated after a few seconds)."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def loader_failure_message(error: BaseException, what: str) -> str:
    LOGGER.warning("picture loading failed during %s: %s", what, error)
    return (
        f"A background process that loads pictures stopped answering during {what} ({error})."
        " Pictures are now loaded by the training itself: the run goes on, a little more slowly."
        " If it happens often, use no loading processes (--num-workers 0)."
    )
