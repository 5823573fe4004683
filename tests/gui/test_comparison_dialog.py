"""The "Did pretraining help?" dialog runs both arms for real and shows them side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core.config import (
    DataConfig,
    DeviceConfig,
    OptimConfig,
    RunConfig,
    replace_field,
)
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.run_catalog import rename_run
from ptm_studio.gui.comparison_dialog import ComparisonDialog, LabelFractionDialog


def tiny_config(data_dir: Path, task: str = "finetune", loss: str = "cross_entropy") -> RunConfig:
    from ptm_studio.core.config import ObjectiveConfig

    return RunConfig(
        data=DataConfig(
            data_dir=str(data_dir), image_size=16, batch_size=4, validation_fraction=0.25
        ),
        objective=ObjectiveConfig(task=task, loss=loss),
        optim=OptimConfig(num_epochs=2),
        device=DeviceConfig(device="cpu", cpu_threads=1),
    ).validate()


def test_comparison_dialog_shows_both_arms(qtbot: Any, tiny_dataset: Path, tmp_path: Path) -> None:
    pretrained = Trainer.new_run(
        tiny_config(tiny_dataset, "pretrain", "rotation"), runs_root=tmp_path
    ).run()
    assert pretrained.run_dir is not None
    dialog = ComparisonDialog(tiny_config(tiny_dataset), pretrained.run_dir, runs_root=tmp_path)
    qtbot.addWidget(dialog)
    assert "3 times with different seeds (6 runs)" in dialog.status_label.text()
    dialog.start()
    qtbot.waitUntil(
        lambda: len(dialog.finals) == 6 and not dialog.session.is_running, timeout=240_000
    )
    assert [(start, seed) for start, seed, _event in dialog.finals] == [
        (start, seed) for seed in (0, 1, 2) for start in ("pretrained", "random")
    ]
    assert all(event.status == "completed" for _start, _seed, event in dialog.finals)
    assert dialog.plot.point_count("pretrained-0") == 2 and dialog.plot.point_count("random-0") == 2
    assert dialog.table.rowCount() == 6 and dialog.table.item(1, 0).text() == "from random"
    best = dialog.finals[0][2].best_val_accuracy
    assert dialog.table.item(0, 2).text() == f"{100 * best:.1f} %"  # like with like: best epochs
    verdict = dialog.verdict_label.text()
    assert verdict.startswith("Pretraining") and "best epoch" in verdict
    assert "ptm-studio" not in verdict  # the window ran the seeds itself: no command to type
    dialog.close()
    assert not dialog.session.is_running


def test_closing_mid_comparison_stops_and_leaves_no_thread(
    qtbot: Any, tiny_dataset: Path, tmp_path: Path
) -> None:
    pretrained = Trainer.new_run(
        tiny_config(tiny_dataset, "pretrain", "rotation"), runs_root=tmp_path
    ).run()
    dialog = ComparisonDialog(tiny_config(tiny_dataset), pretrained.run_dir, runs_root=tmp_path)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.start()
    qtbot.waitUntil(lambda: dialog._arm_index >= 0, timeout=60_000)
    dialog.close()
    assert not dialog.session.is_running
    assert len(dialog.finals) <= 2


def test_the_training_menu_opens_the_comparison(
    qtbot: Any, make_window: Any, tiny_dataset: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from PySide6.QtWidgets import QFileDialog

    pretrained = Trainer.new_run(
        tiny_config(tiny_dataset, "pretrain", "rotation"), runs_root=tmp_path
    ).run()
    window = make_window()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *_args: str(pretrained.run_dir))
    actions = (
        next(a for a in window.menuBar().actions() if a.text() == "&Training").menu().actions()
    )
    next(a for a in actions if a.text().startswith("Did pretraining help")).trigger()
    dialog = window.run_controller.comparison_dialog
    assert dialog.config.model.weights == "random" and dialog.config.objective.task == "finetune"
    assert "3 times with different seeds" in dialog.status_label.text()
    qtbot.waitUntil(lambda: dialog._arm_index >= 0, timeout=60_000)  # it runs them itself
    dialog.close()
    assert not dialog.session.is_running


def test_model_panel_lists_earlier_runs_by_name_pretraining_first(
    qtbot: Any, tiny_dataset: Path, tmp_path: Path
) -> None:
    from ptm_studio.gui.panels.model_panel import ModelPanel

    finetuned = Trainer.new_run(tiny_config(tiny_dataset), runs_root=tmp_path).run()
    pretrained = Trainer.new_run(
        tiny_config(tiny_dataset, "pretrain", "rotation"), runs_root=tmp_path
    ).run()
    assert finetuned.run_dir is not None and pretrained.run_dir is not None
    rename_run(finetuned.run_dir, "my first cats")
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.runs_root = tmp_path
    panel.weights_combo.setCurrentIndex(panel.weights_combo.findData("run"))
    labels = [panel.runs_combo.itemText(i) for i in range(panel.runs_combo.count())]
    assert labels[0] == "Choose a run…"
    # The names the Runs tab shows: made from data · network · task, or the user's own.
    assert "Small CNN · pretraining (rotation)" in labels[1] and "finished" in labels[1]
    assert labels[2].startswith("my first cats")
    assert panel.runs_combo.itemData(1) == str(pretrained.run_dir)
    panel.runs_combo.setCurrentIndex(1)
    panel.runs_combo.activated.emit(1)
    config = panel.settings.config
    assert config.model.weights == "run" and config.model.weights_path == str(pretrained.run_dir)


def test_the_label_fraction_curve_draws_the_runs_numbers(
    qtbot: Any, tiny_dataset: Path, tmp_path: Path
) -> None:
    pretrained = Trainer.new_run(
        tiny_config(tiny_dataset, "pretrain", "rotation"), runs_root=tmp_path
    ).run()
    assert pretrained.run_dir is not None
    config = replace_field(tiny_config(tiny_dataset), "optim.num_epochs", 1)
    dialog = LabelFractionDialog(
        config, pretrained.run_dir, runs_root=tmp_path, fractions=(1.0, 0.5), seeds=(0, 1)
    )
    qtbot.addWidget(dialog)
    assert "50 %, 100 % of the labels, 2 seeds each (8 runs)" in dialog.status_label.text()
    dialog.start()
    qtbot.waitUntil(
        lambda: len(dialog.finals) == 8 and not dialog.session.is_running, timeout=240_000
    )
    assert [(f, start, seed) for f, start, seed, *_ in dialog.finals] == [
        (f, start, seed)
        for f in (0.5, 1.0)
        for seed in (0, 1)
        for start in ("pretrained", "random")
    ]
    assert dialog.table.rowCount() == 2
    for start in ("pretrained", "random"):
        x, y = dialog.curves[start].getData()
        assert len(x) == 2
        for index, fraction in enumerate((0.5, 1.0)):
            kept = [
                event.best_val_accuracy
                for f, arm, _seed, event, *_ in dialog.finals
                if f == fraction and arm == start
            ]
            assert y[index] == pytest.approx(100 * sum(kept) / len(kept))
    half, whole = dialog.finals[0][4], dialog.finals[-1][4]  # as each run said it started
    assert 0 < half < whole
    assert dialog.table.item(1, 1).text() == f"{whole} ({round(whole / 3)} per class)"
    assert "labelled pictures per class" in dialog.verdict_label.text()
    dialog.close()
    assert not dialog.session.is_running
