"""The embedding map: PCA separates clusters it is given, nearest neighbours are the right ones,
a trained run's pictures are embedded with nothing dropped silently, saved for a spreadsheet and
for Python, cancelled on request; and the `embed` command end to end."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import train_and_record, train_with_the_cli

from ptm_studio.cli import EXIT_DATA, EXIT_OK, EXIT_USAGE, main
from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import load_image
from ptm_studio.core.embeddings import (
    Embeddings,
    embed_paths,
    embed_validation_pictures,
    nearest_neighbours,
    project_2d,
    save_embeddings,
)
from ptm_studio.core.inference import PredictionCancelled, Predictor


def three_clusters(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """60 points in 64-D around three random centres (about 17 apart), each coordinate with a
    spread of 1 around its centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, size=(3, 64))
    labels = np.repeat(np.arange(3), 20)
    return centres[labels] + rng.normal(0.0, 1.0, size=(60, 64)), labels


def test_pca_keeps_well_separated_clusters_apart_in_two_dimensions() -> None:
    features, labels = three_clusters()
    projection = project_2d(features)
    points = projection.coordinates
    assert points.shape == (60, 2) and points.dtype == np.float32
    centroids = np.stack([points[labels == label].mean(axis=0) for label in range(3)])
    spread = max(float(points[labels == label].std(axis=0).max()) for label in range(3))
    closest = min(
        np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3)
    )
    assert closest > 4 * spread  # far apart for their size
    distances = np.linalg.norm(points[:, None, :] - centroids[None], axis=2)
    assert np.array_equal(distances.argmin(axis=1), labels)  # nearest centroid: all right
    first, second = projection.explained_variance
    assert 0 < second <= first and first + second <= 1.0
    assert "%" in projection.describe()


def test_pca_is_exact_on_a_line_and_the_same_every_time() -> None:
    direction = np.zeros(8)
    direction[3] = 2.0
    features = np.outer(np.arange(-2.0, 3.0), direction) + 5.0  # 5 points on a line
    projection = project_2d(features)
    assert projection.coordinates[:, 0] == pytest.approx([-4, -2, 0, 2, 4], abs=1e-5)
    assert projection.coordinates[:, 1] == pytest.approx([0] * 5, abs=1e-5)
    assert projection.explained_variance == pytest.approx((1.0, 0.0))
    flipped = project_2d(-features)  # the axis's sign follows its largest loading, not chance
    assert flipped.coordinates[:, 0] == pytest.approx([4, 2, 0, -2, -4], abs=1e-5)
    assert project_2d(np.ones((1, 8))).coordinates.tolist() == [[0.0, 0.0]]
    assert project_2d(np.zeros((0, 8))).coordinates.shape == (0, 2)
    with pytest.raises(ValueError, match="pictures, features"):
        project_2d(np.zeros(8))


def test_nearest_neighbours_by_cosine_similarity() -> None:
    features = np.array(
        [
            [1.0, 0.0, 0.0],
            [10.0, 1.0, 0.0],  # nearly the same direction as row 0, however long
            [0.0, 1.0, 0.0],
            [-1.0, 0.0, 0.0],
            [0.7, 0.7, 0.0],
        ]
    )
    found = nearest_neighbours(features, 0, k=3)
    assert [row for row, _ in found] == [1, 4, 2]  # itself left out
    assert found[0][1] == pytest.approx(10 / np.sqrt(101))
    assert found[1][1] == pytest.approx(np.sqrt(0.5))
    everything = nearest_neighbours(features, np.array([0.0, 2.0, 0.0]), k=10)
    assert [row for row, _ in everything][:2] == [2, 4] and len(everything) == 5
    assert everything[-1][1] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no picture number 9"):
        nearest_neighbours(features, 9)
    with pytest.raises(ValueError, match="at least 1"):
        nearest_neighbours(features, 0, k=0)


@pytest.fixture
def trained_predictor(tiny_config: Callable[..., RunConfig], tmp_path: Path) -> Predictor:
    finished, _ = train_and_record(tiny_config(), tmp_path / "runs")
    assert finished.run_dir is not None
    return Predictor.from_run(finished.run_dir, device="cpu")


def test_a_folder_is_embedded_with_unreadable_files_listed_and_saved(
    trained_predictor: Predictor, tiny_dataset: Path, tmp_path: Path
) -> None:
    broken = tiny_dataset / "square" / "broken.png"
    broken.write_bytes(b"not a picture")
    paths = sorted(tiny_dataset.rglob("*.png"))
    readable = [path for path in paths if path != broken]
    progress: list[tuple[int, int]] = []
    embeddings = embed_paths(
        trained_predictor, paths, batch_size=10, on_progress=lambda *p: progress.append(p)
    )
    assert list(embeddings.paths) == readable and set(embeddings.unreadable) == {broken}
    assert embeddings.features.shape == (24, 256) and embeddings.features.dtype == np.float32
    assert progress == [(10, 25), (20, 25), (25, 25)]
    # The very features the model's classifier reads, and its answers for them.
    picture = load_image(readable[0], max_side=trained_predictor.decode_side)
    with torch.inference_mode():
        expected = trained_predictor.model.extract_features(
            trained_predictor.transform(picture).unsqueeze(0)
        )
    assert np.allclose(embeddings.features[0], expected.numpy()[0], atol=1e-5)
    predictions = trained_predictor.predict_paths(readable)
    assert list(embeddings.predicted) == [p.predicted_class for p in predictions]
    assert embeddings.confidence == pytest.approx([p.confidence for p in predictions], rel=1e-4)
    assert set(embeddings.true_classes) == {""}  # not known for a folder
    neighbours = embeddings.neighbours_of(readable[0], k=3)
    assert len(neighbours) == 3 and readable[0] not in [path for path, _ in neighbours]

    saved = save_embeddings(embeddings, tmp_path / "out")
    assert np.array_equal(np.load(saved.features), embeddings.features)
    listed = saved.file_list.read_text(encoding="utf-8").splitlines()
    assert listed == [str(path) for path in readable]
    with open(saved.features_csv, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:5] == ["path", "true_class", "predicted", "confidence", "feature_1"]
    assert len(rows) == 25 and len(rows[1]) == 4 + 256 and rows[1][0] == str(readable[0])
    assert float(rows[1][4]) == pytest.approx(float(embeddings.features[0, 0]), rel=1e-5)
    with open(saved.map_csv, encoding="utf-8", newline="") as handle:
        points = list(csv.DictReader(handle))
    assert len(points) == 24 and {"path", "x", "y", "predicted"} <= set(points[0])
    expected_points = project_2d(embeddings.features).coordinates
    assert float(points[3]["y"]) == pytest.approx(float(expected_points[3, 1]), rel=1e-4, abs=1e-5)
    with open(saved.unreadable, encoding="utf-8", newline="") as handle:
        failed = list(csv.DictReader(handle))
    assert failed == [{"path": str(broken), "reason": embeddings.unreadable[broken]}]


def test_nothing_readable_gives_an_empty_map_and_stopping_cancels(
    trained_predictor: Predictor, tmp_path: Path, tiny_dataset: Path
) -> None:
    broken = [tmp_path / "a.png", tmp_path / "b.jpg"]
    for path in broken:
        path.write_bytes(b"nope")
    empty = embed_paths(trained_predictor, broken)
    assert empty.features.shape == (0, 256) and set(empty.unreadable) == set(broken)
    saved = save_embeddings(empty, tmp_path / "empty")
    assert np.load(saved.features).shape == (0, 256)
    assert len(saved.unreadable.read_text(encoding="utf-8").splitlines()) == 3

    paths = sorted(tiny_dataset.rglob("*.png"))
    calls = iter([False, True])
    with pytest.raises(PredictionCancelled):
        embed_paths(trained_predictor, paths, batch_size=4, should_stop=lambda: next(calls))


def test_a_runs_validation_pictures_are_embedded_with_their_classes(
    tiny_config: Callable[..., RunConfig], tmp_path: Path
) -> None:
    finished, _ = train_and_record(tiny_config(), tmp_path / "runs")
    assert finished.run_dir is not None
    embeddings = embed_validation_pictures(finished.run_dir, device="cpu")
    assert isinstance(embeddings, Embeddings) and len(embeddings.paths) == 6  # 25 % of 24
    assert embeddings.checkpoint is not None and not embeddings.unreadable
    for path, true_class in zip(embeddings.paths, embeddings.true_classes, strict=True):
        assert true_class == path.parent.name


def test_the_embed_command_end_to_end(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train_with_the_cli(tiny_dataset, tmp_path / "run")
    capsys.readouterr()
    (tiny_dataset / "square" / "broken.png").write_bytes(b"not a picture")

    out = tmp_path / "features"
    assert main(["embed", "--run", str(run), str(tiny_dataset), "--to", str(out)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "Features of 24 picture(s), 256 numbers each" in captured.out
    assert "broken.png" in captured.err and "embedding_map.csv" in captured.out
    names = {"embeddings.npy", "embeddings.csv", "embedding_map.csv", "files.txt"}
    assert names | {"unreadable.csv"} == {path.name for path in out.iterdir()}
    assert np.load(out / "embeddings.npy").shape == (24, 256)

    validation = tmp_path / "validation"
    assert main(["embed", "--run", str(run), "--to", str(validation)]) == EXIT_OK
    with open(validation / "embedding_map.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and all(row["true_class"] for row in rows)

    assert main(["embed", "--run", str(tmp_path), "--to", str(out)]) == EXIT_USAGE
    assert "not a PTM Studio run folder" in capsys.readouterr().err
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "x.png").write_bytes(b"nope")
    assert main(["embed", "--run", str(run), str(nothing), "--to", str(out)]) == EXIT_DATA


def test_both_ways_of_finding_the_axes_give_the_same_map() -> None:
    """Many pictures: the features' scatter matrix; few: the SVD. Same map either way."""
    from ptm_studio.core.embeddings import _principal_axes

    features = np.random.default_rng(4).normal(size=(300, 12)) * np.linspace(6, 1, 12)
    centred = features - features.mean(axis=0)
    by_scatter, variances = _principal_axes(centred)  # 300 ≥ 12
    _, singular, right = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(np.abs(by_scatter), np.abs(right[:2].T), atol=1e-6)
    assert np.allclose(variances[:2], singular[:2] ** 2)
    few = centred[:8]  # 8 < 12: the SVD way
    axes, _ = _principal_axes(few)
    assert axes.shape == (12, 2)
