"""build_transform and ImageDataset: the tensors a model receives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from ptm_studio.core.config import AUGMENTATIONS
from ptm_studio.core.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDataset,
    ImageLoadError,
    ImageRecord,
    build_transform,
    describe_augmentation,
)


@pytest.fixture
def picture() -> Image.Image:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (30, 50, 3), generator=generator, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def test_evaluation_transform_shape_and_normalisation(picture: Image.Image) -> None:
    tensor = build_transform(16, train=False)(picture)
    assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32
    white = build_transform(8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), train=False)(
        Image.new("RGB", (20, 10), (255, 255, 255))
    )
    assert torch.allclose(white, torch.ones(3, 8, 8))
    grey = build_transform(4, mean=IMAGENET_MEAN, std=IMAGENET_STD, train=False)(
        Image.new("RGB", (4, 4), (124, 116, 104))
    )
    assert grey.abs().max() < 0.01  # ImageNet's mean colour maps to zero


def test_training_without_augmentations_equals_evaluation(picture: Image.Image) -> None:
    evaluation = build_transform(16, train=False)(picture)
    training = build_transform(16, train=True)(picture)
    assert torch.equal(evaluation, training)
    ignored = build_transform(16, train=False, augmentations=AUGMENTATIONS)(picture)
    assert torch.equal(evaluation, ignored)


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_changes_the_picture_reproducibly(
    picture: Image.Image, name: str
) -> None:
    transform = build_transform(16, train=True, augmentations=(name,))
    evaluation = build_transform(16, train=False)(picture)
    torch.manual_seed(0)
    outputs = [transform(picture) for _ in range(6)]
    assert all(output.shape == (3, 16, 16) for output in outputs)
    assert any(not torch.equal(output, evaluation) for output in outputs)
    torch.manual_seed(0)
    assert all(torch.equal(transform(picture), output) for output in outputs)
    assert describe_augmentation(name)


def test_unknown_augmentation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown augmentation 'mosaic'"):
        build_transform(16, train=True, augmentations=("mosaic",))
    with pytest.raises(ValueError, match="unknown augmentation"):
        describe_augmentation("mosaic")


def test_dataset_returns_tensor_and_label(tmp_path: Path, make_image) -> None:
    paths = [make_image(tmp_path / name, size=(12, 9)) for name in ("x.png", "y.jpg", "z.png")]
    records = [
        ImageRecord(paths[0], "dog", "train"),
        ImageRecord(paths[1], "cat", "train"),
        ImageRecord(paths[2], None, "unassigned"),
    ]
    dataset = ImageDataset(records, ("cat", "dog"), build_transform(8, train=False))
    assert len(dataset) == 3
    assert dataset.paths == tuple(str(path) for path in paths)
    tensor, label = dataset[0]
    assert tensor.shape == (3, 8, 8) and label == 1
    assert dataset[1][1] == 0 and dataset[2][1] == -1
    batch, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch.shape == (3, 3, 8, 8) and labels.tolist() == [1, 0, -1]


def test_dataset_refuses_unknown_classes_and_reports_vanished_files(
    tmp_path: Path, make_image
) -> None:
    path = make_image(tmp_path / "x.png")
    with pytest.raises(ValueError, match="'bird'"):
        ImageDataset(
            [ImageRecord(path, "bird", "train")], ("cat",), build_transform(8, train=False)
        )
    dataset = ImageDataset(
        [ImageRecord(path, "cat", "train")], ("cat",), build_transform(8, train=False)
    )
    path.unlink()
    with pytest.raises(ImageLoadError, match="no longer exists"):
        dataset[0]
