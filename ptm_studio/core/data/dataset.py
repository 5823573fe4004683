"""A torch Dataset over scanned image records: loads each picture safely and applies a transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

from PIL import Image
from torch.utils.data import Dataset

from ptm_studio.core.data.decoded_cache import DecodedPictures
from ptm_studio.core.data.loader import load_for_model, load_image
from ptm_studio.core.data.manifest import ImageRecord
from ptm_studio.core.data.transforms import PictureTransform

UNLABELLED = -1
Sample = TypeVar("Sample")  # what the transform makes of a picture: a tensor, or a list of views


class ImageDataset(Dataset[tuple[Sample, int]], Generic[Sample]):
    """(transformed picture, class index) pairs; the index is -1 for unlabelled pictures.

    The transform usually gives one tensor; a MultiViewTransform gives a list of random views
    (pretraining). Random augmentations draw from torch's global generator (seeded by the
    trainer). A file that became unreadable since the scan raises ImageLoadError naming it.

    With ``kept`` (and a PictureTransform) each picture's prepared pixels are kept after their
    first use and later items skip decoding (see decoded_cache); the items are the same.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        class_names: Sequence[str],
        transform: Callable[[Image.Image], Sample],
        decode_side: int | None = None,
        kept: DecodedPictures | None = None,
    ) -> None:
        if kept is not None and not isinstance(transform, PictureTransform):
            raise TypeError("keeping decoded pictures needs a PictureTransform (build_transform)")
        self.records = tuple(records)
        self.kept = kept
        self.decode_side = decode_side  # see decode_side_for
        self.class_names = tuple(class_names)
        self.transform = transform
        index = {name: position for position, name in enumerate(self.class_names)}
        unknown = sorted(
            {record.class_name for record in self.records}.difference(index, {None}), key=str
        )
        if unknown:
            raise ValueError(f"images belong to classes the model does not have: {unknown}")
        self._labels = tuple(
            UNLABELLED if record.class_name is None else index[record.class_name]
            for record in self.records
        )

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, position: int) -> tuple[Sample, int]:
        path = self.records[position].path
        if self.kept is not None and isinstance(self.transform, PictureTransform):
            transform = self.transform
            prepared = self.kept.prepared(
                position,
                path,
                lambda: transform.prepare(self._load(path)),
            )
            return transform.augment(prepared), self._labels[position]  # type: ignore[return-value]
        return self.transform(self._load(path)), self._labels[position]

    def _load(self, path: str | Path) -> Image.Image:
        if self.decode_side is None:
            return load_image(path)
        return load_for_model(path, self.decode_side)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(str(record.path) for record in self.records)

    @property
    def labels(self) -> tuple[int, ...]:
        return self._labels
