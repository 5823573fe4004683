"""The HTML report: one self-contained file holding the figures, the scores, the confusion
matrix, the worst mistakes as pictures and the calibration; names from the folders escaped."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from training_helpers import train_and_record

from ptm_studio.core.calibration import CALIBRATION_FILE
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.report import REPORT_FILE, write_report
from ptm_studio.core.report_figures import Series, _ticks, line_chart
from ptm_studio.core.runs import RunDirectory


def test_the_report_of_a_trained_run_holds_every_figure_and_is_self_contained(
    tiny_config: Callable[..., RunConfig], tiny_dataset: Path, tmp_path: Path
) -> None:
    hostile = tiny_dataset / "<i>circle"
    (tiny_dataset / "circle").rename(hostile)  # a class folder whose name looks like HTML
    finished, _ = train_and_record(tiny_config(num_epochs=2), tmp_path / "runs")
    assert finished.run_dir is not None
    report = write_report(finished.run_dir)
    assert report == finished.run_dir / REPORT_FILE
    html = report.read_text(encoding="utf-8")
    assert html.count("<svg") == 4  # loss, accuracy, loss per step, reliability
    for heading in (
        "Data",
        "How it learned",
        "How good it is",
        "Worst mistakes",
        "Can its confidence be trusted?",
        "Settings",
    ):
        assert f"{heading}" in html
    assert 'class="confusion"' in html and "Accuracy " in html
    assert "data:image/jpeg;base64," in html  # the mistakes as pictures, inside the file
    assert "&lt;i&gt;circle" in html and "<i>circle" not in html
    assert "<script" not in html
    outside = set(re.findall(r"(?:src|href)=\"(https?:[^\"]*)", html))
    assert not outside, f"the report must open offline; it links to {outside}"
    # Writing a report changes nothing in the run (evaluating for it saves no calibration).
    assert not (RunDirectory(finished.run_dir).best_checkpoint_dir / CALIBRATION_FILE).exists()


def test_a_pretraining_run_gets_its_curves_and_says_why_there_are_no_scores(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    config = replace_field(tiny_config(num_epochs=1), "objective.task", "pretrain")
    config = replace_field(config, "objective.loss", "rotation")
    finished, _ = train_and_record(config, tmp_path / "runs")
    assert finished.run_dir is not None
    html = write_report(finished.run_dir, tmp_path / "pretraining.html").read_text(encoding="utf-8")
    assert "This is a pretraining run" in html and html.count("<svg") == 3


def test_chart_ticks_are_round_and_empty_charts_say_so() -> None:
    assert _ticks(0, 1) == [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
    assert _ticks(1, 3, whole=True) == [1.0, 2.0, 3.0]
    empty = line_chart(
        "Loss", [Series("training", [1, 2], [float("nan")] * 2)], x_label="epoch", y_label="loss"
    )
    assert "nothing was logged" in empty
