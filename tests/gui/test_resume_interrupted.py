"""T5 in the app: a run a crash interrupted is offered at launch; Resume continues it, curves too.

The interrupted runs are real: a tiny run trained with the core Trainer, stopped, and its
run.json put back to "running", which is what a killed process leaves behind.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ptm_studio.core.checkpoints import load_checkpoint
from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.events import STATUS_COMPLETED, STATUS_STOPPED
from ptm_studio.core.engine.trainer import Trainer
from ptm_studio.core.runs import RunDirectory
from ptm_studio.gui import dialogs, resume_offer
from ptm_studio.gui.resume_offer import (
    ResumeChoice,
    ResumeOffer,
    ResumeOfferDialog,
    describe_offer,
    format_age,
)
from ptm_studio.gui.resume_offer import ask_to_resume as real_ask_to_resume
from tests.gui.run_makers import choose_tiny_training, make_interrupted_run

pytestmark = pytest.mark.slow


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Answer the resume question with the given choices in turn; record each offer."""

    class Answers:
        def __init__(self) -> None:
            self.choices: list[ResumeChoice] = []
            self.offers: list[ResumeOffer] = []

        def __call__(self, parent: Any, offer: ResumeOffer) -> ResumeChoice:
            self.offers.append(offer)
            return self.choices.pop(0)

    recorder = Answers()
    monkeypatch.setattr(resume_offer, "ask_to_resume", recorder)
    return recorder


def _wait_until_idle(qtbot: Any, window: Any) -> Any:
    qtbot.waitUntil(
        lambda: window.session.last_finished is not None and not window.session.is_running,
        timeout=120_000,
    )
    return window.session.last_finished


def _assert_steps_without_gap_or_repeat(window: Any, expected_steps: int) -> None:
    metrics = window.metrics_panel
    metrics.refresh_all()
    for plot, key in ((metrics.step_loss_plot, "raw"), (metrics.learning_rate_plot, "lr")):
        steps, _ = plot.points(key)
        assert steps.tolist() == list(range(1, expected_steps + 1)), (key, steps.tolist())


def test_nothing_is_offered_when_no_run_was_interrupted(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    runs_root = tmp_path / "runs"
    completed = Trainer.new_run(
        replace_field(tiny_config, "optim.num_epochs", 1), runs_root=runs_root
    )
    assert completed.run().status == STATUS_COMPLETED
    window = make_window()
    window.run_controller.offer_to_resume_interrupted_runs()
    assert answers.offers == []
    assert not window.session.is_running


def test_resume_continues_the_run_and_its_curves(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    run_dir = make_interrupted_run(tiny_config, tmp_path / "runs", after_epoch=1)
    first_epoch = RunDirectory(run_dir).read_metrics("epoch")[0]
    window = make_window()
    window.objective_panel.epochs_spin.setValue(7)  # the run's own settings must win
    answers.choices = [ResumeChoice.RESUME]
    with qtbot.waitSignal(window.session.training_started, timeout=120_000) as started:
        window.run_controller.offer_to_resume_interrupted_runs()
    offer = answers.offers[0]
    assert (offer.run_dir, offer.name, offer.task) == (run_dir, run_dir.name, "finetune")
    assert (offer.epochs_completed, offer.num_epochs, offer.is_mid_epoch) == (1, 3, False)
    assert Path(offer.data_folder) == Path(tiny_config.data.data_dir or "")
    assert offer.saved_at is not None and offer.other_runs == 0
    assert started.args[0].run_dir == run_dir and started.args[0].start_epoch == 2
    # The panels show the settings the run uses, frozen while it runs.
    assert window.objective_panel.epochs_spin.value() == 3
    assert not window.objective_panel.isEnabled() and not window.model_panel.isEnabled()
    finished = _wait_until_idle(qtbot, window)
    assert finished.status == STATUS_COMPLETED, finished.error_details
    assert finished.epochs_completed == 3
    assert RunDirectory(run_dir).read_status()["status"] == STATUS_COMPLETED
    assert "after resuming" in window.training_panel.status_label.text()
    metrics = window.metrics_panel
    metrics.refresh_all()
    epochs, train_losses = metrics.epoch_loss_plot.points("train")
    assert epochs.tolist() == [1, 2, 3]
    assert train_losses[0] == pytest.approx(first_epoch["train_loss"])  # from before the crash
    accuracy_epochs, _ = metrics.accuracy_plot.points("val")
    assert accuracy_epochs.tolist() == [1, 2, 3]
    steps_per_epoch = first_epoch["global_step"]
    _assert_steps_without_gap_or_repeat(window, 3 * steps_per_epoch)
    assert metrics.step_loss_plot.drawn_point_count("raw") == 3 * steps_per_epoch
    # The charts match the run's own log, line for line.
    logged = [record["global_step"] for record in RunDirectory(run_dir).read_metrics("batch")]
    assert logged == list(range(1, 3 * steps_per_epoch + 1))


def test_resume_from_a_mid_epoch_save_drops_what_was_logged_after_it(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    run_dir = make_interrupted_run(tiny_config, tmp_path / "runs", at_step=2)
    saved_step = int(load_checkpoint(RunDirectory(run_dir).last_checkpoint_dir).meta["global_step"])
    assert saved_step == 2
    # The dying process had logged steps past its last save: they must not show twice.
    RunDirectory(run_dir).append_metrics(
        {"type": "batch", "epoch": 1, "global_step": step, "loss": 9.0, "learning_rate": 0.1}
        for step in (3, 4)
    )
    window = make_window()
    answers.choices = [ResumeChoice.RESUME]
    window.run_controller.offer_to_resume_interrupted_runs()
    offer = answers.offers[0]
    assert offer.is_mid_epoch and offer.global_step == 2 and offer.epochs_completed == 0
    assert "during epoch 1 of 3" in describe_offer(offer)
    finished = _wait_until_idle(qtbot, window)
    assert finished.status == STATUS_COMPLETED, finished.error_details
    total_steps = RunDirectory(run_dir).read_metrics("epoch")[-1]["global_step"]
    _assert_steps_without_gap_or_repeat(window, total_steps)
    _, losses = window.metrics_panel.step_loss_plot.points("raw")
    assert 9.0 not in losses.tolist()


def test_dont_resume_marks_the_run_stopped_and_it_is_not_offered_again(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    run_dir = make_interrupted_run(tiny_config, tmp_path / "runs", after_epoch=1)
    files_before = sorted(path.name for path in run_dir.rglob("*"))
    window = make_window()
    answers.choices = [ResumeChoice.LATER]
    window.run_controller.offer_to_resume_interrupted_runs()
    assert RunDirectory(run_dir).read_status()["status"] == "running"  # asked again next time
    answers.choices = [ResumeChoice.NEVER]
    window.run_controller.offer_to_resume_interrupted_runs()
    assert len(answers.offers) == 2 and not window.session.is_running
    assert RunDirectory(run_dir).read_status()["status"] == STATUS_STOPPED
    assert sorted(path.name for path in run_dir.rglob("*")) == files_before  # nothing deleted
    assert load_checkpoint(RunDirectory(run_dir).last_checkpoint_dir).trainer_state is not None
    window.run_controller.offer_to_resume_interrupted_runs()
    assert len(answers.offers) == 2  # not offered again


def test_several_interrupted_runs_newest_first_and_dont_resume_offers_the_next(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    runs_root = tmp_path / "runs"
    older = make_interrupted_run(tiny_config, runs_root, at_step=1)
    newer = make_interrupted_run(tiny_config, runs_root, at_step=1)
    for run_dir, created in ((older, "2020-01-01T10:00:00"), (newer, "2020-01-02T10:00:00")):
        RunDirectory(run_dir).write_status(created=created)
    window = make_window()
    answers.choices = [ResumeChoice.NEVER, ResumeChoice.LATER]
    window.run_controller.offer_to_resume_interrupted_runs()
    assert [offer.run_dir for offer in answers.offers] == [newer, older]
    assert [offer.other_runs for offer in answers.offers] == [1, 0]
    assert "1 older interrupted run was found too" in describe_offer(answers.offers[0])
    assert RunDirectory(older).read_status()["status"] == "running"


def test_the_stop_and_resume_buttons_keep_the_curves_of_a_run_stopped_in_epoch_1(
    qtbot: Any, make_window: Any
) -> None:
    window = make_window()
    choose_tiny_training(window)
    with qtbot.waitSignal(window.session.batch_finished, timeout=120_000):
        window.start_training()
    window.stop_training()
    assert _wait_until_idle(qtbot, window).status == STATUS_STOPPED
    stopped_at = window.metrics_panel.step_loss_plot.point_count("raw")
    assert stopped_at >= 1
    window.session.last_finished = None
    window.training_panel.resume_button.click()
    finished = _wait_until_idle(qtbot, window)
    assert finished.status == STATUS_COMPLETED, finished.error_details
    total_steps = RunDirectory(finished.run_dir).read_metrics("epoch")[-1]["global_step"]
    _assert_steps_without_gap_or_repeat(window, total_steps)


def test_pretraining_history_comes_back_in_the_pretraining_tab(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    config = replace_field(tiny_config, "objective.task", "pretrain")
    config = replace_field(config, "objective.loss", "rotation")
    run_dir = make_interrupted_run(config, tmp_path / "runs", after_epoch=1)
    window = make_window()
    answers.choices = [ResumeChoice.RESUME]
    window.run_controller.offer_to_resume_interrupted_runs()
    assert answers.offers[0].task == "pretrain"
    assert _wait_until_idle(qtbot, window).status == STATUS_COMPLETED
    epochs, spreads = window.pretraining_panel.plot.points("spread")
    assert epochs.tolist() == [1, 2, 3] and bool(np.isfinite(spreads).all())
    assert RunDirectory(run_dir).read_status()["status"] == STATUS_COMPLETED


# ----------------------------------------------------------------- the dialog itself


def _offer(**changes: Any) -> ResumeOffer:
    values: dict[str, Any] = {
        "run_dir": Path("/runs/flowers <b>v2</b>"),
        "name": "flowers <b>v2</b>",
        "task": "finetune",
        "data_folder": "/data/flowers",
        "epochs_completed": 2,
        "num_epochs": 10,
        "is_mid_epoch": False,
        "global_step": 120,
        "saved_at": datetime(2026, 3, 4, 14, 3),
        "other_runs": 0,
    }
    values.update(changes)
    return ResumeOffer(**values)


def test_format_age_in_plain_words() -> None:
    now = datetime(2026, 3, 4, 15, 0)
    assert format_age(now - timedelta(seconds=20), now) == "just now"
    assert format_age(now - timedelta(minutes=1), now) == "1 minute ago"
    assert format_age(now - timedelta(minutes=12), now) == "12 minutes ago"
    assert format_age(now - timedelta(hours=3, minutes=5), now) == "3 hours ago"
    assert format_age(now - timedelta(days=2), now) == "2 days ago"
    assert format_age(None, now) == "at an unknown time"


def test_the_dialog_describes_the_run_in_plain_words(qtbot: Any) -> None:
    from PySide6.QtGui import QTextDocument

    now = datetime(2026, 3, 4, 14, 15)
    dialog = ResumeOfferDialog(_offer(other_runs=2), now=now)
    qtbot.addWidget(dialog)
    assert "flowers <b>v2</b>" not in dialog.text()  # escaped: a run named like HTML is literal
    document = QTextDocument()
    document.setHtml(dialog.text())
    shown = document.toPlainText()
    for expected in (
        "Run:",
        "flowers <b>v2</b>",
        "Training a classifier",
        "/data/flowers",
        "2 of 10 epochs finished",
        "12 minutes ago (04 Mar 2026, 14:03)",
        "2 older interrupted runs were found too",
        "Everything up to its last save is kept.",
    ):
        assert expected in shown, shown
    assert "Progress: 2 of 10 epochs finished" in describe_offer(_offer(), now)
    buttons = [button.text() for button in dialog.buttons()]
    assert {"Resume training", "Not now", "Don't resume"} <= set(buttons)
    assert all(button.toolTip() for button in dialog.buttons())
    assert dialog.defaultButton() is dialog.resume_button
    assert dialog.escapeButton() is dialog.later_button


@pytest.mark.parametrize(
    ("button", "expected"),
    [
        ("resume_button", ResumeChoice.RESUME),
        ("later_button", ResumeChoice.LATER),
        ("never_button", ResumeChoice.NEVER),
    ],
)
def test_the_real_dialog_returns_the_clicked_choice(
    qtbot: Any, button: str, expected: ResumeChoice
) -> None:
    clicked: list[str] = []

    def click() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ResumeOfferDialog):
            QTimer.singleShot(20, click)  # not shown yet
            return
        clicked.append(dialog.windowTitle())
        getattr(dialog, button).click()

    QTimer.singleShot(0, click)
    assert real_ask_to_resume(None, _offer()) == expected
    assert clicked == ["Resume the interrupted training?"]


def test_offer_reads_a_run_folder_left_running(tmp_path: Path, tiny_config: RunConfig) -> None:
    from ptm_studio.gui.run_controller import describe_run, interrupted_runs

    run_dir = make_interrupted_run(tiny_config, tmp_path / "runs", after_epoch=1)
    runs = interrupted_runs(tmp_path / "runs")
    assert [run.path for run in runs] == [run_dir]
    offer = describe_run(runs[0])
    assert offer is not None and offer.epochs_completed == 1 and not offer.is_mid_epoch
    meta = json.loads((run_dir / "checkpoints" / "last" / "meta.json").read_text())
    assert offer.global_step == meta["global_step"]


def test_a_damaged_last_save_offers_the_previous_one_and_goes_on_from_it(
    qtbot: Any,
    make_window: Any,
    tiny_config: RunConfig,
    tmp_path: Path,
    answers: Any,
    dialog_calls: list[tuple[str, tuple[Any, ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """M3 in the app: the resume fails on the damaged save, the user is asked, and Yes resumes
    from the save before it; the damaged one is kept aside."""
    run_dir = make_interrupted_run(tiny_config, tmp_path / "runs", after_epoch=2)
    last = RunDirectory(run_dir).last_checkpoint_dir
    model_file = last / "model.safetensors"
    model_file.write_bytes(model_file.read_bytes()[:50])
    window = make_window()
    answers.choices = [ResumeChoice.RESUME]

    def modal_yes(*args: Any) -> bool:
        """A real message box runs its own event loop: the failed run ends meanwhile."""
        dialog_calls.append(("ask_yes_no", args))
        qtbot.wait(1500)
        return True

    monkeypatch.setattr(dialogs, "ask_yes_no", modal_yes)
    locked_at_start: list[bool] = []
    window.session.training_started.connect(
        lambda _event: locked_at_start.append(not window.objective_panel.isEnabled())
    )
    window.run_controller.offer_to_resume_interrupted_runs()
    qtbot.waitUntil(
        lambda: (
            window.session.last_finished is not None
            and window.session.last_finished.status == STATUS_COMPLETED
            and not window.session.is_running
        ),
        timeout=120_000,
    )
    questions = [args for name, args in dialog_calls if name == "ask_yes_no"]
    assert len(questions) == 1
    assert "incomplete or corrupt" in questions[0][2] and "(epoch 1, step" in questions[0][2]
    assert not [args for name, args in dialog_calls if name == "show_error"]
    epochs = [record["epoch"] for record in RunDirectory(run_dir).read_metrics("epoch")]
    assert epochs == [1, 2, 3]  # epoch 2 trained again from the epoch-1 save
    assert len(list(last.parent.glob("last-damaged-*"))) == 1
    assert locked_at_start[-1], "the settings must stay locked while the resumed run trains"


def test_a_resumed_runs_one_time_choices_do_not_carry_over_to_the_next_run(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    """Consent to download ImageNet weights is asked per start, and a run's folder name is its
    own: showing a resumed run's settings, or remembering them for the next launch, keeps
    neither."""
    from PySide6.QtCore import QSettings

    config = replace_field(tiny_config, "model.allow_download", True)
    config = replace_field(config, "run_name", "my run")
    run_dir = make_interrupted_run(config, tmp_path / "runs", after_epoch=1)
    window = make_window(runs_root=tmp_path / "runs")
    answers.choices = [ResumeChoice.RESUME]
    with qtbot.waitSignal(window.session.training_finished, timeout=120_000):
        window.run_controller.offer_to_resume_interrupted_runs()
    assert RunDirectory(run_dir).read_config().model.allow_download  # the run keeps its own
    shown = window.settings.config
    assert not shown.model.allow_download and shown.run_name is None
    qtbot.waitUntil(lambda: not window.session.is_running, timeout=10_000)
    window.close()
    saved = RunConfig.from_json(str(QSettings().value("last/config")))
    assert not saved.model.allow_download and saved.run_name is None


def _hold_the_run_lock(run_dir: Path) -> Any:
    """Another process (a second window, the command line) training the run: it holds its lock
    and run.json says "running" for it."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom ptm_studio.core.run_lock import RunLock\n"
            f"RunLock.acquire({str(run_dir)!r}); print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_run_another_process_trains_is_neither_offered_nor_resumed(
    qtbot: Any,
    make_window: Any,
    tiny_config: RunConfig,
    tmp_path: Path,
    answers: Any,
    dialog_calls: list[tuple[str, tuple[Any, ...]]],
) -> None:
    """Issue 11, case 1 in the app: the launch offer leaves it out, and Resume (the button,
    the offer, the previous-save question) refuses it, naming the process, before the window's
    settings or the run folder are touched."""
    runs_root = tmp_path / "runs"
    busy = make_interrupted_run(tiny_config, runs_root, after_epoch=1)
    free = make_interrupted_run(tiny_config, runs_root, after_epoch=1)
    RunDirectory(busy).write_status(created="2030-01-01T10:00:00")  # the newest: asked first
    status_before = RunDirectory(busy).status_path.read_bytes()
    holder = _hold_the_run_lock(busy)
    try:
        window = make_window()
        settings_before = window.settings.config
        answers.choices = [ResumeChoice.LATER]
        window.run_controller.offer_to_resume_interrupted_runs()
        assert [offer.run_dir for offer in answers.offers] == [free]
        assert window.run_controller.resume_run(busy) is False
        assert not window.session.is_running and window.settings.config == settings_before
        [error] = [args for name, args in dialog_calls if name == "show_error"]
        assert error[1] == "This run is being trained now"
        assert f"process {holder.pid}" in error[2] and "then resume it here" in error[2]
        assert RunDirectory(busy).status_path.read_bytes() == status_before
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    answers.choices = [ResumeChoice.LATER]
    window.run_controller.offer_to_resume_interrupted_runs()  # its trainer died: offered now
    assert answers.offers[-1].run_dir == busy


def test_a_damaged_run_json_does_not_stop_the_offer_for_the_others(
    qtbot: Any, make_window: Any, tiny_config: RunConfig, tmp_path: Path, answers: Any
) -> None:
    runs_root = tmp_path / "runs"
    interrupted = make_interrupted_run(tiny_config, runs_root, after_epoch=1)
    for name, damage in (
        ("not_utf8", b'{"status": "running", "created": "\xff"}'),
        ("a_list", b'["running"]'),
        ("a_word_for_a_number", b'{"status": "running", "epochs_completed": "x"}'),
        ("a_number_for_names", b'{"status": "running", "class_names": 5}'),
    ):
        copy = runs_root / name
        shutil.copytree(interrupted, copy)
        (copy / "run.json").write_bytes(damage)
    damaged_meta = runs_root / "damaged_meta"
    shutil.copytree(interrupted, damaged_meta)
    meta = RunDirectory(damaged_meta).last_checkpoint_dir / "meta.json"
    meta.write_text(meta.read_text(encoding="utf-8").replace('"epoch": 1', '"epoch": "x"'))
    window = make_window()
    answers.choices = [ResumeChoice.LATER]
    window.run_controller.offer_to_resume_interrupted_runs()
    assert [offer.run_dir for offer in answers.offers] == [interrupted]
