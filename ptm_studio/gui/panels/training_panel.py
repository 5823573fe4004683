"""TrainingPanel: Start / Stop / Resume, progress with epoch, step, speed and time left, the device,
and a notice when the run had to adjust itself to keep going (out of memory, a stuck loader)."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_STOPPED,
    BatchFinished,
    DownloadProgressed,
    EarlyStopRequested,
    EpochFinished,
    FrozenFeaturesMeasured,
    LearningAdvice,
    PicturesSkipped,
    TrainingAdjusted,
    TrainingFinished,
    TrainingStarted,
)
from ptm_studio.gui import theme
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.warmup import LOADING_TORCH_TEXT
from ptm_studio.gui.wording import format_duration, format_megabytes

REFRESH_INTERVAL_MS = 200  # the progress bar and its words, 5 Hz (painting slows training)
IDLE_TEXT = {True: "Ready", False: "Not ready"}
"""The bar before any run, by whether the images can train (after a run it says how it ended)."""


def _plain_label(text: str = "") -> QLabel:
    return plain_label(text, word_wrap=False)


class TrainingPanel(QGroupBox):
    """Buttons emit requests; the main window decides. Progress is repainted at 10 Hz."""

    start_requested = Signal()
    stop_requested = Signal()
    resume_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("4. Train", parent)
        self.start_button = QPushButton(theme.icon("start"), "Start training")
        self.start_button.setObjectName("startButton")
        self.start_button.setToolTip(
            "Start a new training run with the settings above (Ctrl+Return)."
        )
        self.stop_button = QPushButton(theme.icon("stop"), "Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip(
            "Stop after the current batch. The model so far is saved and the run can be resumed (Esc)."
        )
        self.resume_button = QPushButton(theme.icon("resume"), "Resume")
        self.resume_button.setObjectName("resumeButton")
        self.resume_button.setToolTip("Continue the stopped run from its last saved checkpoint.")
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.resume_button.clicked.connect(self.resume_requested)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat(IDLE_TEXT[True])
        self.progress_bar.setToolTip("Progress of the whole run.")
        self.status_label = _plain_label("Ready. Choose a folder of images, then press Start.")
        self.status_label.setWordWrap(True)
        self.status_label.setFixedHeight(2 * self.status_label.fontMetrics().lineSpacing() + 4)
        self.epoch_label = _plain_label("–")
        self.step_label = _plain_label("–")
        self.speed_label = _plain_label("–")
        self.eta_label = _plain_label("–")
        self.device_label = _plain_label(LOADING_TORCH_TEXT)
        self.device_label.setWordWrap(True)
        self.device_label.setMinimumHeight(2 * self.device_label.fontMetrics().lineSpacing())
        self.device_label.setToolTip("Where the computation runs. A GPU is usually 10–50× faster.")
        self.frozen_banner = _plain_label(
            "Settings are locked while training; changes apply to the next run."
        )
        self.frozen_banner.setObjectName("frozenBanner")
        self.frozen_banner.setWordWrap(True)
        policy = self.frozen_banner.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # showing it must not resize (and repaint) the plots
        self.frozen_banner.setSizePolicy(policy)
        self.frozen_banner.setVisible(False)
        self.notice_label = _plain_label("")
        self.notice_label.setObjectName("noticeBanner")
        self.notice_label.setWordWrap(True)
        self.notice_label.setToolTip(
            "PTM Studio changed how this run works so that it could keep going. "
            "This applies to this run only and is also written to the log file."
        )
        self.notice_label.setVisible(False)
        self._notices: dict[str, str] = {}

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.resume_button)
        details = QGridLayout()
        for row, (name, label, tip) in enumerate(
            (
                ("Epoch", self.epoch_label, "One epoch is one pass over all training images."),
                ("Step", self.step_label, "One step is one batch of images."),
                ("Speed", self.speed_label, "Images processed per second."),
                ("Time left", self.eta_label, "Estimated time until the run ends."),
                ("Device", self.device_label, self.device_label.toolTip()),
            )
        ):
            caption = _plain_label(f"{name}:")
            caption.setToolTip(tip)
            label.setToolTip(tip)
            details.addWidget(caption, row, 0, Qt.AlignmentFlag.AlignTop)
            details.addWidget(label, row, 1)
        details.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.notice_label)
        layout.addLayout(details)
        layout.addWidget(self.frozen_banner)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        self._pending_batch: BatchFinished | None = None
        self.last_speed = float("nan")
        self._can_resume = False
        self._can_start = True  # the window says when the images cannot train (set_can_start)
        self._is_running = False
        self._is_resumed = False
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_INTERVAL_MS)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.set_running(False)

    def show_ready(self, text: str) -> None:
        """The idle message (what is loaded, what to do next, or why Start waits); kept until
        a run starts."""
        if not self._is_running:
            self.status_label.setText(text)

    @Slot(object)
    def show_device(self, info: object) -> None:
        """The device the check at launch found (a DeviceInfo)."""
        self.set_device(str(getattr(info, "name", "")), str(getattr(info, "note", "")))

    def set_device(self, name: str, note: str = "") -> None:
        self.device_label.setText(f"{name} — {note}" if note else name)

    def set_running(self, is_running: bool, *, is_stopping: bool = False) -> None:
        self._is_running = is_running
        self.start_button.setEnabled(not is_running and self._can_start)
        self.stop_button.setEnabled(is_running and not is_stopping)
        self.resume_button.setEnabled(not is_running and self._can_resume)
        self.frozen_banner.setVisible(is_running)

    def set_can_start(self, can_start: bool) -> None:
        """Whether the images (and settings) shown can train: Start waits until they can."""
        self._can_start = can_start
        self.start_button.setEnabled(can_start and not self._is_running)
        if self.progress_bar.format() in IDLE_TEXT.values():  # not the ending of a run
            self.progress_bar.setFormat(IDLE_TEXT[can_start])

    def set_can_resume(self, can_resume: bool) -> None:
        self._can_resume = can_resume
        self.resume_button.setEnabled(can_resume and not self._is_running)

    def show_stopping(self) -> None:
        self.status_label.setText("Stopping after the current batch and saving the model…")
        self.stop_button.setEnabled(False)

    @Slot(object)
    def show_adjustment(self, event: TrainingAdjusted) -> None:
        """Keep a visible note of how the run adjusted itself (the latest one of each kind)."""
        self._show_notice(event.kind, f"Adjusted to keep going: {event.message}")

    @Slot(object)
    def show_frozen_features(self, event: FrozenFeaturesMeasured) -> None:
        """The first half of "probe then finetune" done: what the starting features are worth."""
        self._show_notice("frozen_features", event.message)

    @Slot(object)
    def show_early_stop(self, event: EarlyStopRequested) -> None:
        self._show_notice(
            "early_stop", f"Ended early after epoch {event.epochs_completed}: {event.reason}."
        )

    @Slot(object)
    def show_advice(self, event: LearningAdvice) -> None:
        """A word from the run about how it goes (e.g. that it is not learning), kept visible."""
        self._show_notice(event.kind, event.message)

    @Slot(object)
    def show_skipped(self, event: PicturesSkipped) -> None:
        """Pictures left out of the run because they could not be read (listed in run.json)."""
        count = len(event.files)
        pictures = "picture was" if count == 1 else "pictures were"
        first = event.files[0][0] if event.files else ""
        self._show_notice(
            "skipped",
            f"{count} {pictures} left out because they could not be read ({first}"
            f"{' and others' if count > 1 else ''}); the run's run.json lists them all.",
        )

    def _show_notice(self, kind: str, text: str) -> None:
        self._notices[kind] = text
        self.notice_label.setText("\n".join(self._notices.values()))
        self.notice_label.setVisible(True)

    def mark_resumed(self) -> None:
        """The next run continues an earlier one: its time counts from the resume."""
        self._is_resumed = True

    def clear_adjustments(self) -> None:
        self._notices.clear()
        self.notice_label.setText("")
        self.notice_label.setVisible(False)

    @Slot(object)
    def start_run(self, event: TrainingStarted) -> None:
        self._pending_batch = None
        self.clear_adjustments()
        if event.resume_changes:
            self._show_notice("resume", "Resumed with " + "; ".join(event.resume_changes))
        if event.time_plan:
            self._show_notice("time_budget", event.time_plan)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("Starting…")
        self.epoch_label.setText(f"{event.start_epoch} of {event.num_epochs}")
        self.step_label.setText(f"0 of {event.steps_per_epoch} in this epoch")
        self.set_device(event.device_name, event.device_note)
        self.status_label.setText(
            f"Training on {event.num_train_images} images, checking on {event.num_val_images}. "
            f"The model has {event.parameter_count:,} parameters."
        )

    @Slot(object)
    def show_download(self, event: DownloadProgressed) -> None:
        """ImageNet weights downloading before the run starts: "… 45 of 98 MB" (total 0 = unknown)."""
        done_bytes, total_bytes = event.done_bytes, event.total_bytes
        is_known = total_bytes > 0
        if is_known and done_bytes >= total_bytes:
            self.progress_bar.setValue(1000)
            self.progress_bar.setFormat(
                f"ImageNet weights downloaded ({format_megabytes(total_bytes)} MB)"
            )
            self.status_label.setText(
                "Downloaded the ImageNet starting weights. Preparing the run…"
            )
            return
        size = format_megabytes(done_bytes)
        if is_known:
            size = f"{size} of {format_megabytes(total_bytes)}"
        self.progress_bar.setValue(int(1000 * done_bytes / total_bytes) if is_known else 0)
        self.progress_bar.setFormat(f"Downloading ImageNet weights… {size} MB")
        self.status_label.setText(
            "Downloading the ImageNet starting weights (once: later runs use the saved copy)."
        )

    @Slot(object)
    def add_batch(self, event: BatchFinished) -> None:
        self.last_speed = event.samples_per_second
        self._pending_batch = event  # only the latest matters; painted by the timer

    @Slot(object)
    def add_epoch(self, event: EpochFinished) -> None:
        accuracy = event.val_accuracy if math.isfinite(event.val_accuracy) else event.train_accuracy
        which = "validation" if math.isfinite(event.val_accuracy) else "training"
        self.status_label.setText(
            f"Epoch {event.epoch} done in {format_duration(event.epoch_seconds)}: "
            f"{which} accuracy {100 * accuracy:.1f} %" + (" (best so far)" if event.is_best else "")
        )

    @Slot()
    def refresh(self) -> None:
        event, self._pending_batch = self._pending_batch, None
        if event is None:
            return
        total = max(1, event.total_steps)
        self.progress_bar.setValue(int(1000 * min(1.0, event.global_step / total)))
        self.progress_bar.setFormat(
            f"{100 * event.global_step / total:.0f} %  (step {event.global_step} of {total})"
        )
        self.epoch_label.setText(f"{event.epoch} of {math.ceil(total / max(1, event.num_batches))}")
        self.step_label.setText(f"{event.batch_index + 1} of {event.num_batches} in this epoch")
        self.speed_label.setText(f"{event.samples_per_second:.0f} images/s")
        self.eta_label.setText(format_duration(event.eta_seconds))

    @Slot(object)
    def finish_run(self, event: TrainingFinished) -> None:
        self.refresh()
        where = f" Saved in {event.run_dir}." if event.run_dir else ""
        if event.status == STATUS_COMPLETED:
            self.progress_bar.setValue(1000)
            self.progress_bar.setFormat("Finished")
            best = event.best_val_accuracy
            score = f" Best validation accuracy {100 * best:.1f} %." if math.isfinite(best) else ""
            since = " after resuming" if self._is_resumed else ""
            self.status_label.setText(
                f"Finished in {format_duration(event.elapsed_seconds)}{since}.{score}{where}"
            )
        elif event.status == STATUS_STOPPED:
            self.progress_bar.setFormat("Stopped")
            self.status_label.setText(
                f"Stopped after {event.epochs_completed} epoch(s).{where} Press Resume to continue."
            )
        elif event.status == STATUS_FAILED:
            self.progress_bar.setFormat("Failed")
            self.status_label.setText(f"Training failed: {event.error_message}")
        self.eta_label.setText("–")
        self._is_resumed = False


def _preview() -> None:  # pragma: no cover - manual preview
    from ptm_studio.gui.panels._preview import fake_batch, fake_epoch, fake_started, run_preview

    def build() -> TrainingPanel:
        panel = TrainingPanel()
        panel.set_device("CPU (4 cores)", "No graphics card found: training runs on the processor.")
        panel.set_running(True)
        panel.start_run(fake_started())
        panel.add_batch(fake_batch(321))
        panel.add_epoch(fake_epoch(1))
        return panel

    run_preview(build, size=(520, 320))


if __name__ == "__main__":
    _preview()
