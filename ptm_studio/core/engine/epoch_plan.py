"""How many epochs fit in a time budget, and that plan in words; no torch here, so the window
can say it before the training machinery has loaded (time_budget.py measures and plans)."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_PLANNED_EPOCHS = 1000  # a tiny folder on a fast computer: early stopping ends it anyway
# The most epochs that end within 4 % past the budget: a budget is a target to meet, not a wall
# to stay far from (the TimeBudget rule ends a run whose epochs come out slower, past 10 %).
# With 95 % of the budget, as before, 5-minute runs on the flowers at 69-76 s an epoch planned
# 3 epochs and ended after 3:47-3:54, a fifth of the time given unused.
PLANNED_SHARE = 1.04


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs fit in the budget, as measured on this computer."""

    epochs: int
    seconds_per_epoch: float
    budget_minutes: float
    how: str  # how the time per epoch was measured

    def describe(self) -> str:
        return (
            f"Time budget {_minutes(self.budget_minutes)}: about "
            f"{_seconds(self.seconds_per_epoch)} per epoch ({self.how}), so {self.epochs} "
            f"epoch{'s' if self.epochs != 1 else ''}"
        )


def planned_epochs(seconds_per_epoch: float, budget_minutes: float) -> int:
    """The epochs that fit in ``budget_minutes`` (at least one, at most MAX_PLANNED_EPOCHS)."""
    if not math.isfinite(seconds_per_epoch) or seconds_per_epoch <= 0:
        return MAX_PLANNED_EPOCHS
    fitting = math.floor(PLANNED_SHARE * budget_minutes * 60 / seconds_per_epoch)
    return max(1, min(MAX_PLANNED_EPOCHS, fitting))


def _minutes(minutes: float) -> str:
    if minutes >= 60:
        hours = minutes / 60
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
