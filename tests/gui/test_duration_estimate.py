"""The time shown before Start (issue 12): a rough figure at once, then a measurement on this
computer in the background that replaces it; changing only the epochs needs no new measurement;
nothing is measured while a run trains."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core.config import DataConfig, DeviceConfig, ModelConfig, RunConfig
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.widgets import duration_estimate

MEASURE_TIMEOUT_MS = 120_000


def _config(data_dir: Path) -> RunConfig:
    return RunConfig(
        data=DataConfig(data_dir=str(data_dir), image_size=16, batch_size=4),
        model=ModelConfig(backbone="small_cnn"),
        device=DeviceConfig(device="cpu", cpu_threads=1),
    ).validate()


@pytest.fixture
def panel(
    qtbot: Any,
    tmp_path: Path,
    image_folder_maker: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> ObjectivePanel:
    monkeypatch.setattr(duration_estimate, "SETTLE_MS", 10)
    folder = image_folder_maker(tmp_path / "pictures", images_per_class=8, size=16)
    panel = ObjectivePanel(SettingsModel(_config(folder)))
    panel.duration.timer.setInterval(10)
    panel.duration.measuring_enabled = True  # as the window does
    qtbot.addWidget(panel)
    yield panel
    panel.shutdown()


def test_a_rough_figure_at_once_then_one_measured_on_this_computer(
    qtbot: Any, panel: ObjectivePanel
) -> None:
    with qtbot.waitSignal(panel.duration.job.succeeded, timeout=MEASURE_TIMEOUT_MS):
        panel.set_dataset(18, [6, 6, 6])
        # No figure from a mere guess: those were 20x off.
        assert panel.estimate_label.text() == duration_estimate.MEASURING_TEXT
    text = panel.estimate_label.text()
    assert "measured on this computer" in text and "per epoch" in text and "in all" in text
    measured = panel.duration.measured_seconds_per_epoch(panel.settings.config)
    assert measured is not None and 0 < measured < 60

    # Only the epochs change: the same measurement, a new total, no new job.
    qtbot.waitUntil(lambda: not panel.duration.job.is_running, timeout=MEASURE_TIMEOUT_MS)
    settings = panel.settings.config
    more_epochs = dataclasses.replace(
        settings, optim=dataclasses.replace(settings.optim, num_epochs=40)
    )
    panel.settings.replace(more_epochs)
    panel.update_estimate()
    assert not panel.duration.timer.isActive() and not panel.duration.job.is_running
    assert "measured on this computer" in panel.estimate_label.text()
    assert text != panel.estimate_label.text()  # the total follows the epochs


def test_nothing_is_measured_while_the_panel_is_disabled_for_a_run(
    qtbot: Any, panel: ObjectivePanel
) -> None:
    panel.setEnabled(False)  # what the window does while a run trains
    panel.set_dataset(18, [6, 6, 6])
    qtbot.wait(100)
    assert not panel.duration.job.is_running and not panel.duration.timer.isActive()
    assert panel.estimate_label.text() == duration_estimate.PAUSED_TEXT
    with qtbot.waitSignal(panel.duration.job.succeeded, timeout=MEASURE_TIMEOUT_MS):
        panel.setEnabled(True)  # the run ended: the measurement is made now
    assert "measured on this computer" in panel.estimate_label.text()


def test_settings_that_cannot_train_keep_the_rough_figure_marked_as_such(
    qtbot: Any, panel: ObjectivePanel, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = panel.settings.config
    panel.settings.replace(
        dataclasses.replace(settings, data=dataclasses.replace(settings.data, data_dir=str(empty)))
    )
    with qtbot.waitSignal(panel.duration.job.failed, timeout=MEASURE_TIMEOUT_MS):
        panel.set_dataset(18, [6, 6, 6])
    assert panel.estimate_label.text() == duration_estimate.NOT_MEASURED_TEXT


def test_with_a_time_budget_the_estimate_says_how_many_epochs_fit(
    qtbot: Any, panel: ObjectivePanel
) -> None:
    panel.settings.set("optim.time_budget_minutes", 2.0)
    with qtbot.waitSignal(panel.duration.job.succeeded, timeout=MEASURE_TIMEOUT_MS):
        panel.set_dataset(18, [6, 6, 6])
    measured = panel.duration.measured_seconds_per_epoch(panel.settings.config)
    assert measured is not None
    from ptm_studio.core.engine.epoch_plan import planned_epochs

    epochs = planned_epochs(measured, 2.0)
    assert f": {epochs} epochs fit in 2 min" in panel.estimate_label.text()
    assert "GB" not in panel.estimate_label.text()  # no graphics card, no memory to speak of
