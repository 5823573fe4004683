"""Predict new images with a trained run: load its checkpoint, preprocess as in training, top-k."""

from __future__ import annotations

import contextlib
import csv
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ptm_studio.core.atomic_io import atomic_writer
from ptm_studio.core.calibration import NOT_SURE, saved_temperature, softmax
from ptm_studio.core.checkpoints import (
    META_FILE,
    MODEL_FILE,
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
)
from ptm_studio.core.data import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    build_transform,
    decode_side_for,
    load_for_model,
)
from ptm_studio.core.devices import configure_cpu_threads, default_cpu_threads, select_device
from ptm_studio.core.models import ImageClassifier, build_classifier
from ptm_studio.core.models.state_dicts import check_finite
from ptm_studio.core.run_models import NoSavedModel, model_checkpoint
from ptm_studio.core.runs import is_being_trained

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one file; ``error`` is set (and the rest empty) when it could not be read."""

    path: Path
    top_classes: tuple[str, ...]
    top_probabilities: tuple[float, ...]
    error: str = ""

    @property
    def predicted_class(self) -> str:
        return self.top_classes[0] if self.top_classes else ""

    @property
    def confidence(self) -> float:
        return self.top_probabilities[0] if self.top_probabilities else float("nan")

    def answer(self, threshold: float = 0.0) -> str:
        """The predicted class, or NOT_SURE when the confidence is below ``threshold`` (0 to 1);
        empty for a picture that could not be read."""
        if self.error:
            return ""
        return self.predicted_class if self.confidence >= threshold else NOT_SURE


@dataclass(frozen=True)
class Scores:
    """The model's raw outputs (logits) for the pictures that could be read, in order, and why
    the others could not be."""

    paths: tuple[Path, ...]
    logits: np.ndarray  # [len(paths), classes]
    unreadable: dict[Path, str] = field(default_factory=dict)


class PredictionCancelled(Exception):
    """``should_stop`` returned True part of the way through."""


class Predictor:
    """A trained classifier ready to predict, with the preprocessing it was trained with and the
    temperature that makes its confidences honest (1.0 until the run was evaluated)."""

    def __init__(
        self,
        model: ImageClassifier,
        class_names: Sequence[str],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        *,
        temperature: float = 1.0,
        checkpoint: Path | None = None,
        model_digest: str | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        self.class_names = tuple(class_names)
        self.transform = build_transform(image_size, mean=tuple(mean), std=tuple(std), train=False)
        self.decode_side = decode_side_for(image_size)  # as in training: the same pixels
        self.device = device
        self.temperature = temperature
        self.checkpoint = checkpoint
        """The checkpoint folder the weights came from (None when built in memory)."""
        self.model_digest = model_digest
        """The sha256 of those weights as the checkpoint recorded it (calibration is tied to it)."""

    @classmethod
    def from_run(cls, run_or_checkpoint: str | Path, device: str = "auto") -> Predictor:
        """Load the best checkpoint of a run folder (or the last, or a checkpoint folder itself)."""
        loaded = _load_usable_checkpoint(Path(run_or_checkpoint))
        folder, meta = loaded.folder, loaded.meta
        if meta.get("task") == "pretrain":
            raise CheckpointError(
                f"{folder}: this is a pretraining run; it has learnt features but no classes yet. "
                "Finetune it on labelled pictures first (weights: an earlier run)."
            )
        check_finite(loaded.model_state, source=str(folder / MODEL_FILE))
        digest = model_digest(meta)
        model = build_classifier(meta["backbone"], int(meta["num_classes"]))
        model.load_state_dict(loaded.model_state)
        target = select_device(device)
        if target.type == "cpu":
            # All cores but one: predicting is short, and the window stays quick meanwhile.
            configure_cpu_threads(default_cpu_threads())
        return cls(
            model,
            meta["class_names"],
            int(meta["image_size"]),
            meta["mean"],
            meta["std"],
            target,
            temperature=saved_temperature(folder, digest) or 1.0,
            checkpoint=folder,
            model_digest=digest,
        )

    @property
    def is_calibrated(self) -> bool:
        return self.temperature != 1.0

    def score_paths(
        self,
        paths: Iterable[Path],
        *,
        batch_size: int = 32,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Scores:
        """The logits of every readable picture; ``on_progress(done, total)`` after each batch."""
        paths = list(paths)
        readable: list[Path] = []
        chunks: list[np.ndarray] = []
        unreadable: dict[Path, str] = {}
        for start in range(0, len(paths), batch_size):
            if should_stop is not None and should_stop():
                raise PredictionCancelled
            batch_paths, logits, failed = self._score_batch(paths[start : start + batch_size])
            readable += batch_paths
            unreadable.update(failed)
            if logits is not None:
                chunks.append(logits)
            if on_progress:
                on_progress(min(start + batch_size, len(paths)), len(paths))
        classes = len(self.class_names)
        logits = np.concatenate(chunks) if chunks else np.zeros((0, classes), dtype=np.float32)
        return Scores(tuple(readable), logits, unreadable)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities of ``logits``."""
        return softmax(logits, self.temperature)

    def predict_paths(
        self,
        paths: Iterable[Path],
        *,
        top_k: int = 5,
        batch_size: int = 32,
        on_progress: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Prediction]:
        """A Prediction per path, in order; an unreadable picture gets one with ``error`` set."""
        paths = list(paths)
        scores = self.score_paths(
            paths, batch_size=batch_size, on_progress=on_progress, should_stop=should_stop
        )
        probabilities = self.probabilities(scores.logits)
        k = min(top_k, len(self.class_names))
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        answers = {
            path: Prediction(
                path,
                tuple(self.class_names[index] for index in order[row]),
                tuple(float(probabilities[row, index]) for index in order[row]),
            )
            for row, path in enumerate(scores.paths)
        }
        for path, reason in scores.unreadable.items():
            answers[path] = Prediction(path, (), (), reason)
        return [answers[path] for path in paths]

    def _score_batch(
        self, paths: list[Path]
    ) -> tuple[list[Path], np.ndarray | None, dict[Path, str]]:
        tensors, readable, failed = [], [], {}
        for path in paths:
            try:
                tensors.append(self.transform(load_for_model(path, self.decode_side)))
                readable.append(path)
            except ImageLoadError as error:
                failed[path] = error.reason
        if not tensors:
            return readable, None, failed
        with torch.inference_mode():
            logits = self.model(torch.stack(tensors).to(self.device)).float().cpu().numpy()
        return readable, logits, failed


TURN_POLL_SECONDS = 0.1


class ModelSource:
    """A run's (or checkpoint's) model, loaded on first use and kept, for work that asks for it
    again and again (heatmaps picture by picture, the map). Work on several threads takes turns
    through :meth:`use`: Grad-CAM hooks the model while it draws, and another thread's forward
    pass must not run through those hooks."""

    def __init__(self, run_or_checkpoint: str | Path, device: str = "auto") -> None:
        self.path = Path(run_or_checkpoint)
        self.device = device
        self._predictor: Predictor | None = None
        self._turn = threading.RLock()

    @contextlib.contextmanager
    def use(self, should_stop: Callable[[], bool] | None = None) -> Iterator[Predictor]:
        """The predictor (loaded the first time), for this thread alone until the block ends.
        Waiting for another thread's turn ends with PredictionCancelled once ``should_stop``
        says so: a cancelled job never hangs on the wait. Hold a turn briefly (a batch)."""
        while not self._turn.acquire(timeout=TURN_POLL_SECONDS):
            if should_stop is not None and should_stop():
                raise PredictionCancelled
        try:
            if self._predictor is None:
                self._predictor = Predictor.from_run(self.path, device=self.device)
            predictor = self._predictor
            if predictor.checkpoint is not None:  # evaluated since it was loaded: honest now
                fitted = saved_temperature(predictor.checkpoint, predictor.model_digest)
                predictor.temperature = fitted or 1.0
            yield predictor
        finally:
            self._turn.release()


@dataclass(frozen=True)
class PredictedPictures:
    """The answers for pictures a user brought, and which model gave them."""

    predictions: tuple[Prediction, ...]
    class_names: tuple[str, ...]
    checkpoint: Path | None
    is_calibrated: bool


def predict_pictures(
    source: str | Path,
    inputs: Iterable[str | Path],
    *,
    top_k: int = 5,
    device: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PredictedPictures:
    """Predict files and folders (searched for pictures) with a run's model, as the window's
    Predict tab does; every file keeps its answer, an unreadable one with its reason.

    Raises:
        CheckpointError: no usable model in ``source``.
        PredictionCancelled: ``should_stop`` returned True.
    """
    predictor = Predictor.from_run(source, device=device)
    paths = collect_image_paths(inputs)
    predictions = predictor.predict_paths(
        paths, top_k=top_k, on_progress=on_progress, should_stop=should_stop
    )
    return PredictedPictures(
        tuple(predictions), predictor.class_names, predictor.checkpoint, predictor.is_calibrated
    )


def write_predictions_csv(
    path: str | Path, predictions: Sequence[Prediction], threshold: float = 0.0
) -> None:
    """One row per file, in order; a file that could not be read keeps its row, with the reason
    in ``error`` and the answer empty. ``answer`` is the class, or NOT_SURE below ``threshold``;
    then the top classes with their (calibrated) probabilities."""
    top_k = max((len(p.top_classes) for p in predictions), default=0)
    headers = ["path", "answer", "error"] + [
        f"{kind}_{rank}" for rank in range(1, top_k + 1) for kind in ("class", "probability")
    ]
    # Written whole or not at all: a spreadsheet never opens half a file.
    with atomic_writer(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")  # text mode ends lines as the OS does
        writer.writerow(headers)
        for prediction in predictions:
            ranked = [
                value
                for name, probability in zip(
                    prediction.top_classes, prediction.top_probabilities, strict=True
                )
                for value in (name, f"{probability:.6f}")
            ]
            writer.writerow(
                [str(prediction.path), prediction.answer(threshold), prediction.error, *ranked]
            )


def model_digest(meta: dict[str, object]) -> str | None:
    """The sha256 a checkpoint's meta.json records for its weights file."""
    files = meta.get("files")
    digest = files.get(MODEL_FILE) if isinstance(files, dict) else None
    return str(digest) if digest else None


def collect_image_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, and image files found recursively inside folders (sorted, hidden ones skipped)."""
    collected: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            collected += sorted(
                path
                for path in item.rglob("*")
                if path.is_file()
                and path.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in path.relative_to(item).parts)
            )
        else:
            collected.append(item)
    return collected


def _load_usable_checkpoint(path: Path) -> LoadedCheckpoint:
    """A checkpoint folder itself, or the one of a run folder that holds its model."""
    if (path / META_FILE).exists():
        # A checkpoint folder of a run being trained may hold its half-written swap: leave it.
        run_folder = path.parent.parent
        return load_checkpoint(
            path, with_trainer_state=False, repair=not is_being_trained(run_folder)
        )
    try:
        folder = model_checkpoint(path)
    except NoSavedModel as error:
        raise CheckpointError(
            f"{path}: no trained model found here (expected a PTM Studio run folder)"
        ) from error
    # model_checkpoint has repaired what may be repaired (not while the run is being trained).
    return load_checkpoint(folder, with_trainer_state=False, repair=False)
