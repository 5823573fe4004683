"""Builds what a run needs from its config: data split and loaders, model, loss, optimiser."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data import (
    DataSplit,
    ImageDataset,
    build_transform,
    decode_side_for,
    demo_data_dir,
    keep_label_fraction,
    make_split,
    preflight,
    scan_folder,
)
from ptm_studio.core.data.skipping import (
    MarkUnreadable,
    SkipUnreadable,
    collate_reporting_skipped,
)
from ptm_studio.core.engine.loading import loader_options
from ptm_studio.core.engine.sampling import ResumableShuffleSampler
from ptm_studio.core.models import (
    BackboneSpec,
    ImageClassifier,
    build_classifier,
    get_backbone_spec,
    load_initial_weights,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_data_dir(config: RunConfig) -> Path:
    """The folder to train on: the user's, or the built-in demo images when none is given."""
    return Path(config.data.data_dir).expanduser() if config.data.data_dir else demo_data_dir()


def prepare_split(config: RunConfig) -> DataSplit:
    """Scan the folder, refuse data that cannot train (plain-language DatasetError), split it."""
    scan = scan_folder(resolve_data_dir(config), verify_images=True)
    preflight(
        scan,
        task=config.objective.task,
        validation_fraction=config.data.validation_fraction,
        max_bad_file_fraction=config.data.max_bad_file_fraction,
    )
    split = make_split(scan, config.data.validation_fraction, config.seed)
    # Files the scan could not use are reported with the run, as files skipped during it are.
    split = dataclasses.replace(split, left_out=scan.unreadable)
    if config.data.label_fraction < 1:
        train = keep_label_fraction(split.train, config.data.label_fraction, config.seed)
        split = dataclasses.replace(split, train=train)
    return split


@dataclass
class DataLoaders:
    train: DataLoader
    val: DataLoader
    train_sampler: ResumableShuffleSampler
    val_paths: tuple[str, ...]
    train_set: SkipUnreadable


def build_data_loaders(
    config: RunConfig, split: DataSplit, spec: BackboneSpec, device: torch.device
) -> DataLoaders:
    data = config.data
    train_transform = build_transform(
        data.image_size, mean=spec.mean, std=spec.std, train=True, augmentations=data.augmentations
    )
    eval_transform = build_transform(data.image_size, mean=spec.mean, std=spec.std, train=False)
    decode_side = decode_side_for(data.image_size)
    train_set = SkipUnreadable(
        ImageDataset(split.train, split.class_names, train_transform, decode_side),
        resolve_data_dir(config),
    )
    val_set = MarkUnreadable(
        ImageDataset(split.val, split.class_names, eval_transform, decode_side),
        resolve_data_dir(config),
        data.image_size,
    )
    sampler = ResumableShuffleSampler(len(train_set), config.seed)
    common = loader_options(config, device)
    # A last batch of one image breaks batch norm in training mode, so drop it (only then).
    drop_last = len(train_set) > data.batch_size and len(train_set) % data.batch_size == 1
    train_loader = DataLoader(
        train_set,
        batch_size=data.batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate_reporting_skipped,
        **common,
    )
    val_loader = DataLoader(val_set, batch_size=data.batch_size, shuffle=False, **common)
    return DataLoaders(train_loader, val_loader, sampler, val_set.paths, train_set)


def build_model(
    config: RunConfig,
    num_classes: int,
    download_progress: Callable[[int, int], None] | None = None,
) -> tuple[ImageClassifier, BackboneSpec, str]:
    """The classifier with its starting weights; the string says what was loaded, for the log.

    ``download_progress(done_bytes, total_bytes)`` is called while ImageNet weights download
    (only when the user allowed it and they are not on this computer yet)."""
    spec = get_backbone_spec(config.model.backbone)
    model = build_classifier(spec.name, num_classes, dropout=config.model.dropout)
    report = load_initial_weights(model, config.model, progress=download_progress)
    return model, spec, report.summary() if report is not None else "random initial weights"


def class_counts(split: DataSplit) -> list[int]:
    counts = dict.fromkeys(split.class_names, 0)
    for record in split.train:
        if record.class_name is not None:
            counts[record.class_name] += 1
    return [counts[name] for name in split.class_names]
