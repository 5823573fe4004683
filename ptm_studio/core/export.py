"""Export a trained model as a self-contained folder, and prove it answers as the app does.

:func:`export_model` writes model.safetensors (the weights), model.torchscript.pt and
model.onnx (whole graphs), model.json (classes, preprocessing, temperature, versions, where it
came from), parity.json and a README.md for a colleague. Each file is then checked against the
app's own predictions (export_parity); the result says in plain words what must not be used.

The folder is written under a hidden name beside the destination and renamed into place at the
end, so a failed or cancelled export leaves nothing under the chosen name.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ptm_studio.core.checkpoints import read_meta
from ptm_studio.core.export_files import (
    DESCRIPTION_FILE,
    FILE_NAMES,
    FORMATS,
    FormatNotWritten,
    describe_export,
    graph_module,
    output_name,
    write_onnx,
    write_safetensors,
    write_torchscript,
)
from ptm_studio.core.export_parity import ParityReport, check_parity
from ptm_studio.core.export_pictures import generated_pictures, validation_pictures
from ptm_studio.core.export_readme import readme_text
from ptm_studio.core.file_reading import read_text
from ptm_studio.core.inference import PredictionCancelled, Predictor

PARITY_FILE = "parity.json"
README_FILE = "README.md"
Progress = Callable[[int, int], None]

__all__ = [
    "FORMATS",
    "ExportCancelled",
    "ExportError",
    "ExportResult",
    "ParityReport",
    "export_model",
    "verify_export",
]


class ExportError(Exception):
    """The export cannot be made (folder not empty, unknown format, disk full); the message
    names the folder and what to do."""


class ExportCancelled(Exception):
    """``should_stop`` returned True; nothing was left under the destination's name."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and how each file compared with the app."""

    folder: Path
    files: dict[str, Path]  # format → the file written
    not_written: dict[str, str] = field(default_factory=dict)  # format → why, in words
    parity: tuple[ParityReport, ...] = ()
    pictures: tuple[str, ...] = ()  # what the parity check ran on
    pictures_note: str = ""  # the same in words: "6 of the run's validation pictures and 3 …"

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything the user must know before using the export; empty when all is well."""
        return (*self.not_written.values(), *(r.problem() for r in self.parity if not r.is_ok))

    @property
    def is_ok(self) -> bool:
        """Every format asked for was written and matches the app."""
        return not self.problems


@dataclass
class _Steps:
    """Progress in whole steps, and the stop check between them."""

    total: int
    on_progress: Progress | None
    should_stop: Callable[[], bool] | None
    done: int = 0

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise ExportCancelled("The export was cancelled; nothing was kept.")

    def advance(self, *, may_stop: bool = True) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(min(self.done, self.total), self.total)
        if may_stop:
            self.check()


def export_model(
    source: str | Path,
    destination: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    bake_preprocessing: bool = False,
    parity_pictures: Iterable[str | Path] | None = None,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ExportResult:
    """Export the model of ``source`` (a run folder, or one of its checkpoint folders) into the
    new or empty folder ``destination``, then check every file against the app.

    Args:
        formats: any of "safetensors", "torchscript", "onnx".
        bake_preprocessing: the TorchScript and ONNX graphs then take uint8 pictures already
            resized and cropped, and give calibrated probabilities.
        parity_pictures: pictures for the parity check (default: up to 8 of the run's
            validation pictures); three made-up pictures of awkward shapes are always added.
        on_progress: ``on_progress(done, total)`` after each step.
        should_stop: polled between steps; True raises ExportCancelled.

    Returns:
        The ExportResult; ``problems`` lists, in plain words, a format that could not be
        written (ONNX without its packages) and every file that disagrees with the app.

    Raises:
        ExportError: the destination is not empty, a format is unknown, the disk is full.
        CheckpointError, ModelError: ``source`` holds no usable classifier.
        ExportCancelled: ``should_stop`` returned True.
    """
    destination = Path(destination).expanduser()
    chosen = _chosen_formats(formats)
    _refuse_used_destination(destination)
    steps = _Steps(2 + 2 * len(chosen), on_progress, should_stop)
    steps.check()
    predictor = Predictor.from_run(source, device="cpu")
    steps.advance()
    staging = _staging_folder(destination)
    try:
        with tempfile.TemporaryDirectory(prefix="ptm-parity-") as scratch:
            pictures = _parity_pictures(Path(source), parity_pictures, predictor, Path(scratch))
            written, not_written, reports = _write_and_check(
                staging, predictor, chosen, bake_preprocessing, pictures, steps
            )
        _move_into_place(staging, destination)
    except PredictionCancelled as cancelled:
        raise ExportCancelled("The export was cancelled; nothing was kept.") from cancelled
    except OSError as error:
        raise ExportError(
            f"Could not write the export in {destination.parent}: {error.strerror or error}. "
            "Nothing was kept; free some space or choose another folder."
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was moved into place
    steps.advance(may_stop=False)  # the export is in place: too late to cancel it
    return ExportResult(
        folder=destination,
        files={name: destination / FILE_NAMES[name] for name in written},
        not_written=not_written,
        parity=reports,
        pictures=pictures.shown,
        pictures_note=pictures.note,
    )


def verify_export(
    folder: str | Path,
    *,
    source: str | Path | None = None,
    pictures: Iterable[str | Path] | None = None,
) -> tuple[ParityReport, ...]:
    """Run the parity check again on an existing export ``folder`` (against ``source``, by
    default the checkpoint model.json names), e.g. after the folder was copied or edited."""
    folder = Path(folder)
    try:
        description = json.loads(read_text(folder / DESCRIPTION_FILE))
        source = Path(source or description["source"]["checkpoint"])
        formats = list(description["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ExportError(
            f"{folder}: not a PTM Studio model export ({DESCRIPTION_FILE} is missing or unreadable)"
        ) from error
    predictor = Predictor.from_run(source, device="cpu")
    meta = read_meta(_checkpoint_of(predictor))
    with tempfile.TemporaryDirectory(prefix="ptm-parity-") as scratch:
        chosen = _parity_pictures(source, pictures, predictor, Path(scratch))
        return check_parity(
            folder, predictor, chosen.paths, formats, app_mean=meta["mean"], app_std=meta["std"]
        )


@dataclass(frozen=True)
class _ParityPictures:
    paths: tuple[Path, ...]
    shown: tuple[str, ...]  # as parity.json names them: made-up ones by name (their folder goes)
    note: str  # as the README names them


def _parity_pictures(
    source: Path,
    given: Iterable[str | Path] | None,
    predictor: Predictor,
    scratch: Path,
) -> _ParityPictures:
    if given is not None:
        chosen, whose = [Path(path) for path in given], "given"
    else:
        chosen, whose = validation_pictures(source), "of the run's validation"
    image_size = int(read_meta(_checkpoint_of(predictor))["image_size"])
    made = generated_pictures(scratch, image_size)
    note = f"{len(chosen)} {whose} pictures and {len(made)} made up for the check"
    if not chosen:
        note = f"{len(made)} pictures made up for the check (the run's own were not found)"
    return _ParityPictures(
        paths=(*chosen, *made),
        shown=(*(str(path) for path in chosen), *(f"made up: {path.name}" for path in made)),
        note=note,
    )


def _write_and_check(
    staging: Path,
    predictor: Predictor,
    formats: Sequence[str],
    baked: bool,
    pictures: _ParityPictures,
    steps: _Steps,
) -> tuple[list[str], dict[str, str], tuple[ParityReport, ...]]:
    checkpoint = _checkpoint_of(predictor)
    meta = read_meta(checkpoint)
    written, not_written = [], {}
    for name in formats:
        try:
            _write_format(name, staging / FILE_NAMES[name], predictor, meta, baked)
            written.append(name)
        except FormatNotWritten as error:
            not_written[name] = str(error)
        steps.advance()
    description = describe_export(
        meta,
        checkpoint=checkpoint,
        feature_dim=predictor.model.feature_dim,
        temperature=predictor.temperature,
        formats=written,
        baked=baked,
    )
    _write_json(staging / DESCRIPTION_FILE, description)
    reports = check_parity(
        staging,
        predictor,
        pictures.paths,
        written,
        app_mean=meta["mean"],
        app_std=meta["std"],
        should_stop=steps.should_stop,
        on_checked=lambda _name: steps.advance(),
    )
    steps.done += len(not_written)  # no parity step for them: keep the count honest
    _write_json(
        staging / PARITY_FILE,
        {
            "pictures": list(pictures.shown),
            "pictures_note": pictures.note,
            "is_ok": all(report.is_ok for report in reports),
            "reports": [report.as_json() for report in reports],
            "not_written": not_written,
        },
    )
    (staging / README_FILE).write_text(
        readme_text(description, reports, pictures.note, not_written), encoding="utf-8"
    )
    return written, not_written, reports


def _write_format(
    name: str, path: Path, predictor: Predictor, meta: dict[str, object], baked: bool
) -> None:
    if name == "safetensors":
        write_safetensors(predictor.model, path)
        return
    module, example = graph_module(predictor.model, meta, predictor.temperature, baked=baked)
    try:
        if name == "torchscript":
            write_torchscript(module, example, path)
        else:
            write_onnx(module, example, path, output_name(baked))
    except (OSError, FormatNotWritten):
        raise
    except Exception as error:  # a layer the tracer or the ONNX exporter cannot translate
        path.unlink(missing_ok=True)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise FormatNotWritten(
            f"{path.name} could not be written: the exporter failed on this network "
            f"({first_line[:200]}). The other formats are not affected."
        ) from error


def _chosen_formats(formats: Sequence[str]) -> list[str]:
    """The formats asked for, in the usual order, each once; ExportError for an unknown one."""
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ExportError(
            f"Unknown export format {unknown[0]!r}; PTM Studio writes {', '.join(FORMATS)}."
        )
    if not formats:
        raise ExportError(f"Choose at least one export format ({', '.join(FORMATS)}).")
    return [name for name in FORMATS if name in formats]


def _refuse_used_destination(destination: Path) -> None:
    if destination.is_file():
        raise ExportError(f"{destination} is a file; choose a folder to export into.")
    if destination.is_dir() and any(destination.iterdir()):
        raise ExportError(
            f"{destination} already exists and is not empty; choose a new or empty folder "
            "(an earlier export is never overwritten)."
        )


def _staging_folder(destination: Path) -> Path:
    """A new hidden folder beside ``destination``: the rename at the end stays on one disk.
    mkdir (not mkdtemp) so the folder gets the user's usual permissions, not 0700."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = destination.parent / f".{destination.name}.exporting-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as error:
        raise ExportError(
            f"Could not create a folder in {destination.parent}: {error.strerror or error}. "
            "Choose a folder you may write to."
        ) from error
    return staging


def _move_into_place(staging: Path, destination: Path) -> None:
    _refuse_used_destination(destination)  # again: something may have appeared meanwhile
    if destination.is_dir():
        destination.rmdir()  # an empty folder the user made for it (e.g. in a file dialog)
    staging.rename(destination)


def _write_json(path: Path, payload: object) -> None:
    """Plain writes: the staging folder is what makes the export atomic, and files written
    like this get the user's usual permissions (an atomic temp file would be private, 0600)."""
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def _checkpoint_of(predictor: Predictor) -> Path:
    if predictor.checkpoint is None:  # from_run always sets it; a Predictor built in memory not
        raise ExportError("This model was not loaded from a checkpoint; export a run instead.")
    return predictor.checkpoint
