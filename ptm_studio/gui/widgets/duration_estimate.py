"""How long the run will take, said before Start and measured, not guessed: a rough figure at
once, then, a moment after the settings stop changing, a few real training steps on this
computer in the background (core: planning.estimate_duration), whose figure replaces the
guess. A measurement is kept for the settings that set the speed (network, image size, batch,
pictures, device…); changing only the epochs needs no new one."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any, cast

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QLabel

from ptm_studio.core.config import RunConfig
from ptm_studio.core.engine.epoch_plan import EpochCosts
from ptm_studio.gui.jobs.job import Job, JobContext, Work
from ptm_studio.gui.wording import format_duration

SETTLE_MS = 1500  # wait for the settings to stop changing before measuring
GUESS = "rough guess"  # how the panel calls a figure that nothing on this computer measured
MEASURING_TEXT = "Measuring how long an epoch takes on this computer…"
NOT_MEASURED_TEXT = "How long an epoch takes is measured once these settings can train."
PAUSED_TEXT = "How long an epoch takes is measured once the computer is free again."
MEASURING_OFF_TEXT = "How long an epoch takes is shown once a run has been measured."


def speed_key(config: RunConfig) -> tuple[Any, ...]:
    """What the time per epoch depends on (not the epochs, the rates or the seed)."""
    data, model, device = config.data, config.model, config.device
    return (
        data.data_dir,
        data.image_size,
        data.batch_size,
        data.augmentations,
        data.num_workers,
        data.validation_fraction,
        data.label_fraction,
        model.backbone,
        model.training_mode,
        model.unfreeze_after_epochs,
        model.cache_frozen_features,
        config.objective.task,
        config.objective.loss,
        astuple(device),
    )


@dataclass(frozen=True)
class Measured:
    """What a measurement found for one set of speed settings."""

    costs: EpochCosts  # each epoch's seconds (the first ones may differ from the rest)
    memory_note: str = ""  # the graphics card memory the run needs, when there is one
    setup_seconds: float = 0.0  # getting ready before the first epoch


def measurement_work(config: RunConfig) -> Work:
    def work(context: JobContext) -> Measured:
        from ptm_studio.core.planning import estimate_duration  # loads torch: only when needed

        context.check_cancelled()
        estimate = estimate_duration(config)
        return Measured(estimate.costs, estimate.memory_note, estimate.setup_seconds)

    return work


class DurationEstimate(QObject):
    """Keeps ``label`` saying how long an epoch and the whole run take."""

    def __init__(self, label: QLabel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.label = label
        self.job = Job("ptm-speed-measure", self)
        self.job.succeeded.connect(self._on_measured)
        self.job.failed.connect(self._not_measured)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(SETTLE_MS)
        self.timer.timeout.connect(self._measure)
        self._measured: dict[tuple[Any, ...], Measured] = {}
        self._config: RunConfig | None = None
        self._rough_seconds = 0.0
        self._rough_how = GUESS
        self._measuring_key: tuple[Any, ...] | None = None
        self._paused = False
        # Off until the window turns it on: it owns the shutdown that waits for the thread.
        self.measuring_enabled = False

    def show(self, config: RunConfig, rough_seconds_per_epoch: float, rough_how: str) -> None:
        """Show the measured figure for ``config`` if there is one; else measure it soon, and
        meanwhile show the figure a finished run gave, or no figure at all for a mere guess
        (one can be 20x off)."""
        self._config = config
        self._rough_seconds, self._rough_how = rough_seconds_per_epoch, rough_how
        key = speed_key(config)
        measured = self._measured.get(key)
        if measured is not None:
            self._say(measured.costs, "measured on this computer", measured)
            return
        if not self.measuring_enabled:
            self._say_rough(MEASURING_OFF_TEXT, rough_how)
            return
        if self._paused:
            self._say_rough(PAUSED_TEXT)
            return
        self._say_rough(MEASURING_TEXT, f"{rough_how}; measuring these settings…")
        if self._measuring_key != key:
            self.job.cancel()
            self.timer.start()

    def set_paused(self, paused: bool) -> None:
        """No measuring while a run or a learning-rate test uses the computer."""
        self._paused = paused
        if paused:
            self.timer.stop()
            self.job.cancel()
            self._measuring_key = None
        elif self._config is not None:
            self.show(self._config, self._rough_seconds, self._rough_how)

    def shutdown(self) -> None:
        self.timer.stop()
        self.job.cancel()
        self.job.wait()

    def measured_seconds_per_epoch(self, config: RunConfig) -> float | None:
        """On average over the epochs ``config`` trains for."""
        measured = self._measured.get(speed_key(config))
        return measured.costs.average(config.optim.num_epochs) if measured is not None else None

    @Slot()
    def _measure(self) -> None:
        if self._config is None or self._paused:
            return
        self._measuring_key = speed_key(self._config)
        self.job.restart(measurement_work(self._config))

    @Slot(object)
    def _on_measured(self, measured: object) -> None:
        if self._measuring_key is not None:
            self._measured[self._measuring_key] = cast(Measured, measured)
        self._measuring_key = None
        if self._config is not None:
            self.show(self._config, self._rough_seconds, self._rough_how)

    @Slot(str, str)
    def _not_measured(self, message: str, _details: str) -> None:
        # The folder cannot train yet, a setting is refused…: the images and settings panels
        # already say why.
        self._measuring_key = None
        self._say_rough(
            NOT_MEASURED_TEXT, f"{self._rough_how}; these settings could not be measured"
        )

    def _say_rough(self, instead_of_a_guess: str, how: str | None = None) -> None:
        if self._rough_how.startswith(GUESS):
            self.label.setText(instead_of_a_guess)
        else:
            self._say(EpochCosts.uniform(self._rough_seconds), how or self._rough_how)

    def _say(self, costs: EpochCosts, how: str, measured: Measured | None = None) -> None:
        if self._config is None or costs.average(self._config.optim.num_epochs) <= 0:
            return
        memory_note = measured.memory_note if measured is not None else ""
        memory = f" The run {memory_note}." if memory_note else ""
        setup = measured.setup_seconds if measured is not None else 0.0
        budget = self._config.optim.time_budget_minutes
        if budget > 0:  # the epochs the run will plan from its own measurement, the same way
            epochs = costs.epochs_within(budget)
            per_epoch = costs.for_run_of(epochs).average(epochs)
            self.label.setText(
                f"About {format_duration(per_epoch)} per epoch: {epochs} "
                f"epoch{'s' if epochs != 1 else ''} fit in {format_duration(budget * 60)} "
                f"({how}); the run measures again when it starts.{memory}"
            )
            return
        epochs = self._config.optim.num_epochs
        seconds_per_epoch = costs.average(epochs)
        total = setup + costs.total(epochs)
        self.label.setText(
            f"About {format_duration(seconds_per_epoch)} per epoch, "
            f"{format_duration(total)} in all ({how}).{memory}"
        )
