"""The panels bound to the settings model: they write only what the user edited, never echo a
value back changed, and a folder without classes leaves settings that can start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.data import scan_folder
from ptm_studio.gui.jobs.job import Job, JobContext
from ptm_studio.gui.panels.folder_task import FolderTask
from ptm_studio.gui.panels.model_panel import ModelPanel
from ptm_studio.gui.panels.objective_panel import ObjectivePanel
from ptm_studio.gui.settings_model import SettingsModel

from .conftest import FakeTrainer


def _objective(qtbot: Any, config: RunConfig) -> ObjectivePanel:
    panel = ObjectivePanel(SettingsModel(config))
    qtbot.addWidget(panel)
    return panel


def test_values_a_box_cannot_show_exactly_are_kept_when_another_box_is_edited(qtbot: Any) -> None:
    config = RunConfig()
    for field_path, value in (
        ("objective.label_smoothing", 0.12345),
        ("optim.learning_rate", 1 / 3000),
        ("optim.weight_decay", 2e-11),
        ("seed", 3_000_000_000),  # beyond what a whole-number box holds
    ):
        config = replace_field(config, field_path, value)
    panel = _objective(qtbot, config.validate())
    panel.epochs_spin.setValue(7)  # the user edits only the epochs
    assert panel.settings.config == replace_field(config, "optim.num_epochs", 7)
    assert panel.seed_spin.value() == 3_000_000_000


def test_a_network_the_list_does_not_offer_is_kept_until_the_user_picks_one(qtbot: Any) -> None:
    config = replace_field(RunConfig(), "model.backbone", "a_plugin_network")
    config = replace_field(config, "data.image_size", 96)
    panel = ModelPanel(SettingsModel(config))
    qtbot.addWidget(panel)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("feature_extraction"))
    kept = panel.settings.config
    assert (kept.model.backbone, kept.data.image_size) == ("a_plugin_network", 96)
    assert kept.model.training_mode == "feature_extraction"
    panel.backbone_combo.setCurrentIndex(panel.backbone_combo.findData("resnet18"))
    assert panel.settings.config.model.backbone == "resnet18"
    assert panel.settings.config.data.image_size == 224  # the network's usual size


def test_a_folder_without_classes_switches_to_pretraining_with_a_loss_that_can_start(
    qtbot: Any, tmp_path: Path, make_unlabelled_folder: Callable[..., Path]
) -> None:
    panel = _objective(qtbot, RunConfig())
    panel.pretrain_settings.monitor_edit.setText(str(tmp_path))  # ignored while finetuning
    folder_task = FolderTask(panel.settings)
    folder_task.write_task = panel.set_task  # as the window wires it
    folder_task.follow(scan_folder(make_unlabelled_folder()))
    assert folder_task.choice is not None and folder_task.choice.is_automatic
    config = panel.settings.config.validate()  # no ConfigError: the loss goes with the task
    assert (config.objective.task, config.objective.loss) == ("pretrain", "nt_xent")
    assert config.data.monitor_dir == str(tmp_path)  # the box's folder, kept for pretraining


def test_a_change_made_while_the_panels_hear_of_another_leaves_them_all_up_to_date(
    qtbot: Any,
) -> None:
    settings = SettingsModel()
    heard: list[tuple[str, int]] = []
    settings.changed.connect(lambda config: settings.set("seed", 5) if config.seed == 1 else None)
    settings.changed.connect(lambda config: heard.append(("second", config.seed)))
    settings.set("seed", 1)
    assert settings.config.seed == 5
    assert heard[-1] == ("second", 5)  # the later listener ends with the newest settings


def test_an_unlabelled_folder_in_the_window_can_be_trained_at_once(
    qtbot: Any,
    make_window: Any,
    fake_trainer: type[FakeTrainer],
    make_unlabelled_folder: Callable[..., Path],
) -> None:
    folder = make_unlabelled_folder()
    window = make_window(trainer_factory=fake_trainer, initial_folder=folder)
    qtbot.waitUntil(lambda: window.settings.config.objective.task == "pretrain", timeout=5000)
    with qtbot.waitSignal(window.session.training_finished, timeout=10_000):
        window.start_training()
    assert window.session.last_request.config.objective.loss == "nt_xent"


def test_a_replaced_job_starts_when_the_old_one_ends_without_blocking_the_window(
    qtbot: Any,
) -> None:
    import threading

    job = Job("ptm-test")
    release, results = threading.Event(), []
    job.succeeded.connect(results.append)

    def stubborn(context: JobContext) -> str:
        release.wait(10)  # ignores the cancel until released
        return "old"

    job.start(stubborn)
    job.restart(lambda context: "new")  # returns at once
    assert job.is_running
    release.set()
    qtbot.waitUntil(lambda: results == ["new"], timeout=10_000)
    qtbot.waitUntil(lambda: not job.is_running, timeout=5000)


def test_cancelling_a_replacement_that_waits_to_start_says_cancelled(qtbot: Any) -> None:
    """Cancel pressed while a restarted job waits for the old one to end: the panel must hear
    "cancelled" (it shows the replacement as running), and the replacement never runs."""
    import threading

    job = Job("ptm-test")
    release, ran = threading.Event(), []

    def stubborn(context: JobContext) -> str:
        release.wait(10)
        return "old"

    job.start(stubborn)
    job.restart(lambda context: ran.append("new"))
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        job.cancel()
    release.set()
    qtbot.waitUntil(lambda: not job.is_running, timeout=10_000)
    assert ran == []


def test_the_tensorboard_box_shows_and_writes_the_setting(qtbot: Any) -> None:
    panel = _objective(qtbot, replace_field(RunConfig(), "saving.tensorboard", True))
    assert panel.tensorboard_check.isChecked()
    panel.tensorboard_check.setChecked(False)
    assert panel.settings.config.saving.tensorboard is False
    assert panel.settings.config == RunConfig()  # nothing else changed
    panel.tensorboard_check.setChecked(True)
    assert panel.settings.config.saving.tensorboard is True
