"""Pretraining settings in the objective panel: shown only where they apply, round trip through
the config and the remembered choices, a missing progress folder explained before the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.gui.panels.objective_panel import ObjectivePanel

from .conftest import FakeTrainer


def _panel(qtbot: Any) -> ObjectivePanel:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    panel.advanced.set_open(True)  # the pretraining numbers sit in the Advanced section
    return panel


def _choose(panel: ObjectivePanel, task: str, loss: str | None = None) -> None:
    panel.task_combo.setCurrentIndex(panel.task_combo.findData(task))
    if loss is not None:
        panel.loss_combo.setCurrentIndex(panel.loss_combo.findData(loss))


def _shown(panel: ObjectivePanel) -> set[str]:
    settings = panel.pretrain_settings
    rows = {
        "temperature": settings.temperature_spin,
        "margin": settings.margin_spin,
        "projection": settings.projection_spin,
        "monitor": settings.monitor_row,
    }
    return {name for name, widget in rows.items() if widget.isVisibleTo(panel)}


@pytest.mark.parametrize(
    ("task", "loss", "expected"),
    [
        ("finetune", None, set()),
        ("pretrain", "nt_xent", {"temperature", "projection", "monitor"}),
        ("pretrain", "contrastive_margin", {"margin", "projection", "monitor"}),
        ("pretrain", "rotation", {"monitor"}),
        ("pretrain", "reconstruction", {"monitor"}),
    ],
)
def test_pretraining_rows_show_only_where_they_apply(
    qtbot: Any, task: str, loss: str | None, expected: set[str]
) -> None:
    panel = _panel(qtbot)
    _choose(panel, task, loss)
    assert _shown(panel) == expected
    labels = panel.advanced_form
    for widget in (panel.pretrain_settings.temperature_spin, panel.pretrain_settings.monitor_row):
        label = labels.labelForField(widget)
        assert label.isVisibleTo(panel) == widget.isVisibleTo(panel)  # the label goes too
        assert label.toolTip() or widget.toolTip()


def test_defaults_are_the_run_config_defaults(qtbot: Any) -> None:
    panel = _panel(qtbot)
    _choose(panel, "pretrain", "nt_xent")
    config = panel.settings.config
    defaults = RunConfig()
    assert config.objective.temperature == defaults.objective.temperature
    assert config.objective.margin == defaults.objective.margin
    assert config.objective.projection_dim == defaults.objective.projection_dim
    assert config.data.monitor_dir is None


def test_pretraining_settings_round_trip(qtbot: Any, tmp_path: Path) -> None:
    panel = _panel(qtbot)
    _choose(panel, "pretrain", "nt_xent")
    settings = panel.pretrain_settings
    settings.temperature_spin.setValue(0.1)
    settings.margin_spin.setValue(0.7)
    settings.projection_spin.setValue(256)
    settings.monitor_edit.setText(str(tmp_path))
    config = panel.settings.config.validate()
    assert config.objective.temperature == 0.1 and config.objective.margin == 0.7
    assert config.objective.projection_dim == 256
    assert config.data.monitor_dir == str(tmp_path)

    other = _panel(qtbot)
    other.settings.replace(config)
    assert other.apply_to(RunConfig()) == config  # the boxes show exactly these settings
    assert other.pretrain_settings.monitor_edit.text() == str(tmp_path)


def test_a_run_made_elsewhere_shows_its_own_values(qtbot: Any) -> None:
    """The command line accepts values the boxes do not usually offer: shown as they are."""
    config = RunConfig()
    for field_path, value in (
        ("objective.task", "pretrain"),
        ("objective.loss", "contrastive_margin"),
        ("objective.temperature", 0.025),
        ("objective.margin", 0.01),
        ("objective.projection_dim", 2048),
    ):
        config = replace_field(config, field_path, value)
    panel = _panel(qtbot)
    panel.settings.replace(config.validate())
    assert panel.apply_to(RunConfig()) == config


def test_the_progress_folder_is_used_only_for_pretraining(qtbot: Any, tmp_path: Path) -> None:
    panel = _panel(qtbot)
    _choose(panel, "pretrain", "rotation")
    panel.pretrain_settings.monitor_edit.setText(str(tmp_path))
    _choose(panel, "finetune")
    assert panel.settings.config.data.monitor_dir is None
    _choose(panel, "pretrain")  # the choice is kept for when pretraining is chosen again
    assert panel.settings.config.data.monitor_dir == str(tmp_path)
    panel.pretrain_settings.monitor_clear.click()
    assert panel.settings.config.data.monitor_dir is None


def test_a_missing_progress_folder_is_explained_before_the_run(
    make_window: Any,
    dialog_calls: list[Any],
    fake_trainer: type[FakeTrainer],
    tmp_path: Path,
) -> None:
    window = make_window(trainer_factory=fake_trainer)
    _choose(window.objective_panel, "pretrain", "nt_xent")
    missing = tmp_path / "no such folder"
    window.objective_panel.pretrain_settings.monitor_edit.setText(str(missing))
    window.training_panel.start_button.click()
    assert not window.session.is_running
    errors = [args for name, args in dialog_calls if name == "show_error"]
    assert len(errors) == 1
    message = errors[0][2]
    assert message.startswith("Check progress on: the folder")
    assert str(missing) in message and "does not exist" in message
    assert "data.monitor_dir" not in message


def test_a_bad_value_names_the_box_the_user_sees(
    make_window: Any, dialog_calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    window.settings.set("objective.temperature", 0.0)
    assert window.run_controller.validated_config() is None
    message = dialog_calls[-1][1][2]
    assert message.startswith("Temperature: must be between")


def test_pretraining_choices_are_remembered_for_the_next_launch(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window = make_window()
    _choose(window.objective_panel, "pretrain", "nt_xent")
    window.objective_panel.pretrain_settings.temperature_spin.setValue(0.2)
    window.objective_panel.pretrain_settings.monitor_edit.setText(str(tmp_path))
    window.close()
    from ptm_studio.gui.main_window import MainWindow

    again = MainWindow(runs_root=None)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.dataset_panel.summary is not None, timeout=10_000)
    settings = again.objective_panel.pretrain_settings
    assert again.objective_panel.loss_combo.currentData() == "nt_xent"
    assert settings.temperature_spin.value() == pytest.approx(0.2)
    assert settings.monitor_edit.text() == str(tmp_path)
    again.close()
