"""Pretraining data: one or two randomly altered views of each picture, as an objective asks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ptm_studio.core.data.dataset import UNLABELLED
from ptm_studio.core.data.loader import load_image
from ptm_studio.core.data.manifest import ImageRecord
from ptm_studio.core.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ptm_studio.core.objectives.self_supervised import get_objective_class

TRANSFORM_STRENGTHS = ("contrastive", "contrastive_keep_colours", "light")

MultiViewSample = tuple[list[torch.Tensor], int]


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


def views_for_objective(name: str) -> tuple[int, str]:
    """(views per picture, transform strength) that the pretraining objective ``name`` needs."""
    objective_class = get_objective_class(name)
    return objective_class.views_per_image, objective_class.transform_strength


class MultiViewDataset(Dataset[MultiViewSample]):
    """([view_1, …, view_n], class index) per picture; each view is a fresh random transform.

    The class index is -1 unless ``class_names`` is given and the record has a class: labels are
    not used to pretrain, only to measure progress (k-NN accuracy) when the folder has them.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[[Image.Image], torch.Tensor],
        views_per_image: int,
        class_names: Sequence[str] | None = None,
        decode_side: int | None = None,
    ) -> None:
        if views_per_image < 1:
            raise ValueError(f"views_per_image must be at least 1, got {views_per_image}.")
        self.records = tuple(records)
        self.transform = transform
        self.decode_side = decode_side  # see decode_side_for
        self.views_per_image = views_per_image
        self.class_names = tuple(class_names) if class_names is not None else ()
        self._labels = self._label_indices()

    def _label_indices(self) -> tuple[int, ...]:
        if not self.class_names:
            return (UNLABELLED,) * len(self.records)
        index = {name: position for position, name in enumerate(self.class_names)}
        named = {record.class_name for record in self.records if record.class_name is not None}
        unknown = sorted(named.difference(index))
        if unknown:
            raise ValueError(f"images belong to classes the model does not have: {unknown}")
        return tuple(
            UNLABELLED if record.class_name is None else index[record.class_name]
            for record in self.records
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, position: int) -> MultiViewSample:
        # Decode once, transform n times: the views differ only by the random transform.
        picture = load_image(self.records[position].path, max_side=self.decode_side)
        views = [self.transform(picture) for _ in range(self.views_per_image)]
        return views, self._labels[position]

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(str(record.path) for record in self.records)

    @property
    def labels(self) -> tuple[int, ...]:
        return self._labels


def collate_views(batch: Sequence[MultiViewSample]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Stacks samples into ([``[B, 3, S, S]`` per view], ``[B]`` labels).

    torch's default_collate already gives this structure (as a list [views, labels], since it
    transposes each sample's list of views into a list of batched tensors); this function gives
    the same tensors as a tuple, with a clear error when samples have different view counts.
    """
    if not batch:
        raise ValueError("Cannot collate an empty batch.")
    num_views = len(batch[0][0])
    if any(len(views) != num_views for views, _ in batch):
        raise ValueError("Every picture in a batch must have the same number of views.")
    views = [torch.stack([sample[0][index] for sample in batch]) for index in range(num_views)]
    labels = torch.tensor([label for _, label in batch], dtype=torch.long)
    return views, labels
