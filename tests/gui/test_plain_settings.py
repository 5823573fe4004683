"""Plain by default (issue 12): the objective panel shows the task, the loss, how long to train
and Auto; the rest waits in an Advanced section, closed until opened, each box with a tooltip.
Training for a time writes the budget, and the schedules the core has are offered."""

from __future__ import annotations

from typing import Any

from ptm_studio.core.config import SCHEDULES
from ptm_studio.gui.panels.objective_panel import ObjectivePanel


def _panel(qtbot: Any) -> ObjectivePanel:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_only_the_plain_settings_show_until_advanced_is_opened(qtbot: Any) -> None:
    panel = _panel(qtbot)
    advanced = (
        panel.optimizer_combo,
        panel.learning_rate_spin,
        panel.weight_decay_spin,
        panel.batch_spin,
        panel.image_size_spin,
        panel.seed_spin,
        panel.smoothing_spin,
        panel.balanced_check,
        panel.schedule.schedule_combo,
        panel.schedule.warmup_spin,
        panel.schedule.patience_spin,
    )
    assert panel.task_combo.isVisible() and panel.epochs_spin.isVisible()
    assert panel.auto_button.isVisible() and panel.advanced.toggle_button.isVisible()
    assert not any(box.isVisible() for box in advanced)
    closed_height = panel.sizeHint().height()
    panel.advanced.toggle_button.click()
    assert all(box.isVisible() for box in advanced)
    assert panel.sizeHint().height() > closed_height + 200
    for box in advanced:
        assert box.toolTip(), f"{box} has no tooltip"


def test_training_for_minutes_writes_a_time_budget_and_epochs_come_back(qtbot: Any) -> None:
    panel = _panel(qtbot)
    schedule = panel.schedule
    schedule.train_for_combo.setCurrentIndex(schedule.train_for_combo.findData("minutes"))
    assert panel.minutes_spin.isVisible() and not panel.epochs_spin.isVisible()
    panel.minutes_spin.setValue(7.5)
    assert panel.settings.config.optim.time_budget_minutes == 7.5
    schedule.train_for_combo.setCurrentIndex(schedule.train_for_combo.findData("epochs"))
    assert panel.settings.config.optim.time_budget_minutes == 0.0
    assert panel.epochs_spin.isVisible()
    panel.settings.set("optim.time_budget_minutes", 3.0)  # a resumed run, the last session
    assert schedule.trains_for_a_time and panel.minutes_spin.value() == 3.0


def test_every_schedule_the_core_has_is_offered_and_written(qtbot: Any) -> None:
    panel = _panel(qtbot)
    combo = panel.schedule.schedule_combo
    offered = {combo.itemData(index) for index in range(combo.count())}
    assert offered == set(SCHEDULES)
    combo.setCurrentIndex(combo.findData("one_cycle"))
    panel.schedule.patience_spin.setValue(4)
    panel.balanced_check.setChecked(True)
    config = panel.settings.config
    assert (config.optim.schedule, config.optim.early_stopping_patience) == ("one_cycle", 4)
    assert config.data.balanced_sampling
