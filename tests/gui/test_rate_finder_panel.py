"""The learning-rate test in the objective panel: the real test runs in the background on the
settings shown, its curve and suggestion are shown, "Use it" sets the learning rate as the
user's choice, Cancel leaves no thread behind, errors are words, and training freezes it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from ptm_studio.core.config import DataConfig, DeviceConfig, ModelConfig, RunConfig
from ptm_studio.core.engine.rate_finder import SUGGESTION_RULE, RateTest
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.widgets.rate_finder_view import (
    FIND_TIP,
    RateFinderView,
    format_rate,
    rounded_rate,
)

from .conftest import FakeTrainer

TEST_TIMEOUT_MS = 120_000


def _config(data_dir: Path) -> RunConfig:
    return RunConfig(
        data=DataConfig(
            data_dir=str(data_dir), image_size=16, batch_size=4, validation_fraction=0.25
        ),
        model=ModelConfig(backbone="small_cnn"),
        device=DeviceConfig(device="cpu", cpu_threads=1),
        seed=7,
    ).validate()


@pytest.fixture
def panel(qtbot: Any, tmp_path: Path, image_folder_maker: Callable[..., Path]) -> ObjectivePanel:
    """The panel on pictures a tiny network learns at once (the loss falls, then blows up)."""
    folder = image_folder_maker(tmp_path / "pictures", images_per_class=12, size=16)
    panel = ObjectivePanel(SettingsModel(_config(folder)))
    qtbot.addWidget(panel)
    yield panel
    panel.shutdown()


def _click(qtbot: Any, button: Any) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_test_runs_in_the_background_and_use_it_sets_the_learning_rate(
    qtbot: Any, panel: ObjectivePanel
) -> None:
    view = panel.rate_finder
    assert view.find_button.toolTip() == FIND_TIP
    assert view.isHidden()  # nothing to show before a test
    with qtbot.waitSignal(view.tested, timeout=TEST_TIMEOUT_MS) as tested:
        _click(qtbot, view.find_button)
        assert view.job.is_running and not view.find_button.isEnabled()
        assert not view.progress.isHidden()
        assert view.status_label.text() == "Trying learning rates…"
    test: RateTest = tested.args[0]
    qtbot.waitUntil(lambda: not view.job.is_running, timeout=10_000)
    assert view.find_button.isEnabled() and view.progress.isHidden()

    assert test.suggestion is not None, test
    x, y = view.curve.getOriginalDataset()
    assert len(x) == len(test.rates) > 8 and list(y) == list(test.losses)
    assert view.plot.getPlotItem().getAxis("bottom").logMode  # rates on a log scale
    assert view.marker.isVisible()  # a graphics item: visible unless hidden
    assert view.marker.value() == pytest.approx(math.log10(rounded_rate(test.suggestion)))
    shown = format_rate(test.suggestion)
    assert view.result_label.text() == f"Suggested: {shown} — {SUGGESTION_RULE}."
    assert "e-" not in shown and float(shown) == rounded_rate(test.suggestion)
    assert "Nothing was saved" in view.details_label.text()

    before = panel.settings.config
    assert not view.use_button.isHidden() and view.use_button.isEnabled()
    _click(qtbot, view.use_button)
    assert view.use_button.text() == "In use" and not view.use_button.isEnabled()
    after = panel.settings.config
    assert after.optim.learning_rate == rounded_rate(test.suggestion)
    assert panel.learning_rate_spin.value() == pytest.approx(after.optim.learning_rate)
    # Only the learning rate changed: it is the user's choice, the rest is as it was.
    rate = after.optim.learning_rate
    assert after == dataclasses.replace(
        before, optim=dataclasses.replace(before.optim, learning_rate=rate)
    )

    panel.learning_rate_spin.setValue(0.01)  # the user changes it again: it can be taken back
    assert view.use_button.text() == "Use it" and view.use_button.isEnabled()
    panel.settings.set("optim.learning_rate", rate)

    _click(qtbot, view.close_button)
    assert view.isHidden() and panel.settings.config == after  # closing changes nothing


def test_no_suggestion_says_why_and_offers_nothing(qtbot: Any) -> None:
    view = RateFinderView()
    qtbot.addWidget(view)
    rule = "the loss did not fall at any rate tried; keep the usual rate"
    test = RateTest((1e-7, 1e-6, 1e-5), (1.1, 1.1, 1.1), None, rule, "all rates were tried")
    chosen: list[float] = []
    view.rate_chosen.connect(chosen.append)
    view.show_test(test)
    assert view.result_label.text() == f"No suggestion: {rule}."
    assert view.use_button.isHidden() and not view.marker.isVisible()
    view.use_suggestion()
    assert chosen == []


def test_an_unusable_folder_is_said_in_words(qtbot: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "dog").mkdir()
    panel = ObjectivePanel(SettingsModel(_config(empty)))
    qtbot.addWidget(panel)
    view = panel.rate_finder
    with qtbot.waitSignal(view.job.failed, timeout=TEST_TIMEOUT_MS):
        panel.find_learning_rate()
    qtbot.waitUntil(lambda: not view.job.is_running, timeout=10_000)
    text = view.status_label.text()
    assert text.startswith("The learning-rate test could not run: ")
    assert "Traceback" not in text and "Error" not in text
    assert view.plot.isHidden() and view.use_button.isHidden()
    assert view.find_button.isEnabled()


def test_no_folder_yet_asks_for_one_and_starts_nothing(qtbot: Any) -> None:
    panel = ObjectivePanel(SettingsModel(RunConfig()))
    qtbot.addWidget(panel)
    panel.find_learning_rate()
    assert not panel.rate_finder.job.is_running
    assert "Choose a folder of pictures first" in panel.rate_finder.status_label.text()


def test_cancel_stops_the_test_and_leaves_no_thread(qtbot: Any, panel: ObjectivePanel) -> None:
    view = panel.rate_finder
    view.max_steps = 1_000_000  # the rate rises so slowly that the test cannot end by itself
    settings_before = panel.settings.config
    with qtbot.waitSignal(view.job.progressed, timeout=TEST_TIMEOUT_MS):
        panel.find_learning_rate()
    assert "of 1000000 steps" in view.progress.label.text()
    with qtbot.waitSignal(view.job.cancelled, timeout=TEST_TIMEOUT_MS):
        _click(qtbot, view.progress.cancel_button)
    qtbot.waitUntil(lambda: not view.job.is_running, timeout=10_000)
    assert view.status_label.text() == "The learning-rate test was cancelled; nothing was changed."
    assert view.test is None and view.plot.isHidden()
    assert view.find_button.isEnabled() and panel.settings.config == settings_before


def test_training_disables_the_button_and_stops_a_running_test(
    qtbot: Any, make_window: Any, fake_trainer: type[FakeTrainer]
) -> None:
    fake_trainer.delay_s = 0.05
    window = make_window(trainer_factory=fake_trainer)
    view = window.objective_panel.rate_finder
    view.max_steps = 1_000_000
    with qtbot.waitSignal(view.job.progressed, timeout=TEST_TIMEOUT_MS):
        window.objective_panel.find_learning_rate()
    with qtbot.waitSignal(view.job.cancelled, timeout=TEST_TIMEOUT_MS):
        window.start_training()  # the panel freezes; the test must not share the device
    assert window.session.is_running
    assert not view.find_button.isEnabled()
    window.objective_panel.find_learning_rate()  # a call behind the user's back does nothing
    qtbot.waitUntil(lambda: not view.job.is_running, timeout=10_000)
    window.stop_training()
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=30_000)
    assert view.find_button.isEnabled()


def test_the_wheel_over_the_plot_scrolls_the_settings_and_leaves_the_plot(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window()
    window.resize(1400, 900)
    window.show()
    view = window.objective_panel.rate_finder
    window.objective_panel.advanced.set_open(True)  # where the learning rate and its test are
    rates, losses = (1e-7, 1e-5, 1e-3, 1e-1), (1.1, 1.0, 0.3, 2.0)
    view.show_test(RateTest(rates, losses, 1e-4, SUGGESTION_RULE, "the loss blew up"))
    scroll = window.layout_parts.settings_scroll
    scroll.ensureWidgetVisible(view.plot)
    qtbot.waitUntil(lambda: view.plot.isVisible())
    bar, shown_range = scroll.verticalScrollBar(), view.plot.getPlotItem().viewRange()
    before = bar.value()
    assert before < bar.maximum()
    viewport = view.plot.viewport()
    centre = QPointF(viewport.rect().center())
    wheel = QWheelEvent(
        centre,
        viewport.mapToGlobal(centre),
        QPoint(0, 0),
        QPoint(0, -120),  # one notch down
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(viewport, wheel)
    assert bar.value() > before
    assert view.plot.getPlotItem().viewRange() == shown_range


def _auto_with_rate_test(qtbot: Any, panel: ObjectivePanel) -> None:
    from ptm_studio.core.auto_recipe import PictureFacts

    panel.auto.tests_rate = True  # as in the window
    panel.set_dataset(27, [9, 9, 9], PictureFacts(27, (9, 9, 9), typical_side=16, grey_share=0))
    panel.apply_auto()
    assert panel.rate_finder.job.is_running
    assert "Learning rate: 0.001 — testing learning rates" in panel.auto_reasons.text()


def test_auto_tests_learning_rates_and_takes_the_suggestion_as_its_choice(
    qtbot: Any, panel: ObjectivePanel
) -> None:
    _auto_with_rate_test(qtbot, panel)
    qtbot.waitUntil(lambda: not panel.rate_finder.job.is_running, timeout=TEST_TIMEOUT_MS)
    test = panel.rate_finder.test
    assert test is not None and test.suggestion is not None
    halfway = float(f"{(0.001 * test.suggestion) ** 0.5:.2g}")  # from the usual 0.001
    assert panel.settings.config.optim.learning_rate == halfway
    assert f"— the test suggested {test.suggestion:.2g} " in panel.auto_reasons.text()
    assert "✎" not in panel.auto_reasons.text()


def test_a_rate_typed_while_auto_tests_is_kept_and_marked_as_the_users(
    qtbot: Any, panel: ObjectivePanel
) -> None:
    _auto_with_rate_test(qtbot, panel)
    panel.learning_rate_spin.setValue(0.02)  # before the test's result arrives
    qtbot.waitUntil(lambda: not panel.rate_finder.job.is_running, timeout=TEST_TIMEOUT_MS)
    qtbot.wait(50)  # the result's signal
    assert panel.settings.config.optim.learning_rate == 0.02
    assert "✎ Learning rate: 0.02 — yours" in panel.auto_reasons.text()
