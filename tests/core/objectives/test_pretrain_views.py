"""Pretraining views: transforms, the multi-view transform and how its batches are shaped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from ptm_studio.core.data.dataset import UNLABELLED, ImageDataset
from ptm_studio.core.data.loader import load_image
from ptm_studio.core.data.manifest import ImageRecord
from ptm_studio.core.data.pretrain_views import MultiViewTransform, build_pretrain_transform
from ptm_studio.core.data.transforms import build_transform
from ptm_studio.core.objectives.pretrain_objectives import views_for_objective

CLASS_NAMES = ("circle", "square", "stripe")


def _records(root: Path, *, labelled: bool = True) -> list[ImageRecord]:
    return [
        ImageRecord(path, path.parent.name if labelled else None, "unassigned")
        for path in sorted(root.glob("*/*.png"))
    ]


def test_contrastive_transform_gives_two_different_views_of_one_picture(tiny_dataset: Path) -> None:
    torch.manual_seed(0)
    transform = build_pretrain_transform(16, mean=(0.5,) * 3, std=(0.5,) * 3)
    dataset = ImageDataset(
        _records(tiny_dataset, labelled=False), (), MultiViewTransform(transform, 2)
    )
    views, label = dataset[0]
    assert len(views) == 2 and label == UNLABELLED
    assert views[0].shape == views[1].shape == (3, 16, 16)
    assert views[0].dtype == torch.float32
    assert not torch.equal(views[0], views[1])


def test_light_transform_is_the_evaluation_picture_or_its_mirror(tiny_dataset: Path) -> None:
    torch.manual_seed(0)
    records = _records(tiny_dataset)
    light = build_pretrain_transform(8, mean=(0.5,) * 3, std=(0.5,) * 3, strength="light")
    plain = build_transform(8, mean=(0.5,) * 3, std=(0.5,) * 3, train=False)
    expected = plain(load_image(records[0].path))
    seen_flip = seen_plain = False
    for _ in range(20):
        view = ImageDataset(records, CLASS_NAMES, MultiViewTransform(light, 1))[0][0][0]
        seen_plain |= torch.equal(view, expected)
        seen_flip |= torch.equal(view, expected.flip(2))
        assert torch.equal(view, expected) or torch.equal(view, expected.flip(2))
    assert seen_plain and seen_flip


def test_unknown_strength_is_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        build_pretrain_transform(16, strength="heavy")


def test_labels_are_kept_when_class_names_are_given(tiny_dataset: Path) -> None:
    transform = MultiViewTransform(build_pretrain_transform(16, strength="light"), 1)
    dataset = ImageDataset(_records(tiny_dataset), CLASS_NAMES, transform)
    assert sorted(set(dataset.labels)) == [0, 1, 2]
    assert len(dataset.paths) == len(dataset) == 24
    unlabelled = ImageDataset(_records(tiny_dataset, labelled=False), CLASS_NAMES, transform)
    assert set(unlabelled.labels) == {UNLABELLED}
    with pytest.raises(ValueError, match="classes the model does not have"):
        ImageDataset(_records(tiny_dataset), ("circle",), transform)


def test_a_picture_needs_at_least_one_view() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MultiViewTransform(build_pretrain_transform(16), 0)


def test_a_loader_batch_is_a_list_of_views_and_the_labels(tiny_dataset: Path) -> None:
    torch.manual_seed(0)
    transform = build_pretrain_transform(16)
    dataset = ImageDataset(_records(tiny_dataset), CLASS_NAMES, MultiViewTransform(transform, 2))
    views, labels = next(iter(DataLoader(dataset, batch_size=5)))
    assert isinstance(views, list) and len(views) == 2
    assert all(view.shape == (5, 3, 16, 16) for view in views)
    assert labels.shape == (5,) and labels.dtype == torch.long


def test_views_for_objective_follows_what_each_objective_declares() -> None:
    assert views_for_objective("nt_xent") == (2, "contrastive")
    assert views_for_objective("contrastive_margin") == (2, "contrastive")
    assert views_for_objective("reconstruction") == (1, "light")
    assert views_for_objective("rotation") == (1, "light")
    with pytest.raises(ValueError, match="Known objectives"):
        views_for_objective("jigsaw")


def test_keep_colours_views_never_change_hue() -> None:
    import numpy as np
    from PIL import Image

    from ptm_studio.core.data.pretrain_views import build_pretrain_transform

    red = Image.new("RGB", (32, 32), (200, 30, 30))
    transform = build_pretrain_transform(
        16, mean=(0, 0, 0), std=(1, 1, 1), strength="contrastive_keep_colours"
    )
    torch.manual_seed(0)
    for _ in range(20):
        view = transform(red).numpy()
        assert np.all(view[0] >= view[1]) and np.all(
            view[0] >= view[2]
        )  # still red, never grey or shifted
