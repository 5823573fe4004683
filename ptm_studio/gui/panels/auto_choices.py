"""Auto in the objective panel: the core's recipe for the pictures on this computer, applied
to the settings; a learning-rate test on them whose suggestion becomes Auto's rate (unless the
user typed one meanwhile); and the list of choices with their reasons under the button, where
a setting the user changed since is marked as theirs."""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QLabel

from ptm_studio.core.config import RunConfig
from ptm_studio.gui.panels.objective_boxes import choice_lines
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.widgets.rate_finder_view import RateFinderView

TESTING_RATES = "testing learning rates on your pictures…"


class AutoChoices(QObject):
    def __init__(
        self, settings: SettingsModel, rate_finder: RateFinderView, reasons: QLabel
    ) -> None:
        super().__init__(reasons)
        self.settings, self.rate_finder, self.reasons = settings, rate_finder, reasons
        self.recipe: Any = None
        self._rate_pending: float | None = None  # the recipe's rate while its test runs
        # Auto tests learning rates in the background; the window turns this on (it owns the
        # shutdown that waits for the test), a panel on its own does not.
        self.tests_rate = False
        rate_finder.tested.connect(self._take_tested_rate)
        rate_finder.job.failed.connect(self._forget_rate_test)
        rate_finder.job.cancelled.connect(self._forget_rate_test)

    def apply(self, picture_facts: Any, device_kind: str) -> None:
        from ptm_studio.core.auto_recipe import Computer, choose_recipe
        from ptm_studio.core.models import imagenet_status

        self.recipe = choose_recipe(
            self.settings.config,
            picture_facts,
            Computer(device_kind),
            imagenet_offline=lambda name: imagenet_status(name) == "available_offline",
        )
        if self.tests_rate and not self.rate_finder.job.is_running:
            self._rate_pending = self.recipe.config.optim.learning_rate
        self.settings.replace(self.recipe.config)  # the panel shows it, and the choices
        if self._rate_pending is not None:
            self.rate_finder.start_test(self.recipe.config)

    def show(self, config: RunConfig) -> None:
        """What Auto chose, each with its reason; a setting changed since is marked as yours."""
        if self.recipe is None:
            return
        choices = self.recipe.choices
        if self._rate_pending is not None:
            choices = tuple(
                dataclasses.replace(choice, reason=TESTING_RATES)
                if choice.setting == "optim.learning_rate"
                else choice
                for choice in choices
            )
        self.reasons.setText(
            "Auto chose (each can be changed):\n" + "\n".join(choice_lines(choices, config))
        )
        self.reasons.setVisible(True)

    @Slot(object)
    def _take_tested_rate(self, test: Any) -> None:
        from ptm_studio.core.auto_recipe import with_tested_rate

        pending, self._rate_pending = self._rate_pending, None
        if pending is not None and self.settings.config.optim.learning_rate == pending:
            self.recipe = with_tested_rate(self.recipe, test.suggestion, test.rule)
            self.settings.set("optim.learning_rate", self.recipe.config.optim.learning_rate)
        self.show(self.settings.config)

    @Slot()
    def _forget_rate_test(self) -> None:
        self._rate_pending = None
        self.show(self.settings.config)
