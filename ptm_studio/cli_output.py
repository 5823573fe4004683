"""What the headless commands print: a progress bar with ETA, tables and summaries."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import (
    STATUS_COMPLETED,
    STATUS_STOPPED,
    BatchFinished,
    DownloadProgressed,
    EarlyStopRequested,
    EpochFinished,
    FrozenFeaturesMeasured,
    LearningAdvice,
    TrainingAdjusted,
    TrainingFinished,
    TrainingStarted,
)

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def format_percent(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}%"


def format_number(value: float, digits: int = 4) -> str:
    return "—" if not math.isfinite(value) else f"{value:.{digits}f}"


class ProgressPrinter(Callback):
    """Draws a one-line progress bar on a terminal; prints one line per epoch otherwise."""

    def __init__(self, quiet: bool = False, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.is_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.epochs: list[EpochFinished] = []
        self.frozen: FrozenFeaturesMeasured | None = None
        self._last_draw = 0.0

    def on_training_started(self, event: TrainingStarted, control: TrainingControl) -> None:
        for change in event.resume_changes:  # shown even with --quiet: the user asked for it
            print(f"Resumed with {change}", file=self.stream)
        if event.time_plan:  # how the epochs were planned: shown even with --quiet
            print(event.time_plan, file=self.stream)
        if self.quiet:
            return
        print(
            f"Training on {event.num_train_images} images ({len(event.class_names)} classes), "
            f"validating on {event.num_val_images} — {event.device_name}. {event.device_note}\n"
            f"Starting from: {event.weights_note}\n"
            f"Run folder: {event.run_dir}",
            file=self.stream,
        )

    def on_batch_finished(self, event: BatchFinished, control: TrainingControl) -> None:
        now = time.monotonic()
        if self.quiet or not self.is_terminal or now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        done = event.global_step / max(event.total_steps, 1)
        filled = int(BAR_WIDTH * done)
        bar = "█" * filled + "·" * (BAR_WIDTH - filled)
        line = (
            f"\repoch {event.epoch} {bar} {event.batch_index + 1}/{event.num_batches} "
            f"loss {format_number(event.loss)} | {event.samples_per_second:.0f} img/s | "
            f"ETA {format_duration(event.eta_seconds)} "
        )
        self.stream.write(line)
        self.stream.flush()

    def on_epoch_finished(self, event: EpochFinished, control: TrainingControl) -> None:
        self.epochs.append(event)
        if self.quiet:
            return
        prefix = "\r" + " " * 100 + "\r" if self.is_terminal else ""
        best = " ★ best" if event.is_best else ""
        if is_pretraining(event):
            measured = (
                f"k-NN accuracy {format_percent(event.val_accuracy)}, "
                f"linear probe {format_percent(event.probe_accuracy)}, "
                f"embedding spread {format_number(event.embedding_spread, 2)}"
            )
        else:
            measured = (
                f"val loss {format_number(event.val_loss)}, "
                f"val accuracy {format_percent(event.val_accuracy)}"
            )
        print(
            f"{prefix}epoch {event.epoch}/{event.num_epochs}: train loss "
            f"{format_number(event.train_loss)}, {measured} "
            f"({format_duration(event.epoch_seconds)}){best}",
            file=self.stream,
        )

    def on_early_stop_requested(self, event: EarlyStopRequested, control: TrainingControl) -> None:
        prefix = "\r" + " " * 100 + "\r" if self.is_terminal else ""
        print(
            f"{prefix}Ending early after epoch {event.epochs_completed}: {event.reason}.",
            file=self.stream,
        )

    def on_learning_advice(self, event: LearningAdvice, control: TrainingControl) -> None:
        # Shown even with --quiet: the user should change something.
        prefix = "\r" + " " * 100 + "\r" if self.is_terminal else ""
        print(
            f"{prefix}warning (epoch {event.epochs_completed}): {event.message}", file=self.stream
        )

    def on_frozen_features_measured(
        self, event: FrozenFeaturesMeasured, control: TrainingControl
    ) -> None:
        self.frozen = event
        if not self.quiet:
            print(event.message, file=self.stream)

    def on_training_adjusted(self, event: TrainingAdjusted, control: TrainingControl) -> None:
        # Shown even with --quiet: the run works differently from what the user asked for.
        prefix = "\r" + " " * 100 + "\r" if self.is_terminal else ""
        print(f"{prefix}note (step {event.global_step}): {event.message}", file=self.stream)

    def on_download_progressed(self, event: DownloadProgressed, control: TrainingControl) -> None:
        done, total = event.done_bytes, event.total_bytes
        if self.quiet:
            return
        size = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB" if total > 0 else f"{done / 1e6:.0f} MB"
        end = "\n" if total > 0 and done >= total else ""
        prefix = "\r" if self.is_terminal else ""
        if self.is_terminal or end:
            self.stream.write(f"{prefix}Downloading ImageNet weights… {size}{end}")
            self.stream.flush()

    @staticmethod
    def scan_progress(done: int, total: int | None) -> None:
        ProgressPrinter.picture_progress("Checking images")(done, total)

    @staticmethod
    def picture_progress(doing: str) -> Callable[[int, int | None], None]:
        """``on_progress(done, total)`` that redraws "Doing… 12/40" on a terminal."""

        def show(done: int, total: int | None) -> None:
            if sys.stderr.isatty():
                sys.stderr.write(f"\r{doing}… {done}/{total or '?'} ")
                sys.stderr.flush()

        return show


def is_pretraining(event: EpochFinished) -> bool:
    return math.isfinite(event.embedding_spread)


def pretraining_measure(epochs: Sequence[EpochFinished]) -> str:
    """What ranked a pretraining run's epochs (PretrainTask.ranking_accuracy): the linear probe
    where one was fitted, else the k-NN accuracy."""
    if any(math.isfinite(epoch.probe_accuracy) for epoch in epochs):
        return "linear-probe accuracy"
    return "k-NN accuracy"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[plain(cell) for cell in row] for row in rows]
    widths = [max([len(headers[i]), *(len(row[i]) for row in cells)]) for i in range(len(headers))]
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def print_summary(
    finished: TrainingFinished,
    epochs: Sequence[EpochFinished],
    frozen: FrozenFeaturesMeasured | None = None,
) -> None:
    print()
    pretraining = bool(epochs) and is_pretraining(epochs[0])
    if pretraining:
        print_table(
            ["epoch", "train loss", "k-NN acc", "probe acc", "spread", "time"],
            [
                [
                    f"{e.epoch}{' *' if e.is_best else ''}",
                    format_number(e.train_loss),
                    format_percent(e.val_accuracy),
                    format_percent(e.probe_accuracy),
                    format_number(e.embedding_spread, 2),
                    format_duration(e.epoch_seconds),
                ]
                for e in epochs
            ],
        )
    elif epochs:
        print_table(
            ["epoch", "train loss", "train acc", "val loss", "val acc", "top-5", "time"],
            [
                [
                    f"{e.epoch}{' *' if e.is_best else ''}",
                    format_number(e.train_loss),
                    format_percent(e.train_accuracy),
                    format_number(e.val_loss),
                    format_percent(e.val_accuracy),
                    format_percent(e.val_top5_accuracy),
                    format_duration(e.epoch_seconds),
                ]
                for e in epochs
            ],
        )
    measure = (
        pretraining_measure(epochs) + " (frozen features)" if pretraining else "validation accuracy"
    )
    rows = [
        ("Status", finished.status),
        ("Epochs completed", str(finished.epochs_completed)),
        (f"Final {measure}", format_percent(finished.final_val_accuracy)),
        (f"Best {measure}", format_percent(finished.best_val_accuracy)),
        ("Time", format_duration(finished.elapsed_seconds)),
    ]
    best = next((epoch for epoch in reversed(epochs) if epoch.is_best), None)
    if not pretraining and best is not None and math.isfinite(best.val_balanced_accuracy):
        # Beside accuracy: with uneven classes, accuracy alone flatters a model that
        # favours the largest class.
        rows.insert(
            4,
            (
                "Best epoch, balanced",
                f"accuracy {format_percent(best.val_balanced_accuracy)}, "
                f"macro-F1 {format_number(best.val_macro_f1, 2)} (epoch {best.epoch})",
            ),
        )
    if pretraining and best is not None and math.isfinite(best.probe_accuracy):
        # The epochs were ranked by the probe: the best one's backbone is the one kept.
        rows.insert(
            4,
            (
                "Later runs start from",
                f"epoch {best.epoch}'s backbone: its features did best in the linear probe "
                f"({format_percent(best.probe_accuracy)})",
            ),
        )
    if frozen is not None:  # the baselines beside the finetuned result
        rows.insert(
            4,
            (
                "Frozen features alone",
                f"linear probe {format_percent(frozen.probe_accuracy)}, "
                f"k-NN {format_percent(frozen.knn_accuracy)} (before finetuning)",
            ),
        )
    if finished.run_dir:
        rows.append(("Run folder", str(finished.run_dir)))
        if finished.status == STATUS_STOPPED:
            rows.append(("Continue it with", f"ptm-studio train --resume '{finished.run_dir}'"))
        if pretraining and finished.status == STATUS_COMPLETED:
            rows.append(
                ("Finetune from it", f"ptm-studio finetune --init-from '{finished.run_dir}'")
            )
    if finished.status == STATUS_STOPPED and finished.error_message:
        rows.append(("Why it stopped", finished.error_message))
    if finished.skipped_files:
        shown = ", ".join(finished.skipped_files[:3])
        more = (
            f" and {len(finished.skipped_files) - 3} more"
            if len(finished.skipped_files) > 3
            else ""
        )
        rows.append(("Skipped (unreadable)", f"{len(finished.skipped_files)}: {shown}{more}"))
    width = max(len(label) for label, _ in rows) + 2
    if epochs:
        print()
    for label, value in rows:
        print(f"{label + ':':<{width}}{plain(value)}")


def print_scan(scan: Any) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 60 + "\r")
    print(f"Folder: {plain(scan.root)}  (layout: {scan.layout.replace('_', ' ')})")
    splits = [split for split in ("train", "val", "test", "unassigned") if scan.records_in(split)]
    if scan.class_names:
        rows = [
            [name, *(scan.count_by_class(split).get(name, 0) for split in splits)]
            for name in scan.class_names
        ]
        print_table(["class", *splits], rows)
    print(
        f"{len(scan.records)} readable images, {len(scan.unreadable)} unreadable, {len(scan.ignored)} ignored."
    )
    for problem in scan.problems:
        print(f"\n[{problem.severity}] {plain(problem.message)}\n  → {plain(problem.advice)}")
        for path in problem.paths[:5]:
            print(f"    {plain(path)}")
        if len(problem.paths) > 5:
            print(f"    … and {len(problem.paths) - 5} more")


def print_models() -> None:
    from ptm_studio.core.models import imagenet_status, list_backbones

    status_words = {
        "available_offline": "on this computer",
        "needs_download": "needs download",
        "not_available": "—",
    }
    rows = [
        [
            spec.name,
            f"{spec.parameter_count / 1e6:.1f} M",
            spec.default_image_size,
            spec.speed_hint,
            status_words.get(imagenet_status(spec.name), "?"),
            spec.description,
        ]
        for spec in list_backbones()
    ]
    print_table(["name", "size", "image size", "speed", "ImageNet weights", "description"], rows)


def print_runs(runs: Sequence[Any]) -> None:
    if not runs:
        print("No runs yet.")
        return
    rows = [
        [
            run.name,
            _shown_status(run),
            run.task,
            run.backbone,
            run.epochs_completed,
            format_percent(
                run.best_val_accuracy if run.best_val_accuracy is not None else float("nan")
            ),
            run.path,
        ]
        for run in runs
    ]
    print_table(["run", "status", "task", "backbone", "epochs", "best val acc", "folder"], rows)


def _shown_status(run: Any) -> str:
    """run.json says "running" also for a run whose process died (a crash, a kill): only a
    live one is shown as running; the other can be resumed."""
    from ptm_studio.core.runs import RunDirectory, is_being_trained

    if run.status == "running" and not is_being_trained(run.path):
        saved = RunDirectory(run.path).has_saved_anything()
        return "interrupted (resume it)" if saved else "interrupted (nothing saved)"
    return str(run.status)


def print_comparison(result: Any, alternative: str) -> None:
    """Seed by seed: best validation accuracy from the pretrained backbone and from the alternative."""
    seeds = sorted({arm.seed for arm in result.arms})
    rows = []
    for seed in seeds:
        by_label = {arm.label: arm.compared_accuracy for arm in result.arms if arm.seed == seed}
        pretrained = by_label.get("pretrained", float("nan"))
        other = by_label.get(alternative, float("nan"))
        rows.append(
            [
                seed,
                format_percent(pretrained),
                format_percent(other),
                f"{100 * (pretrained - other):+.1f}" if math.isfinite(pretrained - other) else "—",
            ]
        )
    mean_pretrained, mean_other = (
        result.mean_accuracy("pretrained"),
        result.mean_accuracy(alternative),
    )
    difference = mean_pretrained - mean_other
    rows.append(
        [
            "mean",
            format_percent(mean_pretrained),
            format_percent(mean_other),
            f"{100 * difference:+.1f}" if math.isfinite(difference) else "—",
        ]
    )
    print()
    print_table(["seed", "from pretrained", f"from {alternative}", "difference (points)"], rows)
    print()
    print(result.verdict(alternative))
    for arm in result.arms:
        if arm.finished.run_dir:
            print(f"  {arm.label:<11} seed {arm.seed}: {arm.finished.run_dir}")


def print_label_fraction_curve(curve: Any) -> None:
    """Per share of the labels: the accuracy from each start (mean and the seeds' range)."""
    alternative = curve.alternative

    def spread(point: Any, label: str) -> str:
        low, mean, high = point.spread(label)
        if not math.isfinite(mean):
            return "—"
        return f"{format_percent(mean)} ({100 * low:.1f}–{100 * high:.1f})"

    rows = []
    for point in curve.points:
        differences = point.result.differences(alternative)
        rows.append(
            [
                f"{100 * point.fraction:g} %",
                f"{point.labelled_pictures} ({point.per_class} per class)",
                spread(point, "pretrained"),
                spread(point, alternative),
                ", ".join(f"{d:+.1f}" for d in differences) or "—",
            ]
        )
    print()
    print_table(
        [
            "labels",
            "labelled pictures",
            "from pretrained",
            f"from {alternative}",
            "difference per seed (points)",
        ],
        rows,
    )
    print()
    print(curve.verdict())
    for point in curve.points:
        for arm in point.result.arms:
            if arm.finished.run_dir:
                print(
                    f"  {100 * point.fraction:g} % {arm.label:<11} seed {arm.seed}: "
                    f"{arm.finished.run_dir}"
                )


def clear_progress_line() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 60 + "\r")


_CONTROL_CHARACTERS = {
    code: f"\\x{code:02x}" for code in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
}
_CONTROL_CHARACTERS.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
# Characters that reorder or break what follows them (a right-to-left override makes
# "photo\u202egnp.exe" read as "photoexe.png"; a line separator starts a new line).
_CONTROL_CHARACTERS.update(
    {
        code: f"\\u{code:04x}"
        for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
    }
)
_CONTROL_CHARACTERS.update({0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\x85"})


def plain(text: object) -> str:
    """``text`` safe to print on a terminal: control characters (a newline or an escape
    sequence inside a folder name) shown as ``\\n``, ``\\x1b``…, and the bytes of a name that
    is not valid text (kept by Python as lone surrogates) shown as ``\\xe9``."""
    return _show_undecodable(str(text).translate(_CONTROL_CHARACTERS))


def _show_undecodable(text: str) -> str:
    if not any("\udc80" <= character <= "\udcff" for character in text):
        return text
    return "".join(
        f"\\x{ord(character) - 0xDC00:02x}" if "\udc80" <= character <= "\udcff" else character
        for character in text
    )


# What the terminal must never receive raw, whatever prints it: every control character but the
# line breaks, tabs and carriage returns the output itself is made of.
_UNSAFE_FOR_TERMINAL = {
    code: escaped
    for code, escaped in _CONTROL_CHARACTERS.items()
    if code not in (ord("\n"), ord("\r"), ord("\t"))
}


class TerminalSafeStream:
    """A text stream that writes through to ``stream`` with escape sequences and other control
    characters shown as ``\\x1b``…, and bytes that are not text as ``\\xe9``: a folder named
    with an escape code cannot recolour, clear or retitle the user's terminal, and a name
    that is not UTF-8 cannot make printing fail."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_show_undecodable(text.translate(_UNSAFE_FOR_TERMINAL)))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding…
        return getattr(self._stream, name)
