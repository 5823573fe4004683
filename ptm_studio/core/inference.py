"""Predict new images with a trained run: load its checkpoint, preprocess as in training, top-k."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

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
    load_image,
)
from ptm_studio.core.devices import configure_cpu_threads, select_device
from ptm_studio.core.models import ImageClassifier, build_classifier
from ptm_studio.core.models.state_dicts import check_finite
from ptm_studio.core.runs import NoSavedModel, model_checkpoint

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


class Predictor:
    """A trained classifier ready to predict, with the preprocessing it was trained with."""

    def __init__(
        self,
        model: ImageClassifier,
        class_names: Sequence[str],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> None:
        self.model = model.to(device).eval()
        self.class_names = tuple(class_names)
        self.transform = build_transform(image_size, mean=tuple(mean), std=tuple(std), train=False)
        self.decode_side = decode_side_for(image_size)  # as in training: the same pixels
        self.device = device

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
        model = build_classifier(meta["backbone"], int(meta["num_classes"]))
        model.load_state_dict(loaded.model_state)
        target = select_device(device)
        if target.type == "cpu":
            configure_cpu_threads()  # all cores but one, as in training
        return cls(
            model,
            meta["class_names"],
            int(meta["image_size"]),
            meta["mean"],
            meta["std"],
            target,
        )

    def predict_paths(
        self,
        paths: Iterable[Path],
        *,
        top_k: int = 5,
        batch_size: int = 32,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[Prediction]:
        paths = list(paths)
        predictions: list[Prediction] = []
        for start in range(0, len(paths), batch_size):
            predictions += self._predict_batch(paths[start : start + batch_size], top_k)
            if on_progress:
                on_progress(len(predictions), len(paths))
        return predictions

    def _predict_batch(self, paths: list[Path], top_k: int) -> list[Prediction]:
        tensors, readable, failed = [], [], {}
        for path in paths:
            try:
                tensors.append(self.transform(load_image(path, max_side=self.decode_side)))
                readable.append(path)
            except ImageLoadError as error:
                failed[path] = error.reason
        results = {path: Prediction(path, (), (), reason) for path, reason in failed.items()}
        if tensors:
            with torch.inference_mode():
                probabilities = torch.softmax(
                    self.model(torch.stack(tensors).to(self.device)).float(), dim=1
                )
            k = min(top_k, len(self.class_names))
            values, indices = probabilities.topk(k, dim=1)
            for row, path in enumerate(readable):
                classes = tuple(self.class_names[i] for i in indices[row].tolist())
                results[path] = Prediction(path, classes, tuple(values[row].tolist()))
        return [results[path] for path in paths]


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
        return load_checkpoint(path, with_trainer_state=False)
    try:
        folder = model_checkpoint(path)
    except NoSavedModel as error:
        raise CheckpointError(
            f"{path}: no trained model found here (expected a PTM Studio run folder)"
        ) from error
    # model_checkpoint has repaired what may be repaired (not while the run is being trained).
    return load_checkpoint(folder, with_trainer_state=False, repair=False)
