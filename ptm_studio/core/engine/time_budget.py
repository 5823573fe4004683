"""Train for a time instead of a number of epochs ("train for 5 minutes").

Before a new run with ``optim.time_budget_minutes`` set, a few of its steps are timed on this
computer (engine/speed.py) and its epochs planned to fit the budget; the parts are then built
again for that many epochs, so the learning-rate schedule (warm-up, cosine, one-cycle) spans
the time the user gave, not a guess. During the run the TimeBudget rule (policies.py) ends it
if the epochs turn out slower than measured, and the plan is told to the user when it starts.
"""

from __future__ import annotations

from collections.abc import Callable

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data import DatasetScan
from ptm_studio.core.engine.epoch_plan import EpochPlan, _minutes, _seconds
from ptm_studio.core.engine.parts import TrainingParts, build_training
from ptm_studio.core.engine.speed import SpeedMeasurement, measure_speed


def plan_for_budget(measured: SpeedMeasurement, parts: TrainingParts) -> EpochPlan:
    costs = measured.epoch_costs(len(parts.split.train), parts.task.checked_pictures())
    budget = parts.config.optim.time_budget_minutes
    epochs = costs.epochs_within(budget)
    return EpochPlan(epochs, costs.for_run_of(epochs).average(epochs), budget, measured.describe())


# A test before the run (the learning rate's) takes at most this share of the time budget:
# the rest is the run's, however long the test took.
TEST_SHARE_AT_MOST = 0.5


def budget_after_test(config: RunConfig, test_seconds: float) -> tuple[RunConfig, str]:
    """``config`` with the time budget the run has left once a test before it (Auto's
    learning-rate test) took ``test_seconds`` of it, and that in words; unchanged without a
    budget. A budget is what the user waits in all, not the training alone."""
    budget = config.optim.time_budget_minutes
    if budget <= 0 or test_seconds <= 0:
        return config, ""
    left = max(budget * (1 - TEST_SHARE_AT_MOST), budget - test_seconds / 60)
    words = (
        f"the learning-rate test took {_seconds(test_seconds)} of the {_minutes(budget)}: "
        f"training gets the other {_minutes(left)}."
    )
    return replace_field(config, "optim.time_budget_minutes", left), words


def with_epochs(config: RunConfig, epochs: int, *, keep: frozenset[str] = frozenset()) -> RunConfig:
    """``config`` for ``epochs`` epochs, its warm-up and unfreezing made to fit in them (fewer
    epochs than they need would be refused); settings in ``keep`` (the user's) stay as given."""
    config = replace_field(config, "optim.num_epochs", epochs)
    if "optim.warmup_epochs" not in keep and config.optim.warmup_epochs >= epochs:
        config = replace_field(config, "optim.warmup_epochs", float(max(0, epochs - 1)))
    if "model.unfreeze_after_epochs" not in keep and config.model.unfreeze_after_epochs >= epochs:
        config = replace_field(config, "model.unfreeze_after_epochs", max(0, epochs - 1))
    return config


def fitted_to_time_budget(
    parts: TrainingParts,
    *,
    scan: DatasetScan | None = None,
    rebuild: Callable[..., TrainingParts] = build_training,
) -> TrainingParts:
    """The parts of a new run planned for its time budget (``parts`` itself without one)."""
    if parts.config.optim.time_budget_minutes <= 0:
        return parts
    # Under torchrun every process measures (the steps exchange gradients), rank 0 plans.
    plan = parts.distributed.from_main(plan_for_budget(measure_speed(parts), parts))
    planned = with_epochs(parts.config, plan.epochs)
    fitted = parts if planned == parts.config else rebuild(planned, scan=scan)
    fitted.time_plan = plan.describe()
    return fitted
