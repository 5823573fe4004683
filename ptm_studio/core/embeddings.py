"""The embedding map: what the trained backbone makes of each picture, flattened to 2-D.

:func:`embed_paths` (any pictures) and :func:`embed_validation_pictures` (a run's own validation
part, with the true classes) return :class:`Embeddings`: one feature vector per readable picture
(the backbone's output, before the classifier), the model's answer for it, and why the other
files could not be read. :func:`project_2d` draws the map by PCA, :func:`nearest_neighbours`
finds the pictures the model finds most alike (cosine similarity), and :func:`save_embeddings`
writes them for a spreadsheet (CSV) and for Python (``.npy`` + ``files.txt``).

PCA, not UMAP: a few lines of numpy, deterministic, instant on thousands of pictures, and its
axes mean something (the directions the pictures differ most); UMAP would add numba and
pynndescent to the app for a prettier but seed-dependent picture.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ptm_studio.core.atomic_io import atomic_writer, write_text_atomic
from ptm_studio.core.data import ImageLoadError, load_for_model
from ptm_studio.core.engine.setup import validation_records
from ptm_studio.core.inference import PredictionCancelled, Predictor
from ptm_studio.core.objectives.pretrain_health import extract_features
from ptm_studio.core.runs import load_run

FEATURES_FILE = "embeddings.npy"
FEATURES_CSV = "embeddings.csv"
MAP_CSV = "embedding_map.csv"
FILE_LIST = "files.txt"
UNREADABLE_CSV = "unreadable.csv"


@dataclass(frozen=True)
class Embeddings:
    """Row ``i`` of ``features`` (``[pictures, feature_dim]`` float32) belongs to ``paths[i]``;
    ``true_classes[i]`` is its folder's class ("" when not known), ``predicted[i]`` the model's
    answer and ``confidence[i]`` its calibrated probability."""

    paths: tuple[Path, ...]
    features: np.ndarray
    predicted: tuple[str, ...]
    confidence: np.ndarray
    true_classes: tuple[str, ...]
    unreadable: dict[Path, str] = field(default_factory=dict)
    checkpoint: Path | None = None

    @classmethod
    def joined(cls, parts: Sequence[Embeddings], feature_dim: int) -> Embeddings:
        """Embeddings made a batch at a time, as one (in order)."""
        unreadable: dict[Path, str] = {}
        for part in parts:
            unreadable.update(part.unreadable)
        return cls(
            paths=tuple(path for part in parts for path in part.paths),
            features=np.concatenate([part.features for part in parts])
            if parts
            else np.zeros((0, feature_dim), dtype=np.float32),
            predicted=tuple(name for part in parts for name in part.predicted),
            confidence=np.concatenate([part.confidence for part in parts])
            if parts
            else np.zeros(0, dtype=np.float32),
            true_classes=tuple(name for part in parts for name in part.true_classes),
            unreadable=unreadable,
            checkpoint=parts[0].checkpoint if parts else None,
        )

    def neighbours_of(self, path: Path, k: int = 5) -> list[tuple[Path, float]]:
        """The ``k`` pictures most like ``path`` (itself left out), most alike first."""
        try:
            row = self.paths.index(Path(path))
        except ValueError:
            raise ValueError(f"{path} is not one of the embedded pictures") from None
        return [
            (self.paths[index], similarity)
            for index, similarity in nearest_neighbours(self.features, row, k)
        ]


@dataclass(frozen=True)
class Projection:
    """2-D coordinates ``[pictures, 2]`` and the share of the spread each axis shows."""

    coordinates: np.ndarray
    explained_variance: tuple[float, float]

    def describe(self) -> str:
        first, second = self.explained_variance
        return (
            f"The map's two axes show {100 * (first + second):.0f} % of how the pictures differ "
            f"({100 * first:.0f} % across, {100 * second:.0f} % up)."
        )


@dataclass(frozen=True)
class SavedEmbeddings:
    features: Path
    features_csv: Path
    map_csv: Path
    file_list: Path
    unreadable: Path


def embed_paths(
    predictor: Predictor,
    paths: Iterable[Path],
    *,
    true_classes: dict[Path, str] | None = None,
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Embeddings:
    """The backbone's features of every readable picture, in order; ``on_progress(done, total)``
    after each batch. Raises PredictionCancelled when ``should_stop`` returns True."""
    model = predictor.model
    batches = _PictureBatches(predictor, list(paths), batch_size, on_progress, should_stop)
    try:
        features, _ = extract_features(model.backbone, batches, predictor.device)
        vectors = features.numpy().astype(np.float32, copy=False)
    except ValueError:
        if batches.readable:  # not the "no pictures" refusal: a real problem
            raise
        vectors = np.zeros((0, model.feature_dim), dtype=np.float32)
    with torch.inference_mode():
        logits = model.head(torch.from_numpy(vectors).to(predictor.device)).float().cpu().numpy()
    probabilities = predictor.probabilities(logits)
    answers = probabilities.argmax(axis=1)
    known = true_classes or {}
    return Embeddings(
        paths=tuple(batches.readable),
        features=vectors,
        predicted=tuple(predictor.class_names[index] for index in answers),
        confidence=probabilities[np.arange(len(answers)), answers].astype(np.float32),
        true_classes=tuple(known.get(path, "") for path in batches.readable),
        unreadable=batches.unreadable,
        checkpoint=predictor.checkpoint,
    )


def embed_validation_pictures(
    run_dir: str | Path,
    *,
    predictor: Predictor | None = None,
    device: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Embeddings:
    """Embed a finetuning run's validation pictures (those it was given when it started),
    with their true classes, using ``predictor`` or the run's model checkpoint.

    Raises:
        FileNotFoundError: not a run folder. CheckpointError: no usable model.
        DatasetError: the run's pictures are gone, or it has no validation part.
    """
    run = load_run(run_dir)
    validation = validation_records(run)
    predictor = predictor or Predictor.from_run(run.path, device=device)
    classes = {record.path: record.class_name or "" for record in validation}
    return embed_paths(
        predictor,
        [record.path for record in validation],
        true_classes=classes,
        on_progress=on_progress,
        should_stop=should_stop,
    )


def project_2d(features: np.ndarray) -> Projection:
    """PCA to two dimensions (numpy SVD of the centred features). Each axis's sign is fixed so
    its largest loading is positive: the same features always give the same map."""
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"Features must be [pictures, features], got shape {data.shape}.")
    coordinates = np.zeros((len(data), 2))
    if len(data) < 2:
        return Projection(coordinates.astype(np.float32), (0.0, 0.0))
    centred = data - data.mean(axis=0)
    axes, variances = _principal_axes(centred)
    count = axes.shape[1]
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(count)])
    signs[signs == 0] = 1.0
    coordinates[:, :count] = centred @ (axes * signs)
    total = float(variances.sum())
    shares = [float(variances[i] / total) if total > 0 and i < count else 0.0 for i in range(2)]
    return Projection(coordinates.astype(np.float32), (shares[0], shares[1]))


def _principal_axes(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top two principal axes (features × 2) and every component's variance, largest
    first. With more pictures than features the features' scatter matrix is the smaller
    problem (20 000 pictures × 2048 features: seconds, not a minute and gigabytes); else the
    SVD of the pictures themselves."""
    pictures, features = centred.shape
    if pictures >= features:
        values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    else:
        _, singular, right = np.linalg.svd(centred, full_matrices=False)
        values, vectors = singular**2, right.T
    count = min(2, vectors.shape[1], pictures - 1)
    return vectors[:, :count], values


def nearest_neighbours(
    features: np.ndarray, query: int | np.ndarray, k: int = 5
) -> list[tuple[int, float]]:
    """The ``k`` rows most cosine-similar to ``query`` (a row number, left out of its own
    answer, or a feature vector), as (row, similarity), most alike first."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    rows = _unit_rows(np.asarray(features, dtype=np.float32))
    if isinstance(query, int | np.integer):
        if not 0 <= query < len(rows):
            raise ValueError(f"There is no picture number {query} (there are {len(rows)}).")
        vector = rows[int(query)]
    else:
        vector = _unit_rows(np.asarray(query, dtype=np.float32).reshape(1, -1))[0]
    similarity = rows @ vector
    order = np.argsort(-similarity, kind="stable")
    if isinstance(query, int | np.integer):
        order = order[order != int(query)]
    return [(int(row), float(similarity[row])) for row in order[:k]]


def one_line(path: object) -> str:
    """A path on one line: a line break or carriage return in a name written as ``\\n``,
    ``\\r`` (backslashes are left alone: they separate folders on Windows)."""
    return str(path).replace("\n", "\\n").replace("\r", "\\r")


def save_embeddings(
    embeddings: Embeddings, folder: str | Path, projection: Projection | None = None
) -> SavedEmbeddings:
    """Write the features and the map into ``folder`` (created if needed; these files replaced):

    - ``embeddings.npy``: float32 ``[pictures, features]``, row i is line i of ``files.txt``
      (a line break or carriage return in a name is written ``\\n``, ``\\r``);
    - ``embeddings.csv``: path, true class, predicted, confidence, feature_1 … feature_F;
    - ``embedding_map.csv``: path, x, y, true class, predicted, confidence (the PCA map);
    - ``unreadable.csv``: path, reason — the files that could not be read (header only if none).
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    projection = projection or project_2d(embeddings.features)
    saved = SavedEmbeddings(
        features=target / FEATURES_FILE,
        features_csv=target / FEATURES_CSV,
        map_csv=target / MAP_CSV,
        file_list=target / FILE_LIST,
        unreadable=target / UNREADABLE_CSV,
    )
    with atomic_writer(saved.features, "wb") as handle:
        np.save(handle, embeddings.features.astype(np.float32), allow_pickle=False)
    write_text_atomic(saved.file_list, "".join(f"{one_line(path)}\n" for path in embeddings.paths))
    labels = ["path", "true_class", "predicted", "confidence"]
    columns = [f"feature_{index}" for index in range(1, embeddings.features.shape[1] + 1)]
    _write_csv(
        saved.features_csv,
        labels + columns,
        (
            [*_labels(embeddings, row), *(f"{v:.6g}" for v in vector)]
            for row, vector in enumerate(embeddings.features)
        ),
    )
    _write_csv(
        saved.map_csv,
        ["path", "x", "y", "true_class", "predicted", "confidence"],
        (
            [str(embeddings.paths[row]), f"{x:.6g}", f"{y:.6g}", *_labels(embeddings, row)[1:]]
            for row, (x, y) in enumerate(projection.coordinates)
        ),
    )
    _write_csv(
        saved.unreadable,
        ["path", "reason"],
        ([str(path), reason] for path, reason in embeddings.unreadable.items()),
    )
    return saved


def _labels(embeddings: Embeddings, row: int) -> list[str]:
    return [
        str(embeddings.paths[row]),
        embeddings.true_classes[row],
        embeddings.predicted[row],
        f"{embeddings.confidence[row]:.4f}",
    ]


def _write_csv(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    """UTF-8, as predictions.csv; streamed, so thousands of 2048-wide rows need no big string."""
    with atomic_writer(path, "wb") as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(header)
        writer.writerows(rows)
        text.flush()
        text.detach()  # atomic_writer still flushes, syncs and closes the file itself


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


class _PictureBatches:
    """Batches ``(images, labels)`` from picture files for extract_features, remembering which
    were read and why the others were not. Progress is told when the next batch is asked for,
    that is once extract_features has computed the previous one."""

    def __init__(
        self,
        predictor: Predictor,
        paths: list[Path],
        batch_size: int,
        on_progress: Callable[[int, int], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.predictor, self.paths, self.batch_size = predictor, paths, batch_size
        self.on_progress, self.should_stop = on_progress, should_stop
        self.readable: list[Path] = []
        self.unreadable: dict[Path, str] = {}

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        total = len(self.paths)
        for start in range(0, total, self.batch_size):
            if self.should_stop is not None and self.should_stop():
                raise PredictionCancelled
            images = self._load(self.paths[start : start + self.batch_size])
            if images is not None:
                yield images, torch.zeros(len(images), dtype=torch.long)
            if self.on_progress is not None:
                self.on_progress(min(start + self.batch_size, total), total)

    def _load(self, paths: list[Path]) -> torch.Tensor | None:
        tensors = []
        for path in paths:
            try:
                picture = load_for_model(path, self.predictor.decode_side)
            except ImageLoadError as error:
                self.unreadable[path] = error.reason
                continue
            tensors.append(self.predictor.transform(picture))
            self.readable.append(path)
        return torch.stack(tensors) if tensors else None
