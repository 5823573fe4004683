"""Train for a time (issue 12): the epochs planned from steps timed on this computer, the
schedule spanning them, the plan told, and the run kept within the budget when it is slower
than measured or stops improving."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from training_helpers import train_and_record

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine import time_budget
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.epoch_plan import (
    MAX_PLANNED_EPOCHS,
    PLANNED_SHARE,
    EpochCosts,
    planned_epochs,
)
from ptm_studio.core.engine.events import EpochFinished, TrainingStarted
from ptm_studio.core.engine.policies import PLATEAU_EPOCHS, TimeBudget, standard_callbacks
from ptm_studio.core.engine.speed import SpeedMeasurement
from ptm_studio.core.engine.time_budget import with_epochs


def test_the_epochs_that_fit_are_planned_to_end_near_the_budget() -> None:
    assert planned_epochs(30.0, 5) == int(PLANNED_SHARE * 300 / 30) == 10
    assert planned_epochs(76.0, 5) == 4  # 304 s: one more epoch ending 1 % past the budget
    assert planned_epochs(82.0, 5) == 3  # a fourth would end 9 % past it
    assert planned_epochs(400.0, 5) == 1  # one epoch longer than the budget: still one
    assert planned_epochs(0.001, 60) == MAX_PLANNED_EPOCHS
    assert planned_epochs(float("nan"), 5) == MAX_PLANNED_EPOCHS


def test_warm_up_and_unfreezing_are_fitted_to_fewer_epochs_unless_they_are_the_users() -> None:
    config = replace_field(RunConfig(), "optim.warmup_epochs", 3.0)
    config = replace_field(config, "model.unfreeze_after_epochs", 4)
    fitted = with_epochs(config, 2)
    assert (fitted.optim.num_epochs, fitted.optim.warmup_epochs) == (2, 1.0)
    assert fitted.model.unfreeze_after_epochs == 1
    kept = with_epochs(config, 12, keep=frozenset({"optim.warmup_epochs"}))
    assert (kept.optim.warmup_epochs, kept.model.unfreeze_after_epochs) == (3.0, 4)


def _measured(seconds_per_step: float) -> SpeedMeasurement:
    return SpeedMeasurement(0.0, seconds_per_step, 5, 4, "CPU (test)")


def test_a_new_run_plans_its_epochs_and_its_schedule_spans_them(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Measured at 0.2 s a step of 4 pictures, a tiny epoch takes about 1 s, so a budget of 0.1
    # minutes (6 s) holds a few of them (really they take a fraction of that: none is cut).
    monkeypatch.setattr(time_budget, "measure_speed", lambda parts: _measured(0.2))
    config = tiny_config(num_epochs=50, time_budget_minutes=0.1, warmup_epochs=1.0)
    finished, events = train_and_record(config, tmp_path / "runs")
    started = events.of_type(TrainingStarted)[0]
    per_epoch = 0.05 * started.num_train_images + 0.05 / 3 * started.num_val_images
    expected = planned_epochs(per_epoch, 0.1)
    assert started.num_epochs == expected < 50
    assert f"so {expected} epochs" in started.time_plan and "measured" in started.time_plan
    saved = json.loads((finished.run_dir / "config.json").read_text())
    assert saved["optim"]["num_epochs"] == expected  # a resume goes on with the planned epochs
    assert saved["optim"]["time_budget_minutes"] == 0.1
    rates = [epoch.learning_rate for epoch in events.of_type(EpochFinished)]
    # The cosine schedule spans the planned epochs: the rate falls to its lowest at the last.
    assert len(rates) == expected and rates[-1] == min(rates) < 0.2 * config.optim.learning_rate


def test_without_a_budget_nothing_is_measured_or_planned(
    tiny_config: Callable[..., RunConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(parts: object) -> SpeedMeasurement:
        raise AssertionError("measured without a time budget")

    monkeypatch.setattr(time_budget, "measure_speed", never)
    finished, events = train_and_record(tiny_config(num_epochs=1), tmp_path / "runs")
    assert finished.status == "completed"
    assert events.of_type(TrainingStarted)[0].time_plan == ""
    assert not any(isinstance(rule, TimeBudget) for rule in standard_callbacks(tiny_config()))


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _started(num_epochs: int, start_epoch: int = 1) -> TrainingStarted:
    return TrainingStarted(
        None, "finetune", ("a", "b"), num_epochs, start_epoch, 5, 20, 5, "CPU", "", 1000
    )


def _epoch(epoch: int, num_epochs: int, without_improvement: int = 0) -> EpochFinished:
    return EpochFinished(
        epoch, num_epochs, 0.5, 0.8, 0.5, 0.8, 1.0, 1e-3, 1.0, without_improvement == 0,
        epochs_without_improvement=without_improvement,
    )  # fmt: skip


def _budget_rule(minutes: float, patience: int = 0) -> tuple[TimeBudget, _Clock]:
    config = replace_field(RunConfig(), "optim.time_budget_minutes", minutes)
    config = replace_field(config, "optim.early_stopping_patience", patience)
    clock = _Clock()
    return TimeBudget(config, clock=clock), clock


def test_a_run_slower_than_measured_ends_after_the_last_epoch_that_fits() -> None:
    rule, clock = _budget_rule(1.0)  # 60 s for 10 planned epochs of 5 s, which take 20 s
    control = TrainingControl()
    rule.on_training_started(_started(10), control)
    for epoch in (1, 2):
        clock.now += 20
        rule.on_epoch_finished(_epoch(epoch, 10), control)
    assert not control.should_stop  # 40 s + 20 s ends at the budget
    clock.now += 20
    rule.on_epoch_finished(_epoch(3, 10), control)
    assert control.should_stop and "time budget (1 min) is used up after 3" in control.stop_reason


def test_a_run_on_time_is_never_cut_and_its_last_epoch_is_left_alone() -> None:
    rule, clock = _budget_rule(1.0)
    control = TrainingControl()
    rule.on_training_started(_started(10), control)
    for epoch in range(1, 11):
        clock.now += 5.8  # a little slower than planned, within the budget
        rule.on_epoch_finished(_epoch(epoch, 10), control)
    assert not control.should_stop


def test_a_plateau_ends_the_run_early_unless_an_early_stopping_patience_was_set() -> None:
    for patience, ends in ((0, True), (50, False)):
        rule, clock = _budget_rule(10.0, patience)
        control = TrainingControl()
        rule.on_training_started(_started(20), control)
        clock.now += 1
        rule.on_epoch_finished(_epoch(8, 20, without_improvement=PLATEAU_EPOCHS), control)
        assert control.should_stop is ends
        if ends:
            assert "no better validation score for 5 epochs" in control.stop_reason


def test_a_resumed_run_gets_the_share_of_the_budget_its_epochs_left_need() -> None:
    rule, clock = _budget_rule(1.0)  # 10 planned epochs, 5 left: 30 s of the 60
    control = TrainingControl()
    rule.on_training_started(_started(10, start_epoch=6), control)
    clock.now += 16
    rule.on_epoch_finished(_epoch(6, 10), control)
    assert not control.should_stop  # 16 + 16 = 32 s: within 1.1 × 30
    clock.now += 16
    rule.on_epoch_finished(_epoch(7, 10), control)
    assert control.should_stop


def test_the_command_line_takes_minutes_and_says_the_plan_even_when_quiet(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training_helpers import TINY_CLI_TRAINING

    from ptm_studio.cli import EXIT_OK, main

    run = tmp_path / "run"
    arguments = ["train", "--data", str(tiny_dataset), "--output", str(run), "--quiet"]
    assert main([*arguments, *TINY_CLI_TRAINING, "--minutes", "0.05"]) == EXIT_OK
    said = capsys.readouterr().err
    assert "Time budget 0.05 minutes: about" in said and "measured on this computer" in said
    planned = json.loads((run / "config.json").read_text())["optim"]["num_epochs"]
    assert f"so {planned} epoch" in said


def test_the_estimate_before_start_shows_the_epochs_the_budget_will_plan(
    tiny_config: Callable[..., RunConfig],
) -> None:
    from ptm_studio.core.planning import estimate_duration

    estimate = estimate_duration(tiny_config(time_budget_minutes=0.5))
    assert estimate.epochs == planned_epochs(estimate.seconds_per_epoch, 0.5)
    assert estimate.how.startswith("Time budget 0.5 minutes")
    # The epochs fit: they end at most a few per cent past the budget, as planned.
    assert estimate.seconds_per_epoch * estimate.epochs <= PLANNED_SHARE * 0.5 * 60


def test_epochs_that_differ_are_added_up_one_by_one() -> None:
    # Two feature passes of 10 s, then epochs of 1 s on the features.
    costs = EpochCosts((10.0, 10.0), 1.0)
    assert costs.total(1) == 10.0 and costs.total(5) == 23.0 and costs.average(5) == 4.6
    allowed = PLANNED_SHARE * 60  # one minute
    assert costs.epochs_within(1) == 2 + int(allowed - 20.0)
    assert EpochCosts((100.0,), 1.0).epochs_within(1) == 1  # the first alone is over: still one
    assert EpochCosts((30.0, 40.0), 1.0).epochs_within(1) == 1  # the second would end past it
    for seconds in (30.0, 76.0, 82.0, 400.0, 0.001):  # the same count as for equal epochs
        assert EpochCosts.uniform(seconds).epochs_within(5) == planned_epochs(seconds, 5)


def test_the_estimate_follows_the_kind_of_each_epoch() -> None:
    # 8 training pictures in batches of 4, no validation, 0.5 s of checkpoints an epoch:
    # longer than the 0.4 s epoch they keep, so paced to a ninth of each epoch (a write
    # every few epochs, CheckpointPacing).
    frozen_step, unfrozen_step, feature_step = 0.2, 0.6, 0.01
    plain = SpeedMeasurement(0.0, frozen_step, 5, 4, "CPU (test)", saving_seconds=0.5)
    assert plain.epoch_costs(8, 0) == EpochCosts.uniform(2 * frozen_step * (1 + 1 / 9))
    # Feature extraction on cached features: one pass, then the last layer alone. The pass
    # is a forward alone (not measured here: a third of a training step).
    cached = dataclasses.replace(plain, feature_copies=1, feature_step_seconds=feature_step)
    on_features, feature_pass = 2 * feature_step, 2 * frozen_step / 3
    assert cached.epoch_costs(8, 0).leading == pytest.approx(
        ((feature_pass + on_features) * (1 + 1 / 9),)
    )
    assert cached.epoch_costs(8, 0).then == pytest.approx(on_features * (1 + 1 / 9))
    # Freeze then unfreeze after 3 epochs, features cached: a pass, two on the features, then
    # every layer learns.
    unfreezing = dataclasses.replace(
        cached, unfreezes_at=3, unfrozen_computing_seconds=unfrozen_step
    )
    costs = unfreezing.epoch_costs(8, 0)
    assert costs.leading == pytest.approx(
        (
            (feature_pass + on_features) * (1 + 1 / 9),
            on_features * (1 + 1 / 9),
            on_features * (1 + 1 / 9),
        )
    )
    assert costs.then == pytest.approx(2 * unfrozen_step * (1 + 1 / 9))
    # Two copies of the features (random changes on): a second pass, reading the pictures
    # again (0.05 s a batch), with a measured forward pass of 0.1 s.
    measured = dataclasses.replace(
        cached, feature_copies=2, loading_again_seconds=0.05, forward_seconds=0.1
    )
    assert measured.epoch_costs(8, 0).leading == pytest.approx(
        ((0.2 + on_features) * (1 + 1 / 9), (0.3 + on_features) * (1 + 1 / 9))
    )
    # A write quicker than ALWAYS_WRITTEN_SECONDS is made at every epoch's end.
    quick = dataclasses.replace(plain, saving_seconds=0.01)
    assert quick.epoch_costs(8, 0) == EpochCosts.uniform(2 * frozen_step + 0.01)


@pytest.mark.parametrize(
    ("mode", "unfreezes_at"), [("freeze_then_unfreeze", 2), ("feature_extraction", None)]
)
def test_a_frozen_start_is_measured_as_it_will_train(
    tiny_config: Callable[..., RunConfig], mode: str, unfreezes_at: int | None
) -> None:
    import torch

    from ptm_studio.core.engine.feature_cache import COPIES_WITH_RANDOM_CHANGES
    from ptm_studio.core.engine.parts import build_training
    from ptm_studio.core.engine.speed import measure_speed

    config = replace_field(tiny_config(num_epochs=4), "model.training_mode", mode)
    config = replace_field(config, "model.unfreeze_after_epochs", 2)
    parts = build_training(config)
    module = parts.step.context.trained_module
    weights = {name: value.clone() for name, value in module.state_dict().items()}
    learning = [p.requires_grad for p in module.parameters()]
    measured = measure_speed(parts, steps=1)
    assert measured.unfreezes_at == unfreezes_at
    assert (measured.unfrozen_computing_seconds > 0) == (unfreezes_at is not None)
    assert measured.feature_copies == COPIES_WITH_RANDOM_CHANGES  # flips on by default
    assert measured.feature_step_seconds > 0  # the last layer's steps on the features
    # Nothing the measurement did stays: the weights, which of them learn.
    assert all(torch.equal(value, weights[name]) for name, value in module.state_dict().items())
    assert [p.requires_grad for p in module.parameters()] == learning


def test_a_budget_too_short_for_the_frozen_epochs_is_planned_with_its_last_one_learning() -> None:
    # A feature pass of 60 s, frozen epochs of 1 s on the features, then 150 s an epoch once
    # every layer learns. A budget of ~70 s holds the pass and a few frozen epochs, but
    # with_epochs moves the unfreezing into the plan's last epoch: that one costs 150 s.
    costs = EpochCosts((60.0, 1.0, 1.0, 1.0, 1.0), 150.0, unfreezes=True)
    budget = 70.0 / 60 / PLANNED_SHARE
    epochs = costs.epochs_within(budget)
    assert epochs == 1  # the pass alone; two epochs would be 60 + 150 s
    assert costs.for_run_of(2).total(2) == 210.0
    assert costs.for_run_of(6) == costs  # long enough: unfreezes where it was set to
    # 212 s: the pass, two frozen epochs and the learning one (60 + 1 + 1 + 150).
    assert costs.epochs_within(212.5 / 60 / PLANNED_SHARE) == 4


def test_a_probe_first_is_estimated_as_its_passes_over_the_pictures() -> None:
    # Probe then finetune: before the first step, a pass for the frozen network's statistics
    # (reading the pictures the first time) and one per copy of the features (reading them
    # again), with the validation pictures' once; then every layer learns.
    measured = SpeedMeasurement(
        0.1, 0.6, 5, 4, "CPU (test)", loading_again_seconds=0.02, forward_seconds=0.2,
        probe_passes=3,
    )  # fmt: skip
    later = 8 * (0.02 + 0.6) / 4 + 4 * (0.02 + 0.2) / 4
    probing = ((8 + 4) * (0.1 + 0.2) + 2 * 8 * (0.02 + 0.2)) / 4
    costs = measured.epoch_costs(8, 4)
    assert costs.leading == pytest.approx((probing + later,))
    assert costs.then == pytest.approx(later)


def test_the_passes_of_a_probe_first_are_counted(tiny_config: Callable[..., RunConfig]) -> None:
    from ptm_studio.core.engine.feature_cache import COPIES_WITH_RANDOM_CHANGES
    from ptm_studio.core.engine.parts import build_training
    from ptm_studio.core.engine.speed import measure_speed

    config = replace_field(tiny_config(), "model.training_mode", "probe_then_finetune")
    measured = measure_speed(build_training(config), steps=1)
    assert measured.probe_passes == 1 + COPIES_WITH_RANDOM_CHANGES
    assert measured.forward_seconds is not None and measured.forward_seconds > 0


def test_a_test_before_the_run_is_taken_from_its_time_budget() -> None:
    from ptm_studio.core.config import RunConfig
    from ptm_studio.core.engine.time_budget import budget_after_test

    five = replace_field(RunConfig(), "optim.time_budget_minutes", 5.0)
    left, words = budget_after_test(five, 40.0)
    assert left.optim.time_budget_minutes == pytest.approx(5 - 40 / 60)
    assert words == (
        "the learning-rate test took 40 s of the 5 minutes: training gets the other 4 min 20 s."
    )
    # A test longer than half the budget leaves the run half of it.
    short, _ = budget_after_test(replace_field(RunConfig(), "optim.time_budget_minutes", 1.0), 50)
    assert short.optim.time_budget_minutes == pytest.approx(0.5)
    assert budget_after_test(RunConfig(), 42.0) == (RunConfig(), "")  # epochs, not a budget
