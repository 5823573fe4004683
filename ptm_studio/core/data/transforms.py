"""Turns an RGB picture into the normalised tensor a model takes, with training augmentations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import v2

from ptm_studio.core.config import AUGMENTATION_DESCRIPTIONS
from ptm_studio.core.data.normalisation import IMAGENET_MEAN as IMAGENET_MEAN
from ptm_studio.core.data.normalisation import IMAGENET_STD as IMAGENET_STD


def describe_augmentation(name: str) -> str:
    """A sentence for the GUI saying what an augmentation does to the training pictures."""
    try:
        return AUGMENTATION_DESCRIPTIONS[name]
    except KeyError:
        raise ValueError(_unknown(name)) from None


def build_transform(
    image_size: int,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    train: bool,
    augmentations: tuple[str, ...] = (),
) -> Callable[[Image.Image], torch.Tensor]:
    """Picture → float tensor of shape (3, image_size, image_size), normalised by mean and std.

    Evaluation: shorter side resized to ``image_size``, then the centre square cut out. Training
    is the same plus the chosen ``augmentations`` (ignored when ``train`` is False); their
    randomness comes from torch's global generator, which the trainer seeds.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, not {image_size}")
    for name in augmentations:
        if name not in AUGMENTATION_DESCRIPTIONS:
            raise ValueError(_unknown(name))
    chosen = set(augmentations) if train else set()
    steps: list[v2.Transform] = _geometry(image_size, "random_crop" in chosen)
    if "flip" in chosen:
        steps.append(v2.RandomHorizontalFlip())
    if "small_rotations" in chosen:
        steps.append(v2.RandomRotation(15))
    if "colour_changes" in chosen:
        steps.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05))
    steps += [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]
    return v2.Compose(steps)


def _geometry(image_size: int, random_crop: bool) -> list[v2.Transform]:
    if random_crop:
        return [v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True)]
    return [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]


def _unknown(name: str) -> str:
    known = ", ".join(AUGMENTATION_DESCRIPTIONS)
    return f"unknown augmentation {name!r}; PTM Studio knows: {known}"
