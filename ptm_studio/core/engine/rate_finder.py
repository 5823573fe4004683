"""The learning-rate test: train for a few hundred steps at most with an exponentially rising
learning rate, watch the loss, and suggest a rate from the curve; the model and the optimiser are
put back exactly as they were, so the run that follows starts from the same state.

The suggestion's rule, said to the user with the value: *where the loss fell fastest*, but never
above a third of the rate at which the loss was lowest. The loss falls fastest where the rate is
large enough to learn quickly and still far from the rates at which training blows up; the
third of the lowest-loss rate keeps the choice on the safe side when the curve is noisy. (A
tenth, the older rule of thumb, chose 2.3e-4 on the flowers where the loss fell fastest near
1e-3, and 1e-3 trained 2.7 points better in 5 minutes: the tenth threw the test's answer away.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ptm_studio.core.engine.parts import TrainingParts
from ptm_studio.core.engine.trial_steps import steps_leaving_no_trace

# Six decades around the rates that train (1e-4 to 1e-2 for Adam, 1e-2 to 1 for SGD): the
# hundred steps give 17 points a decade, where eight decades (1e-7 to 10) gave 12.5.
LOWEST_RATE, HIGHEST_RATE = 1e-6, 1.0
MAX_STEPS = 100
SMOOTHING = 0.9  # exponential moving average of the loss (debiased)
DIVERGED_FACTOR = 4.0  # the test ends once the smoothed loss is this many times its lowest
MIN_POINTS = 8
SAFETY_FACTOR = 3  # the suggestion stays this many times below the rate with the lowest loss
SUGGESTION_RULE = "where the loss fell fastest, at most a third of the rate with the lowest loss"


@dataclass(frozen=True)
class RateTest:
    """What a learning-rate test found: the curve, the suggestion and why."""

    rates: tuple[float, ...]
    losses: tuple[float, ...]  # smoothed
    suggestion: float | None
    rule: str
    ended_because: str

    def describe(self) -> str:
        if self.suggestion is None:
            return f"No suggestion: {self.rule}."
        return f"Suggested learning rate: {self.suggestion:.2g} ({self.rule})."


def rate_schedule(lowest: float, highest: float, steps: int) -> list[float]:
    """``steps`` rates rising exponentially from ``lowest`` to ``highest``."""
    if steps < 2 or not 0 < lowest < highest:
        raise ValueError("a rate test needs at least 2 steps and 0 < lowest < highest")
    ratio = highest / lowest
    return [lowest * ratio ** (index / (steps - 1)) for index in range(steps)]


def range_test(
    step_at_rate: Callable[[float], float],
    rates: list[float],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[list[float], list[float], str]:
    """Train one step at each rate (``step_at_rate(rate) -> loss``) until the loss blows up;
    the rates tried, their smoothed losses, and why the test ended."""
    tried: list[float] = []
    smoothed: list[float] = []
    average, lowest = 0.0, math.inf
    for index, rate in enumerate(rates):
        if should_stop():
            return tried, smoothed, "stopped"
        loss = step_at_rate(rate)
        if on_step is not None:
            on_step(index + 1, len(rates))
        if not math.isfinite(loss):
            return tried, smoothed, "the loss became infinite or not a number"
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        value = average / (1 - SMOOTHING ** (index + 1))
        tried.append(rate)
        smoothed.append(value)
        lowest = min(lowest, value)
        if index >= MIN_POINTS and value > DIVERGED_FACTOR * lowest:
            return tried, smoothed, "the loss blew up"
    return tried, smoothed, "all rates were tried"


def suggest_rate(rates: list[float], losses: list[float]) -> tuple[float | None, str]:
    """The rate to train with, and the rule that chose it (or why there is none)."""
    if len(rates) < MIN_POINTS:
        return None, "the test ended too early to tell (the loss blew up at once)"
    values = np.asarray(losses, dtype=float)
    lowest_index = int(np.argmin(values))
    if values[lowest_index] > 0.95 * values[0]:
        return None, "the loss did not fall at any rate tried; keep the usual rate"
    # The first points are mostly the smoothing settling; the fall is looked for before the
    # lowest point (after it the loss is rising towards the blow-up).
    start = max(1, len(values) // 10)
    end = max(start + 2, lowest_index + 1)
    slopes = np.gradient(values, np.log10(np.asarray(rates, dtype=float)))
    steepest = start + int(np.argmin(slopes[start:end]))
    suggestion = min(rates[steepest], rates[lowest_index] / SAFETY_FACTOR)
    return float(suggestion), SUGGESTION_RULE


def find_learning_rate(
    parts: TrainingParts,
    *,
    lowest: float = LOWEST_RATE,
    highest: float = HIGHEST_RATE,
    max_steps: int = MAX_STEPS,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[int, int], None] | None = None,
) -> RateTest:
    """Run the test on the run's own model, pictures, loss and optimiser; everything is put
    back afterwards (weights, optimiser state, schedule, random state), even if it fails."""
    optimizer = parts.step.context.optimizer
    # Each group keeps its share of the rate (the backbone's is smaller when so configured).
    scheduler = parts.step.context.scheduler
    bases = list(getattr(scheduler, "base_lrs", [g["lr"] for g in optimizer.param_groups]))
    shares = [base / max(bases) for base in bases]
    with steps_leaving_no_trace(parts) as batches:

        def step_at_rate(rate: float) -> float:
            for group, share in zip(optimizer.param_groups, shares, strict=True):
                group["lr"] = rate * share
            return parts.step.at_current_rates(next(batches)).loss

        rates, losses, ended = range_test(
            step_at_rate,
            rate_schedule(lowest, highest, max_steps),
            should_stop=should_stop,
            on_step=on_step,
        )
    suggestion, rule = suggest_rate(rates, losses)
    return RateTest(tuple(rates), tuple(losses), suggestion, rule, ended)
