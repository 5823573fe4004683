"""Pretraining data: one or two randomly altered views of each picture, as an objective asks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms import v2

from ptm_studio.core.data.transforms import IMAGENET_MEAN, IMAGENET_STD

TRANSFORM_STRENGTHS = ("contrastive", "contrastive_keep_colours", "light")


def build_pretrain_transform(
    image_size: int,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    strength: str = "contrastive",
) -> Callable[[Image.Image], torch.Tensor]:
    """Picture → normalised ``[3, S, S]`` tensor with random changes for pretraining.

    "contrastive" (SimCLR, Chen et al. 2020): random crop of 30–100 % of the area resized to S,
    horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1) with probability 0.8, grayscale with
    probability 0.2. Strong changes force two views of one picture to agree on content, not on
    colour or framing. "light": resize the shorter side to S, centre crop, horizontal flip; for
    reconstruction and rotation, which need the picture itself rather than a disguised copy.
    "contrastive_keep_colours": the contrastive views without hue, saturation or grayscale
    changes, so the features may keep colour when colour tells classes apart.
    Randomness comes from torch's global generator, which the trainer seeds.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, not {image_size}")
    if strength == "contrastive_keep_colours":
        # For pictures whose colour is the clue (flowers, stains): vary light, never hue.
        steps: list[v2.Transform] = [
            v2.RandomResizedCrop(image_size, scale=(0.3, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
        ]
    elif strength == "contrastive":
        steps = [
            v2.RandomResizedCrop(image_size, scale=(0.3, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply(
                [v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)], p=0.8
            ),
            v2.RandomGrayscale(p=0.2),
        ]
    elif strength == "light":
        steps = [
            v2.Resize(image_size, antialias=True),
            v2.CenterCrop(image_size),
            v2.RandomHorizontalFlip(),
        ]
    else:
        raise ValueError(
            f"unknown transform strength {strength!r}; choose one of {TRANSFORM_STRENGTHS}"
        )
    steps += [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]
    return v2.Compose(steps)


class MultiViewTransform:
    """Applies ``transform`` ``views_per_image`` times to one picture: the views of a picture
    differ only by the random changes (the picture is decoded once). Use it as the transform of
    an :class:`ImageDataset`, whose samples then are ``([view_1, …, view_n], class index)``."""

    def __init__(
        self, transform: Callable[[Image.Image], torch.Tensor], views_per_image: int
    ) -> None:
        if views_per_image < 1:
            raise ValueError(f"views_per_image must be at least 1, got {views_per_image}.")
        self.transform = transform
        self.views_per_image = views_per_image

    def __call__(self, picture: Image.Image) -> list[torch.Tensor]:
        return [self.transform(picture) for _ in range(self.views_per_image)]
