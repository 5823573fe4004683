"""Data: scanning a picture folder, loading images safely, splitting, transforms, torch datasets.

The torch dataset and the transforms load on first use (PEP 562): the window imports this
package for scanning and splitting, which need no torch, and must appear before torch has
loaded (issue 14, B5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptm_studio.core.data.demo import demo_data_dir
from ptm_studio.core.data.loader import (
    ALLOWED_FORMATS,
    BACKGROUND_COLOUR,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    check_image,
    decode_side_for,
    has_image_extension,
    is_multi_frame,
    load_for_model,
    load_image,
)
from ptm_studio.core.data.manifest import (
    DatasetError,
    DatasetScan,
    ImageRecord,
    Problem,
    ScanCancelled,
)
from ptm_studio.core.data.normalisation import IMAGENET_MEAN, IMAGENET_STD
from ptm_studio.core.data.preflight import preflight
from ptm_studio.core.data.scan import scan_folder, scan_is_current
from ptm_studio.core.data.split import (
    DataSplit,
    keep_label_fraction,
    make_split,
    split_for_run,
    stratified_split,
)
from ptm_studio.core.lazy_exports import loaded_on_first_use

if TYPE_CHECKING:
    from ptm_studio.core.data.dataset import ImageDataset
    from ptm_studio.core.data.transforms import build_transform, describe_augmentation

__getattr__ = loaded_on_first_use(
    globals(),
    {
        "ImageDataset": "ptm_studio.core.data.dataset",
        "build_transform": "ptm_studio.core.data.transforms",
        "describe_augmentation": "ptm_studio.core.data.transforms",
    },
)

__all__ = [
    "ALLOWED_FORMATS",
    "BACKGROUND_COLOUR",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "DataSplit",
    "DatasetError",
    "DatasetScan",
    "ImageDataset",
    "ImageLoadError",
    "ImageRecord",
    "Problem",
    "ScanCancelled",
    "build_transform",
    "check_image",
    "decode_side_for",
    "demo_data_dir",
    "describe_augmentation",
    "has_image_extension",
    "is_multi_frame",
    "keep_label_fraction",
    "load_for_model",
    "load_image",
    "make_split",
    "preflight",
    "scan_folder",
    "scan_is_current",
    "split_for_run",
    "stratified_split",
]
