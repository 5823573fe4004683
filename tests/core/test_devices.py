"""Device choice and CPU threads."""

from __future__ import annotations

import pytest
import torch

from ptm_studio.core import devices


def test_cpu_training_uses_every_core_only_while_other_programs_leave_them_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    previous = torch.get_num_threads()
    try:
        monkeypatch.setattr(devices, "available_cpu_count", lambda: 8)
        monkeypatch.setattr(devices, "cores_busy_elsewhere", lambda: 0.05)
        assert devices.configure_cpu_threads(0) == 8 and torch.get_num_threads() == 8
        assert "all 8 cores" in devices.describe_cpu_threads(8)
        monkeypatch.setattr(devices, "cores_busy_elsewhere", lambda: 1.0)
        assert devices.configure_cpu_threads(0) == 7 and torch.get_num_threads() == 7
        assert "another program was busy" in devices.describe_cpu_threads(7)
        assert devices.configure_cpu_threads(3) == 3 and torch.get_num_threads() == 3
        assert "3 of 8 cores, as set" in devices.describe_cpu_threads(3)
        monkeypatch.setattr(devices, "available_cpu_count", lambda: 1)
        assert devices.configure_cpu_threads(0) == 1
    finally:
        torch.set_num_threads(previous)


def test_the_work_of_other_programs_is_counted_without_our_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psutil

    # Two cores, both fully busy over the sample, one of them with this process's own work.
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 100.0)
    monkeypatch.setattr(psutil.Process, "cpu_percent", lambda self, interval=None: 100.0)
    assert devices.cores_busy_elsewhere(0.0) == pytest.approx(1.0)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 40.0)  # 0.8 cores: ours
    assert devices.cores_busy_elsewhere(0.0) == 0.0


def test_missing_gpu_falls_back_to_cpu_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert devices.select_device("auto").type == "cpu"
    info = devices.describe_device("cuda")
    assert info.kind == "cpu" and "not available" in info.note


def test_mixed_precision_on_cuda_and_bf16_on_a_cpu_that_computes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    assert devices.autocast_dtype(cpu, "auto") is None
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    assert devices.autocast_dtype(cpu, "fp16") is None
    assert devices.autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert devices.autocast_dtype(cpu, "auto") is torch.bfloat16  # measured: faster, as accurate
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
    assert devices.autocast_dtype(cpu, "bf16") is None  # emulated bf16 is slower
    assert devices.autocast_dtype(torch.device("cuda"), "off") is None
    assert devices.autocast_dtype(torch.device("cuda"), "fp16") is torch.float16


def test_a_cpu_that_computes_bf16_trains_in_it_by_default_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14, B6: bf16 on such a CPU was 1.38x faster on the flowers with accuracy within
    the seeds' spread, so "auto" uses it; the device line says so, and "off" keeps float32."""
    from ptm_studio.core.config import DeviceConfig
    from ptm_studio.core.engine.setup import CPU_BF16_NOTE, prepare_device

    previous = torch.get_num_threads()
    try:
        monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
        chosen = prepare_device(DeviceConfig(device="cpu", cpu_threads=1))
        assert chosen.autocast_dtype is torch.bfloat16 and CPU_BF16_NOTE in chosen.info.note
        full = prepare_device(DeviceConfig(device="cpu", precision="off", cpu_threads=1))
        assert full.autocast_dtype is None and "bf16" not in full.info.note
        monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)
        emulated = prepare_device(DeviceConfig(device="cpu", cpu_threads=1))
        assert emulated.autocast_dtype is None and "bf16" not in emulated.info.note
    finally:
        torch.set_num_threads(previous)


def test_the_thread_count_follows_other_programs_from_epoch_to_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    previous = torch.get_num_threads()
    busy_elsewhere = [0.0]
    monkeypatch.setattr(devices, "available_cpu_count", lambda: 4)
    monkeypatch.setattr(devices.CpuThreadWatch, "_look", lambda self: busy_elsewhere[0])
    try:
        watch = devices.CpuThreadWatch(4)
        assert watch.next_epoch() is None  # still idle: no change
        busy_elsewhere[0] = 1.0
        assert watch.next_epoch() == 3 and torch.get_num_threads() == 3
        assert watch.next_epoch() is None
        assert "Another program became busy" in devices.describe_thread_change(3)
        busy_elsewhere[0] = 0.1
        assert watch.next_epoch() == 4 and torch.get_num_threads() == 4
        assert "all 4 cores" in devices.describe_thread_change(4)
    finally:
        torch.set_num_threads(previous)


def test_a_run_on_automatic_threads_says_when_it_changes_them(
    monkeypatch: pytest.MonkeyPatch, tiny_config, tmp_path
) -> None:
    from training_helpers import train_and_record

    from ptm_studio.core.config import replace_field
    from ptm_studio.core.engine.events import TrainingAdjusted

    previous = torch.get_num_threads()
    monkeypatch.setattr(devices, "available_cpu_count", lambda: 2)
    monkeypatch.setattr(devices, "cores_busy_elsewhere", lambda: 0.0)  # idle as it starts
    monkeypatch.setattr(devices.CpuThreadWatch, "_look", lambda self: 1.0)  # then busy
    try:
        config = replace_field(tiny_config(num_epochs=3), "device.cpu_threads", 0)
        finished, events = train_and_record(config, tmp_path)
        assert finished.status == "completed"
        told = [e for e in events.of_type(TrainingAdjusted) if e.kind == "cpu_threads"]
        assert [e.message for e in told] == [devices.describe_thread_change(1)]
        assert told[0].global_step > 0  # between epochs, not at the start
        assert torch.get_num_threads() == 1
        fixed = replace_field(config, "device.cpu_threads", 2)
        _, fixed_events = train_and_record(fixed, tmp_path / "fixed")
        assert not [e for e in fixed_events.of_type(TrainingAdjusted) if e.kind == "cpu_threads"]
    finally:
        torch.set_num_threads(previous)
