"""A one-file HTML report of a run, to hand to a colleague: what data, which settings, how it
learned, how good it is and where it goes wrong, and how far its confidence can be trusted.

Everything is inside the file (figures as SVG, thumbnails as data URLs, no scripts, no web
fonts), so it opens offline in any browser; every name from the user's folders is escaped.
"""

from __future__ import annotations

import base64
import io
import math
import platform
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from ptm_studio import __version__
from ptm_studio.core.atomic_io import write_text_atomic
from ptm_studio.core.checkpoints import CheckpointError
from ptm_studio.core.config import RunConfig, config_fields
from ptm_studio.core.data import DatasetError, DataSplit, ImageLoadError, load_image
from ptm_studio.core.engine.events import PredictionRecord
from ptm_studio.core.engine.setup import prepare_split
from ptm_studio.core.evaluation import Evaluation, evaluate_run
from ptm_studio.core.report_figures import Series, confusion_table, line_chart, reliability_chart
from ptm_studio.core.run_models import saved_models
from ptm_studio.core.runs import RunDirectory, load_run

REPORT_FILE = "report.html"
WORST_MISTAKES = 12
THUMBNAIL_SIDE = 160
Progress = Callable[[int, int], None]

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
.meta { color: #666; } .warning { background: #fff3e0; border-left: 4px solid #e69f00;
        padding: .5em 1em; margin: .5em 0; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .25em .6em;
        border: 1px solid #ddd; text-align: right; } td:only-of-type { text-align: left; } th { background: #f6f6f6; text-align: left; }
table.settings td { text-align: left; font-family: ui-monospace, monospace; font-size: .9em; }
table.confusion td { text-align: center; min-width: 3em; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
svg { font: 11px system-ui, sans-serif; background: #fff; }
svg .frame { fill: none; stroke: #999; } svg .grid { stroke: #eee; }
.mistakes { display: flex; flex-wrap: wrap; gap: .8em; }
.mistakes figure { margin: 0; width: 170px; font-size: .85em; overflow-wrap: anywhere; }
.mistakes img { width: 160px; height: 160px; object-fit: contain; background: #eee;
                border: 3px solid #d9443a; }
.big { font-size: 1.25em; }
"""


def write_report(
    run_dir: str | Path,
    destination: str | Path | None = None,
    *,
    device: str = "auto",
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Write the report of ``run_dir`` (to ``run_dir/report.html`` unless told otherwise) and
    return its path. A finetuning run with a saved model is evaluated on its validation
    pictures for it (nothing is saved in the run); a pretraining run shows its curves. When the
    pictures are gone the report still holds the curves and settings, and says why.

    Raises:
        FileNotFoundError: not a run folder.
        PredictionCancelled: ``should_stop`` returned True.
    """
    run = load_run(run_dir)
    config = run.read_config()
    split, data_note = None, ""
    try:
        split = prepare_split(config)
    except DatasetError as error:  # the pictures moved: the curves and settings still tell
        data_note = str(error)
    evaluation, results_note = None, ""
    if config.objective.task == "finetune" and saved_models(run.path):
        try:
            evaluation = evaluate_run(
                run.path,
                device=device,
                on_progress=on_progress,
                should_stop=should_stop,
                save=False,
            )
        except (DatasetError, CheckpointError) as error:
            results_note = f"Nothing could be measured: {error}"
    html = render_report(
        run, config, split, evaluation, data_note=data_note, results_note=results_note
    )
    target = Path(destination) if destination is not None else run.path / REPORT_FILE
    write_text_atomic(target, html)
    return target


def render_report(
    run: RunDirectory,
    config: RunConfig,
    split: DataSplit | None,
    evaluation: Evaluation | None,
    *,
    data_note: str = "",
    results_note: str = "",
) -> str:
    status = run.read_status()
    sections = [
        _header(run, config, status),
        _data_section(config, split, data_note),
        _curves_section(run),
    ]
    if evaluation is not None:
        sections += [_evaluation_section(evaluation), _mistakes_section(evaluation)]
        sections.append(_calibration_section(evaluation))
    elif results_note:
        sections.append(f"<h2>Results</h2><p>{escape(results_note)}</p>")
    elif config.objective.task == "pretrain":
        sections.append(
            "<h2>Results</h2><p>This is a pretraining run: it learned features from unlabelled "
            "pictures, not classes. Finetune a run from it to see scores per class.</p>"
        )
    else:
        sections.append("<h2>Results</h2><p>This run has no saved model to measure yet.</p>")
    sections.append(_settings_section(config))
    sections.append(_footer())
    title = f"PTM Studio report: {run.path.name}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def _header(run: RunDirectory, config: RunConfig, status: dict[str, Any]) -> str:
    best = status.get("best_val_accuracy")
    best_text = f"{100 * best:.1f} %" if isinstance(best, int | float) else "—"
    task = (
        "Finetuning (learning classes)"
        if config.objective.task == "finetune"
        else ("Pretraining (learning from unlabelled pictures)")
    )
    rows = [
        ("What", task),
        ("Network", config.model.backbone),
        ("Started from", str(status.get("weights", config.model.weights))),
        (
            "Status",
            f"{status.get('status', 'unknown')} after {status.get('epochs_completed', 0)} epochs",
        ),
        ("Best validation accuracy", best_text),
        ("Created", str(status.get("created", ""))),
    ]
    return (
        f"<h1>{escape(run.path.name)}</h1>"
        f'<p class="meta">Report written {datetime.now():%Y-%m-%d %H:%M} by PTM Studio '
        f"{escape(__version__)} from {escape(str(run.path))}</p>" + _table(rows)
    )


def _data_section(config: RunConfig, split: DataSplit | None, note: str = "") -> str:
    folder = config.data.data_dir or "the demo pictures"
    parts = [f"<h2>Data</h2><p>Folder: {escape(str(folder))}</p>"]
    if split is None:
        return parts[0] + (f'<p class="warning">{escape(note)}</p>' if note else "")
    train = _count_by_class(split.train)
    val = _count_by_class(split.val)
    rows = [(name, str(train.get(name, 0)), str(val.get(name, 0))) for name in split.class_names]
    parts.append(
        "<table><tr><th>class</th><th>training pictures</th><th>validation pictures</th></tr>"
        + "".join(f"<tr><th>{escape(a)}</th><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
        + "</table>"
    )
    if split.left_out:
        parts.append(f"<p>{len(split.left_out)} files were left out (unreadable or unusable).</p>")
    return "".join(parts)


def _count_by_class(records: Sequence[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.class_name or ""] = counts.get(record.class_name or "", 0) + 1
    return counts


def _curves_section(run: RunDirectory) -> str:
    epochs = run.read_metrics("epoch")
    batches = run.read_metrics("batch")
    numbers = [record.get("epoch", 0) for record in epochs]

    def column(records: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> list[float]:
        values = [record.get(key) for record in records]
        return [scale * v if isinstance(v, int | float) else math.nan for v in values]

    loss = line_chart(
        "Loss per epoch",
        [
            Series("training", numbers, column(epochs, "train_loss")),
            Series("validation", numbers, column(epochs, "val_loss")),
        ],
        x_label="epoch",
        y_label="loss (lower is better)",
        whole_x=True,
    )
    accuracy = line_chart(
        "Accuracy per epoch",
        [
            Series("training", numbers, column(epochs, "train_accuracy", 100)),
            Series("validation", numbers, column(epochs, "val_accuracy", 100)),
        ],
        x_label="epoch",
        y_label="accuracy (%)",
        y_range=(0, 100),
        whole_x=True,
    )
    steps = line_chart(
        "Loss per step",
        [Series("each batch", column(batches, "global_step"), column(batches, "loss"))],
        x_label="step",
        y_label="loss",
    )
    return f'<h2>How it learned</h2><div class="figures">{loss}{accuracy}{steps}</div>'


def _evaluation_section(evaluation: Evaluation) -> str:
    where = f" ({evaluation.checkpoint.name} model)" if evaluation.checkpoint else ""
    warnings = "".join(f'<p class="warning">{escape(text)}</p>' for text in evaluation.warnings)
    rows = "".join(
        f"<tr><th>{escape(s.name)}</th><td>{s.precision:.2f}</td><td>{s.recall:.2f}</td>"
        f"<td>{s.f1:.2f}</td><td>{s.support}</td></tr>"
        for s in evaluation.per_class
    )
    confusions = "".join(f"<li>{escape(line)}</li>" for line in evaluation.describe_confusions())
    return (
        f"<h2>How good it is{escape(where)}</h2>"
        f'<p class="big">{escape(evaluation.summary())}</p>{warnings}'
        "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th>"
        f"<th>pictures</th></tr>{rows}</table>"
        "<p>Precision: of the pictures called this class, the share that are. Recall: of the "
        "pictures of this class, the share found.</p>"
        f"<h3>Confusion matrix</h3>{confusion_table(evaluation.class_names, evaluation.confusion)}"
        + (f"<h3>Most often confused</h3><ul>{confusions}</ul>" if confusions else "")
    )


def _mistakes_section(evaluation: Evaluation) -> str:
    wrong = sorted(
        (record for record in evaluation.records if not record.is_correct),
        key=lambda record: -record.loss if math.isfinite(record.loss) else -math.inf,
    )[:WORST_MISTAKES]
    if not wrong:
        return "<h2>Worst mistakes</h2><p>None: every validation picture got its class.</p>"
    figures = "".join(_mistake_figure(record, evaluation.class_names) for record in wrong)
    return (
        "<h2>Worst mistakes</h2><p>The pictures the model was most sure about and got wrong: "
        f'check their labels first.</p><div class="mistakes">{figures}</div>'
    )


def _mistake_figure(record: PredictionRecord, class_names: Sequence[str]) -> str:
    source = _thumbnail_data_url(record.path)
    image = f'<img src="{source}" alt="">' if source else "<p>(cannot be shown)</p>"
    truth, answer = class_names[record.true_index], class_names[record.predicted_index]
    return (
        f"<figure>{image}<figcaption><b>{escape(answer)}</b> {100 * record.confidence:.0f} % "
        f"<br>true: {escape(truth)}<br><small>{escape(Path(record.path).name)}</small>"
        "</figcaption></figure>"
    )


def _thumbnail_data_url(path: str) -> str:
    try:
        picture = load_image(path, max_side=THUMBNAIL_SIDE)
    except ImageLoadError:
        return ""
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _calibration_section(evaluation: Evaluation) -> str:
    calibration = evaluation.calibration
    return (
        "<h2>Can its confidence be trusted?</h2>"
        f"<p>{escape(calibration.describe())}</p>"
        + reliability_chart(
            calibration.bins_before, calibration.bins_after if calibration.is_fitted else None
        )
    )


def _settings_section(config: RunConfig) -> str:
    rows = [(name, _show(value)) for name, value in config_fields(config).items()]
    body = "".join(f"<tr><th>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in rows)
    return f'<h2>Settings</h2><table class="settings">{body}</table>'


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    return "—" if value is None else str(value)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in rows)
    return f"<table>{body}</table>"


def _footer() -> str:
    import torch
    import torchvision

    return (
        f'<p class="meta">PTM Studio {escape(__version__)}, Python {platform.python_version()}, '
        f"PyTorch {escape(torch.__version__)}, torchvision {escape(torchvision.__version__)}. "
        "This file holds everything it shows and needs no internet.</p>"
    )
