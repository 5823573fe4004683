"""Choosing where training runs (CUDA → Apple MPS → CPU), mixed precision, and CPU threads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

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
    """All cores but one: the count that stays fast when another program needs a core."""
    return max(1, available_cpu_count() - 1)


# Measured on the 2-core development machine (issue 14, B6, benchmarks/cpu_threads.py and
# event_loop_responsiveness.py): both cores trained 1.6x faster than one when nothing else ran,
# 1.26x faster in the window (whose own thread competes), but 0.56x as fast as one thread
# beside a program keeping a core busy (torch's threads wait on each other). So all cores
# only while the others' programs leave them nearly idle.
BUSY_ELSEWHERE_LIMIT = 0.3  # cores' worth of work done by other programs
BUSY_SAMPLE_SECONDS = 0.2


def cores_busy_elsewhere(sample_seconds: float = BUSY_SAMPLE_SECONDS) -> float:
    """How many cores' worth of work other programs are doing now (sampled over a moment)."""
    import psutil  # here: the quick commands (--help, --version) never load it

    own = psutil.Process()
    own.cpu_percent(None)
    return _others_share(psutil.cpu_percent(interval=sample_seconds), own)


def _others_share(everything_percent: float, own: Any) -> float:
    """Cores' worth of work others did: the whole machine's share less this process's (psutil
    counts both since the previous look)."""
    import psutil

    everything = everything_percent / 100.0 * (psutil.cpu_count() or 1)
    return max(0.0, everything - own.cpu_percent(None) / 100.0)


def _threads_beside(busy_elsewhere: float) -> int:
    """Every core while other programs leave them nearly idle, else all but one."""
    cores = available_cpu_count()
    return cores if cores > 1 and busy_elsewhere < BUSY_ELSEWHERE_LIMIT else default_cpu_threads()


def automatic_cpu_threads() -> int:
    """All cores when other programs leave them idle now, else all but one."""
    return _threads_beside(cores_busy_elsewhere())


def configure_cpu_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads (0 = automatic_cpu_threads) and return the number in use."""
    threads = requested if requested > 0 else automatic_cpu_threads()
    torch.set_num_threads(threads)
    return threads


class CpuThreadWatch:
    """Decides the automatic thread count again at each epoch, from what other programs did
    during the last one: a program that starts (or ends) during a run is noticed. No waiting:
    psutil counts the CPU time used since the previous look."""

    def __init__(self, threads: int) -> None:
        import psutil

        self.threads = threads
        self._own = psutil.Process()
        self._look()

    def _look(self) -> float:
        import psutil

        return _others_share(psutil.cpu_percent(None), self._own)

    def next_epoch(self) -> int | None:
        """The new thread count when it should change (torch is set to it), else None."""
        wanted = _threads_beside(self._look())
        if wanted == self.threads:
            return None
        self.threads = wanted
        torch.set_num_threads(wanted)
        return wanted


def describe_thread_change(threads: int) -> str:
    """What the user is told when a run changes its thread count between epochs."""
    cores = available_cpu_count()
    if threads >= cores:
        return f"No other program is busy any more: training now uses all {cores} cores."
    return (
        f"Another program became busy: training now uses {threads} of {cores} cores, which is "
        "faster beside it than using every core."
    )


def describe_cpu_threads(threads: int) -> str:
    """A sentence for the device line: how many threads train, and why."""
    cores = available_cpu_count()
    if threads >= cores > 1:
        return (
            f"Training uses all {cores} cores (no other program was busy when it started; "
            "with one busy it would keep a core free)."
        )
    if threads == cores - 1 and cores > 1:
        return (
            f"Training uses {threads} of {cores} cores: another program was busy when it "
            "started, and training on every core would then be slower."
        )
    return f"Training uses {threads} of {cores} cores, as set."


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
