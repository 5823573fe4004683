"""The learning-rate test and the speed measurement (issue 12): on a problem whose good rates
are known the test suggests one of them; both leave the model, the optimiser and the schedule
exactly as they were."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.parts import build_training
from ptm_studio.core.engine.rate_finder import (
    SUGGESTION_RULE,
    find_learning_rate,
    range_test,
    rate_schedule,
    suggest_rate,
)


def _least_squares(seed: int = 0) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """Gradient descent on 0.5·mean((Xw − y)²) with X standard normal: the curvature is about
    1, so rates up to about 2/λmax ≈ 1.5 converge, the fastest near 1, and above 2 it blows up.
    Returns (one step at a rate → the loss before it, the loss after 40 steps at a rate)."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(512, 8, generator=generator)
    targets = features @ torch.randn(8, generator=generator)
    largest_curvature = float(torch.linalg.eigvalsh(features.T @ features / 512).max())
    assert 1.0 < largest_curvature < 1.6

    def loss_of(weights: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((features @ weights - targets) ** 2).mean()

    weights = torch.zeros(8, requires_grad=True)

    def step_at_rate(rate: float) -> float:
        loss = loss_of(weights)
        (gradient,) = torch.autograd.grad(loss, weights)
        with torch.no_grad():
            weights.sub_(rate * gradient)
        return float(loss.detach())

    def after_training_at(rate: float) -> float:
        trained = torch.zeros(8, requires_grad=True)
        for _ in range(40):
            (gradient,) = torch.autograd.grad(loss_of(trained), trained)
            with torch.no_grad():
                trained.sub_(rate * gradient)
        return float(loss_of(trained).detach()) / float(loss_of(torch.zeros(8)))

    return step_at_rate, after_training_at


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_a_problem_with_known_good_rates_the_suggestion_is_one_of_them(seed: int) -> None:
    step_at_rate, after_training_at = _least_squares(seed)
    rates, losses, ended = range_test(step_at_rate, rate_schedule(1e-6, 1000.0, 120))
    assert ended == "the loss blew up"  # rates above ~2 diverge, and the test saw it
    suggestion, rule = suggest_rate(rates, losses)
    assert suggestion is not None and rule == SUGGESTION_RULE
    assert 0.02 <= suggestion <= 1.5  # inside the range that converges well
    assert after_training_at(suggestion) < 0.5  # and training at it does learn


def test_no_suggestion_when_the_loss_never_falls() -> None:
    rates = rate_schedule(1e-6, 1.0, 40)
    suggestion, rule = suggest_rate(rates, [1.0] * len(rates))
    assert suggestion is None and "did not fall" in rule
    assert suggest_rate(rates[:3], [1.0, 5.0, 50.0])[0] is None


def test_the_test_on_a_real_run_changes_nothing(tiny_config: Callable[..., RunConfig]) -> None:
    config = tiny_config(optimizer="adamw", learning_rate=1e-3)
    parts = build_training(config)
    context = parts.step.context
    weights = {name: value.clone() for name, value in context.trained_module.state_dict().items()}
    rates_before = [group["lr"] for group in context.optimizer.param_groups]
    schedule_before = context.scheduler.state_dict()
    seeds_before = torch.get_rng_state()

    found = find_learning_rate(parts, max_steps=40)

    assert len(found.rates) >= 8 and all(math.isfinite(loss) for loss in found.losses)
    assert found.suggestion is not None and 1e-6 < found.suggestion < 1.0, found
    for name, value in context.trained_module.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert context.optimizer.state_dict()["state"] == {}  # no Adam moments left behind
    assert [group["lr"] for group in context.optimizer.param_groups] == rates_before
    assert context.scheduler.state_dict() == schedule_before
    assert torch.equal(torch.get_rng_state(), seeds_before)
    assert context.trained_module.training
    assert "Suggested learning rate" in found.describe()


def test_a_stopped_test_still_puts_everything_back(tiny_config: Callable[..., RunConfig]) -> None:
    parts = build_training(tiny_config())
    module = parts.step.context.trained_module
    weights = {name: value.clone() for name, value in module.state_dict().items()}
    calls = iter(range(1000))
    found = find_learning_rate(parts, max_steps=50, should_stop=lambda: next(calls) >= 5)
    assert found.ended_because == "stopped" and len(found.rates) == 5
    assert found.suggestion is None  # five points say nothing
    assert all(torch.equal(value, weights[name]) for name, value in module.state_dict().items())


def test_the_command_suggests_a_rate_and_writes_no_run(
    tiny_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptm_studio.cli import EXIT_OK, main
    from ptm_studio.core.locations import default_runs_root

    arguments = ["find-lr", "--data", str(tiny_dataset), "--image-size", "16", "--steps", "40"]
    assert main([*arguments, "--batch-size", "4", "--cpu-threads", "1"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Suggested learning rate" in out and "--learning-rate" in out
    assert "<- suggested" in out
    assert not default_runs_root().exists() or not any(default_runs_root().iterdir())


def test_a_speed_measurement_times_loading_and_computing_and_changes_nothing(
    tiny_config: Callable[..., RunConfig],
) -> None:
    from ptm_studio.core.engine.speed import MEASURED_STEPS, WARM_UP_STEPS, measure_speed

    parts = build_training(tiny_config())
    module = parts.step.context.trained_module
    weights = {name: value.clone() for name, value in module.state_dict().items()}
    # Each step: 0.1 s to load its batch, 0.3 s to train on it, then 0.1 s to run it forward
    # alone as validation does (a clock that says so).
    ticks = []
    for step in range(WARM_UP_STEPS + MEASURED_STEPS):
        ticks += [0.5 * step, 0.5 * step + 0.1, 0.5 * step + 0.4, 0.5 * step + 0.5]
    for batch in range(WARM_UP_STEPS + MEASURED_STEPS):  # the same batches read again
        ticks += [5.0 + batch, 5.0 + batch + 0.02]
    ticks += [10.0, 10.25]  # writing the weights once: 0.25 s
    clock = iter(ticks)
    measured = measure_speed(parts, clock=lambda: next(clock))
    assert measured.loading_seconds == pytest.approx(0.1)
    assert measured.computing_seconds == pytest.approx(0.3)
    assert measured.forward_seconds == pytest.approx(0.1)
    # Batches of 4: 0.1 s per training picture; a validation picture is loaded and goes
    # forward only, (0.1 + 0.1) / 4 = 0.05 s.
    # And two checkpoints at the epoch's end (the epoch's and the best): 0.5 s.
    assert measured.saving_seconds == pytest.approx(0.5)
    assert measured.seconds_per_epoch(64, 32) == pytest.approx(64 * 0.1 + 32 * 0.05 + 0.5)
    # The epochs after the first read the pictures again in 0.02 s a batch.
    assert measured.loading_again_seconds == pytest.approx(0.02)
    costs = measured.epoch_costs(64, 32)
    assert costs.leading == pytest.approx((64 * 0.1 + 32 * 0.05 + 0.5,))
    assert costs.then == pytest.approx(64 * 0.32 / 4 + 32 * 0.12 / 4 + 0.5)
    assert "4 pictures" in measured.describe()
    assert all(torch.equal(value, weights[name]) for name, value in module.state_dict().items())
    assert parts.step.context.optimizer.state_dict()["state"] == {}


def test_the_graphics_card_memory_a_run_needs_is_said_and_checked_against_what_is_free() -> None:
    from ptm_studio.core.engine.speed import GIB, GpuMemory, SpeedMeasurement

    roomy = GpuMemory(peak_bytes=3 * GIB, available_bytes=70 * GIB, total_bytes=80 * GIB)
    assert roomy.fits
    assert roomy.describe() == (
        "needs about 3.0 GB of the graphics card's memory (70.0 GB free of 80 GB)"
    )
    tight = GpuMemory(peak_bytes=15 * GIB, available_bytes=16 * GIB, total_bytes=16 * GIB)
    assert not tight.fits and "smaller batch" in tight.describe()
    measured = SpeedMeasurement(0.01, 0.1, 5, 32, "NVIDIA H200", gpu_memory=tight)
    assert "needs about 15.0 GB" in measured.describe()


def test_on_the_processor_no_graphics_card_memory_is_measured(
    tiny_config: Callable[..., RunConfig],
) -> None:
    from ptm_studio.core.engine.speed import measure_speed

    measured = measure_speed(build_training(tiny_config()), steps=1)
    assert measured.gpu_memory is None and "GB" not in measured.describe()
