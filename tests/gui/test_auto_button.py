"""The Auto button (issue 12): with the folder's facts it applies Auto's recipe (the network
and the image size included) and says each choice with its reason under the button."""

from __future__ import annotations

from typing import Any

from ptm_studio.core.auto_recipe import PictureFacts
from ptm_studio.gui.panels.objective_panel import ObjectivePanel


def test_auto_applies_the_recipe_and_says_why(qtbot: Any) -> None:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    thumbnails = PictureFacts(6000, (600,) * 10, typical_side=28, grey_share=1.0)
    panel.set_dataset(6000, [600] * 10, thumbnails)
    panel.apply_auto()
    config = panel.settings.config
    assert (config.model.backbone, config.data.image_size) == ("small_cnn", 32)
    assert "colour_changes" not in config.data.augmentations
    text = panel.auto_reasons.text()
    assert text.startswith("Auto chose") and "about 28 px" in text and "greyscale" in text
    assert "• Network: small_cnn" in text and "• Random changes: flip" in text  # plain names
    assert not panel.auto_reasons.isHidden()


def test_a_setting_changed_after_auto_is_marked_as_the_users(qtbot: Any) -> None:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    photos = PictureFacts(2800, (560,) * 5, typical_side=128, grey_share=0.0)
    panel.set_dataset(2800, [560] * 5, photos)
    panel.apply_auto()
    assert "✎" not in panel.auto_reasons.text()
    panel.batch_spin.setValue(48)  # the user changes one of Auto's choices
    lines = panel.auto_reasons.text().splitlines()
    assert "✎ Batch size: 48 — yours (Auto chose 32)" in lines
    assert any(line.startswith("• Image size: 64") for line in lines)  # the others stay Auto's


def test_without_the_facts_auto_keeps_the_network(qtbot: Any) -> None:
    panel = ObjectivePanel()
    qtbot.addWidget(panel)
    panel.set_dataset(120, [100, 10, 10])
    backbone = panel.settings.config.model.backbone
    panel.apply_auto()
    assert panel.settings.config.model.backbone == backbone
    assert panel.auto_reasons.isHidden()


def _new_users_window(qtbot: Any, make_window: Any, tiny_dataset: Any, **options: Any) -> Any:
    window = make_window(auto_for_a_new_user=True, **options)
    qtbot.waitUntil(lambda: window.objective_panel._picture_facts is not None, timeout=20_000)
    window.objective_panel.set_device_kind("cpu")  # as the device check reports it
    return window


def test_for_a_new_user_auto_chooses_once_the_pictures_and_computer_are_known(
    qtbot: Any, make_window: Any, tiny_dataset: Any
) -> None:
    window = _new_users_window(qtbot, make_window, tiny_dataset)
    panel = window.objective_panel
    assert "Auto chose" in panel.auto_reasons.text()
    assert panel.settings.config.data.image_size == 32  # the tiny pictures' size, Auto's choice
    qtbot.waitUntil(lambda: not panel.rate_finder.job.is_running, timeout=120_000)


def test_a_setting_the_user_changed_first_is_never_overridden_by_auto(
    qtbot: Any, make_window: Any, tiny_dataset: Any
) -> None:
    from ptm_studio.gui.main_window import MainWindow

    window = MainWindow(runs_root=tiny_dataset.parent / "runs", auto_for_a_new_user=True)
    qtbot.addWidget(window)
    window.objective_panel.epochs_spin.setValue(3)  # before any folder is looked at
    window.dataset_panel.open_first_folder(tiny_dataset, use_demo=False)
    qtbot.waitUntil(lambda: window.objective_panel._picture_facts is not None, timeout=20_000)
    window.objective_panel.set_device_kind("cpu")
    assert window.settings.config.optim.num_epochs == 3
    assert window.objective_panel.auto_reasons.isHidden()
    window.dataset_panel.shutdown()
