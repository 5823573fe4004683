"""Choosing where training runs (CUDA → Apple MPS → CPU), mixed precision, and CPU threads."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    """What the user sees: ``kind`` is cuda/mps/cpu, ``name`` the hardware, ``note`` advice."""

    kind: str
    name: str
    note: str


def select_device(setting: str = "auto") -> torch.device:
    """Resolve a device setting; asking for a device that is missing falls back to the CPU."""
    if setting in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if setting in ("auto", "mps") and _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(setting: str = "auto") -> DeviceInfo:
    device = select_device(setting)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return DeviceInfo("cuda", name, "Training on the graphics card.")
    if device.type == "mps":
        return DeviceInfo("mps", "Apple GPU (MPS)", "Training on the Apple graphics chip.")
    note = "No graphics card found: training runs on the processor, which is much slower."
    if setting not in ("auto", "cpu"):
        note = (
            f"{setting.upper()} was asked for but is not available here: training runs on the"
            " processor instead, which is much slower (use a smaller image size or model)."
        )
    return DeviceInfo("cpu", f"CPU ({available_cpu_count()} cores)", note)


def available_cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def default_cpu_threads() -> int:
    # All cores but one: with every core busy, training collapses 8–12x as soon as any other
    # program (the GUI, a browser) takes a core, because torch's threads wait on each other.
    return max(1, available_cpu_count() - 1)


def configure_cpu_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads (0 = default) and return the number in use."""
    threads = requested if requested > 0 else default_cpu_threads()
    torch.set_num_threads(threads)
    return threads


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The mixed-precision dtype to use on ``device``, or None for full float32. On a CPU,
    bf16 (asked for, or "auto") only where the processor computes it natively (AVX-512 BF16 or
    AMX): elsewhere it is emulated, slower than float32. Measured for "auto" (issue 14, B6):
    1.38x faster on the flowers, accuracy within the seeds' spread (README)."""
    if precision == "off":
        return None
    if device.type == "cpu":
        return torch.bfloat16 if precision in ("auto", "bf16") and cpu_computes_bf16() else None
    if device.type != "cuda":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def cpu_computes_bf16() -> bool:
    """Whether this processor has native bf16 arithmetic that oneDNN (torch's CPU kernels)
    uses."""
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
