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


@dataclass(frozen=True)
class EpochCosts:
    """The seconds each epoch of a run takes: the first epochs may differ from the rest. A
    frozen network's features are computed in the first epochs (one pass over the pictures
    per copy), then only the last layer learns on them (its checkpoints are most of such an
    epoch); after a frozen start every layer learns, at the cost of a whole step."""

    leading: tuple[float, ...]  # the first epochs, in order
    then: float  # every epoch after them
    # The epochs after the leading ones are those in which the network learns (after a
    # frozen start): a budget's run with no more epochs than the leading ones learns in its
    # last, as with_epochs moves the unfreezing there (see for_run_of).
    unfreezes: bool = False

    @classmethod
    def uniform(cls, seconds_per_epoch: float) -> EpochCosts:
        return cls((), seconds_per_epoch)

    def of(self, epoch_index: int) -> float:
        return self.leading[epoch_index] if epoch_index < len(self.leading) else self.then

    def for_run_of(self, epochs: int) -> EpochCosts:
        """The costs once a budget's plan has made the run ``epochs`` long (with_epochs: one
        too short for its frozen epochs unfreezes in its last)."""
        if self.unfreezes and 0 < epochs <= len(self.leading):
            return EpochCosts(self.leading[: epochs - 1], self.then, unfreezes=True)
        return self

    def total(self, epochs: int) -> float:
        """Seconds for the first ``epochs`` epochs."""
        return sum(self.leading[:epochs]) + max(0, epochs - len(self.leading)) * self.then

    def average(self, epochs: int) -> float:
        """Seconds per epoch over the first ``epochs`` epochs."""
        return self.total(epochs) / max(1, epochs)

    def epochs_within(self, budget_minutes: float) -> int:
        """The epochs that fit in ``budget_minutes``, ending at most PLANNED_SHARE past it (at
        least one, at most MAX_PLANNED_EPOCHS)."""
        allowed = PLANNED_SHARE * budget_minutes * 60
        spent, epochs = 0.0, 0
        for seconds in self.leading:
            if spent + seconds > allowed:
                break
            spent, epochs = spent + seconds, epochs + 1
        else:
            epochs += self._more_epochs(allowed - spent)
        epochs = max(1, min(MAX_PLANNED_EPOCHS, epochs))
        while self.unfreezes and epochs > 1 and self.for_run_of(epochs).total(epochs) > allowed:
            epochs -= 1  # too short for its frozen epochs: its last learns, at a step's cost
        return epochs

    def _more_epochs(self, seconds: float) -> int:
        """How many epochs of ``then`` fit in ``seconds`` (MAX_PLANNED_EPOCHS when they cost
        nothing measurable)."""
        if not math.isfinite(self.then) or self.then <= 0:
            return MAX_PLANNED_EPOCHS
        return math.floor(seconds / self.then)


def planned_epochs(seconds_per_epoch: float, budget_minutes: float) -> int:
    """The epochs that fit in ``budget_minutes`` when every epoch takes as long."""
    return EpochCosts.uniform(seconds_per_epoch).epochs_within(budget_minutes)


def _minutes(minutes: float) -> str:
    if minutes >= 60:
        hours = minutes / 60
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    if round(minutes, 2) == minutes:  # as typed (0.5 minutes)
        return f"{minutes:g} minute{'s' if minutes != 1 else ''}"
    # What was left of a budget (4.2833… minutes): in minutes and seconds, as a clock says it.
    whole, seconds = divmod(round(minutes * 60), 60)
    if not whole:
        return f"{seconds} s"
    return f"{whole} min {seconds:02d} s" if seconds else f"{whole} min"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
