"""Device choice and CPU threads."""

from __future__ import annotations

import pytest
import torch

from ptm_studio.core import devices


def test_cpu_training_leaves_one_core_free(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = torch.get_num_threads()
    try:
        monkeypatch.setattr(devices, "available_cpu_count", lambda: 8)
        assert devices.configure_cpu_threads(0) == 7 and torch.get_num_threads() == 7
        assert devices.configure_cpu_threads(3) == 3 and torch.get_num_threads() == 3
        monkeypatch.setattr(devices, "available_cpu_count", lambda: 1)
        assert devices.configure_cpu_threads(0) == 1
    finally:
        torch.set_num_threads(previous)


def test_missing_gpu_falls_back_to_cpu_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert devices.select_device("auto").type == "cpu"
    info = devices.describe_device("cuda")
    assert info.kind == "cpu" and "not available" in info.note


def test_mixed_precision_on_cuda_and_bf16_on_a_cpu_only_when_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = torch.device("cpu")
    assert devices.autocast_dtype(cpu, "auto") is None
    assert devices.autocast_dtype(cpu, "fp16") is None
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    assert devices.autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert devices.autocast_dtype(cpu, "auto") is None  # measured: not the default
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    assert devices.autocast_dtype(cpu, "bf16") is None  # emulated bf16 is slower
    assert devices.autocast_dtype(torch.device("cuda"), "off") is None
    assert devices.autocast_dtype(torch.device("cuda"), "fp16") is torch.float16
