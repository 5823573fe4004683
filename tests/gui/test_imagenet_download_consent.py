"""ImageNet weights not on this computer: Start asks before downloading, never fails silently."""

from __future__ import annotations

from typing import Any

import pytest

from ptm_studio.gui import dialogs
from ptm_studio.gui import run_controller as run_controller_module


@pytest.mark.parametrize("user_agrees", [True, False])
def test_start_asks_before_downloading_imagenet_weights(
    make_window: Any, monkeypatch: pytest.MonkeyPatch, user_agrees: bool
) -> None:
    window = make_window()
    panel = window.model_panel
    panel.backbone_combo.setCurrentIndex(panel.backbone_combo.findData("mobilenet_v3_small"))
    monkeypatch.setattr(run_controller_module, "imagenet_status", lambda name: "needs_download")
    questions: list[str] = []
    monkeypatch.setattr(
        dialogs,
        "ask_yes_no",
        lambda parent, title, question: questions.append(question) or user_agrees,
    )
    started: list[Any] = []
    monkeypatch.setattr(
        window.run_controller, "start_run", lambda config, resume_from: started.append(config)
    )
    window.settings.set("model.weights", "imagenet")

    window.start_training()

    assert len(questions) == 1 and "mobilenet_v3_small" in questions[0]
    if user_agrees:
        assert len(started) == 1 and started[0].model.allow_download is True
    else:
        assert started == []
