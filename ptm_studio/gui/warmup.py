"""Warm up the heavy first-time imports off the critical path.

On this stack the first ``import torchvision.models`` and the first optimizer creation hold the
interpreter lock for 100–150 ms; done on the training thread they freeze the window right when
the user presses Start. We pay that once in a background thread shortly after launch instead.
"""

from __future__ import annotations

import contextlib
import threading

# Shown where the device will be named until torch has loaded (the window is up before it).
LOADING_TORCH_TEXT = "Loading PyTorch and checking the device…"

_lock = threading.Lock()
_done = threading.Event()


def warm_up() -> None:
    """Import and exercise the slow-to-start parts of torch once (idempotent, thread-safe)."""
    with _lock:
        if _done.is_set():
            return
        import torch
        import torchvision.models  # noqa: F401 - the import itself is the warm-up

        parameter = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.AdamW([parameter], lr=1e-3)
        parameter.grad = torch.ones(1)
        optimizer.step()
        for module_name in (
            "ptm_studio.core.engine.trainer",
            "ptm_studio.core.models",
            "ptm_studio.core.data",
        ):
            # A broken optional module must not kill the warm-up thread.
            with contextlib.suppress(Exception):
                __import__(module_name)
        _done.set()


def start_background_warm_up() -> threading.Thread:
    thread = threading.Thread(target=warm_up, name="ptm-warm-up", daemon=True)
    thread.start()
    return thread


def is_warm() -> bool:
    return _done.is_set()
