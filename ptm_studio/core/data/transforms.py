"""Turns an RGB picture into the normalised tensor a model takes, with training augmentations.

In two stages (see PictureTransform): a fixed one that can be cached, then the random changes.
"""

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


class PictureTransform:
    """Picture → model input in two stages, so the first can be kept instead of redone.

    ``prepare`` is fixed (the same picture gives the same pixels every time): it shrinks the
    decoded picture to what the random changes need and gives a uint8 tensor (3, height, width);
    ``augment`` makes the random changes on that tensor and scales it to normalised floats.
    The decoded-picture cache stores ``prepare``'s result, so a cached picture and a freshly
    decoded one go through exactly the same ``augment``.
    """

    def __init__(
        self,
        prepare: Callable[[Image.Image], torch.Tensor],
        augment: Callable[[torch.Tensor], torch.Tensor],
        prepared_bytes: int,
    ) -> None:
        self.prepare = prepare
        self.augment = augment
        # A typical prepared picture's size in bytes (a 4:3 photo when the size varies), for
        # planning the cache: the real sizes are counted as pictures are stored.
        self.prepared_bytes = prepared_bytes

    def __call__(self, picture: Image.Image) -> torch.Tensor:
        return self.augment(self.prepare(picture))


def build_transform(
    image_size: int,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    train: bool,
    augmentations: tuple[str, ...] = (),
) -> PictureTransform:
    """Picture → float tensor of shape (3, image_size, image_size), normalised by mean and std.

    Evaluation: shorter side resized to ``image_size``, then the centre square cut out. Training
    is the same plus the chosen ``augmentations`` (ignored when ``train`` is False); their
    randomness comes from torch's global generator, which the trainer seeds. With a random crop
    the picture is first shrunk (never enlarged) to a shorter side of ``crop_source_side``, and
    the crop is cut from that.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, not {image_size}")
    for name in augmentations:
        if name not in AUGMENTATION_DESCRIPTIONS:
            raise ValueError(_unknown(name))
    chosen = set(augmentations) if train else set()
    random_crop = "random_crop" in chosen
    changes: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if random_crop:
        source_side = crop_source_side(image_size)
        prepare = v2.Compose([ShrinkShorterSide(source_side), v2.PILToTensor()])
        changes.append(v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), antialias=True))
        prepared_bytes = 3 * source_side * (source_side * 4 // 3)
    else:
        prepare = v2.Compose(
            [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), v2.PILToTensor()]
        )
        prepared_bytes = 3 * image_size * image_size
    if "flip" in chosen:
        changes.append(RandomFlip())
    if "small_rotations" in chosen:
        changes.append(v2.RandomRotation(15))
    if "colour_changes" in chosen:
        changes.append(v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05))
    changes.append(ScaleToModelInput(mean, std))
    return PictureTransform(prepare, InOrder(changes), prepared_bytes)


def crop_source_side(image_size: int) -> int:
    """The shorter side a picture is shrunk to before a random crop is cut from it.

    The smallest crop (60 % of the area, aspect 3:4) spans about two thirds of the shorter
    side, so at twice ``image_size`` even that crop is still shrunk, never enlarged: no detail
    the model could see is lost, and the picture kept per image is a fraction of the decoded one.
    """
    return 2 * image_size


class InOrder:
    """Applies ``steps`` one after the other (v2.Compose without its checks on every call)."""

    def __init__(self, steps: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = tuple(steps)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        for step in self.transforms:
            pixels = step(pixels)
        return pixels


class RandomFlip:
    """Mirror left to right with probability ½, drawing from torch's generator exactly as
    v2.RandomHorizontalFlip does, without its per-call dispatch (a quarter of the time a kept
    picture took to reach the batch)."""

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if torch.rand(1) >= 0.5:
            return pixels
        return pixels.flip(-1)


class ScaleToModelInput:
    """uint8 pixels (3, height, width) → float32 ``(value / 255 − mean) / std`` per channel: the
    arithmetic of v2.ToDtype(scale=True) then v2.Normalize, to the bit, in one step."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels.to(torch.float32).mul_(1.0 / 255).sub_(self.mean).div_(self.std)


class ShrinkShorterSide:
    """Resize a picture so its shorter side is ``side`` (aspect kept); smaller ones are kept."""

    def __init__(self, side: int) -> None:
        self.side = side

    def __call__(self, picture: Image.Image) -> Image.Image:
        if min(picture.size) <= self.side:
            return picture
        resized: Image.Image = v2.functional.resize(picture, [self.side], antialias=True)
        return resized


def _unknown(name: str) -> str:
    known = ", ".join(AUGMENTATION_DESCRIPTIONS)
    return f"unknown augmentation {name!r}; PTM Studio knows: {known}"
