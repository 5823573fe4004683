"""Builds the pieces a run needs from its config: device, data split and loaders, model."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ptm_studio.core.config import ConfigError, DeviceConfig, RunConfig
from ptm_studio.core.data import (
    DatasetError,
    DatasetScan,
    DataSplit,
    ImageDataset,
    ImageRecord,
    build_transform,
    decode_side_for,
    demo_data_dir,
    preflight,
    scan_folder,
    scan_is_current,
    split_for_run,
)
from ptm_studio.core.data.decoded_cache import DecodedPictures, plan_picture_store
from ptm_studio.core.data.skipping import (
    MarkUnreadable,
    SkipUnreadable,
    collate_reporting_skipped,
)
from ptm_studio.core.devices import (
    CpuThreadWatch,
    DeviceInfo,
    autocast_dtype,
    configure_cpu_threads,
    describe_cpu_threads,
    describe_device,
    select_device,
)
from ptm_studio.core.engine.distributed import DistributedContext, shard
from ptm_studio.core.engine.loading import loader_options
from ptm_studio.core.engine.sampling import ResumableShuffleSampler
from ptm_studio.core.locations import default_cache_dir
from ptm_studio.core.models import (
    BackboneSpec,
    ImageClassifier,
    build_classifier,
    get_backbone_spec,
    load_initial_weights,
)
from ptm_studio.core.runs import RunDirectory


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_data_dir(config: RunConfig) -> Path:
    """The folder to train on: the user's, or the built-in demo images when none is given."""
    return Path(config.data.data_dir).expanduser() if config.data.data_dir else demo_data_dir()


# Said where the device is named when a CPU trains in bf16 (devices.autocast_dtype).
CPU_BF16_NOTE = (
    "This processor computes in bf16 natively, which training uses: about 1.4x faster, as "
    'accurate (the precision setting "off" keeps full precision).'
)


@dataclass(frozen=True)
class DeviceSetup:
    """Where a run computes, and how."""

    device: torch.device
    info: DeviceInfo
    autocast_dtype: torch.dtype | None
    # The automatic CPU thread count, looked at again each epoch (None: a set count, or no CPU).
    thread_watch: CpuThreadWatch | None
    # channels_last speeds convolutions up on CUDA and on the CPU (~17 % for the small CNN
    # here); Apple's MPS backend handles it poorly.
    channels_last: bool


def prepare_device(settings: DeviceConfig) -> DeviceSetup:
    device = select_device(settings.device)
    info, dtype = describe_device(settings.device), autocast_dtype(device, settings.precision)
    watch = None
    if device.type == "cpu":
        threads = configure_cpu_threads(settings.cpu_threads)
        info = replace(info, note=f"{info.note} {describe_cpu_threads(threads)}")
        watch = CpuThreadWatch(threads) if settings.cpu_threads == 0 else None
    if device.type == "cpu" and dtype is torch.bfloat16:
        info = replace(info, note=f"{info.note} {CPU_BF16_NOTE}")
    return DeviceSetup(
        device=device,
        info=info,
        autocast_dtype=dtype,
        thread_watch=watch,
        channels_last=device.type in ("cuda", "cpu"),
    )


def prepare_split(config: RunConfig, scan: DatasetScan | None = None) -> DataSplit:
    """Scan the folder (or reuse ``scan`` when the folder has not changed since), refuse data
    that cannot train (plain-language DatasetError), and split it as the settings say."""
    root = resolve_data_dir(config)
    if scan is None or scan.root != root.absolute() or not scan_is_current(scan):
        scan = scan_folder(root, verify_images=True)
    preflight(
        scan,
        task=config.objective.task,
        validation_fraction=config.data.validation_fraction,
        max_bad_file_fraction=config.data.max_bad_file_fraction,
    )
    return split_for_run(
        scan,
        validation_fraction=config.data.validation_fraction,
        label_fraction=config.data.label_fraction,
        seed=config.seed,
    )


def validation_records(run: RunDirectory) -> tuple[ImageRecord, ...]:
    """The validation pictures a run was given when it started (its validation.csv), so it is
    measured later on exactly those; a run from before that list was kept draws its split
    again from its folder.

    Raises:
        DatasetError: none of them is where the run found them, or the run has none.
    """
    recorded = run.read_validation_list()
    if recorded is None:
        records = prepare_split(run.read_config()).val
    else:
        records = tuple(ImageRecord(path, name or None, "val") for path, name in recorded)
    if not records:
        raise DatasetError(
            "The run has no validation pictures to measure it with.",
            advice="Give it a val/ folder, or a validation share above 0, and train it again.",
        )
    if not any(record.path.exists() for record in records):
        folder = records[0].path.parent.parent
        raise DatasetError(
            f"The run's validation pictures are no longer in {folder}.",
            advice="Put the folder back where it was (or mount the drive), then try again.",
        )
    return records


@dataclass
class DataLoaders:
    train: DataLoader
    val: DataLoader
    train_sampler: ResumableShuffleSampler
    val_paths: tuple[str, ...]
    train_set: SkipUnreadable
    kept: tuple[DecodedPictures, ...] = ()  # decoded pictures kept between epochs
    kept_note: str | None = None  # for the user when not all of them fit

    def forget_kept_pictures(self) -> None:
        """Give the memory (or scratch file) of the kept pictures back; they decode again."""
        for pictures in self.kept:
            pictures.forget()


def keeps_decoded_pictures(config: RunConfig) -> bool:
    """Kept pictures live in this process: background loading processes would each keep
    their own copy of what they happened to load."""
    return config.data.keep_decoded and config.data.num_workers == 0


def batch_per_process(batch_size: int, distributed: DistributedContext) -> int:
    """Under torchrun the batch size is the whole step's: each process takes its share."""
    world = distributed.world_size
    if batch_size % world:
        raise ConfigError(
            "data.batch_size",
            f"{batch_size} pictures per step cannot be shared evenly by {world} processes; "
            f"choose a multiple of {world}.",
        )
    return batch_size // world


def build_data_loaders(
    config: RunConfig,
    split: DataSplit,
    spec: BackboneSpec,
    device: torch.device,
    distributed: DistributedContext | None = None,
) -> DataLoaders:
    data = config.data
    distributed = distributed or DistributedContext()
    batch_size = batch_per_process(data.batch_size, distributed)
    train_transform = build_transform(
        data.image_size, mean=spec.mean, std=spec.std, train=True, augmentations=data.augmentations
    )
    eval_transform = build_transform(data.image_size, mean=spec.mean, std=spec.std, train=False)
    decode_side = decode_side_for(data.image_size)
    plan = None
    if keeps_decoded_pictures(config):
        expected = train_transform.prepared_bytes * len(split.train)
        expected += eval_transform.prepared_bytes * len(split.val)
        plan = plan_picture_store(expected, default_cache_dir())
    kept_train, kept_val = (
        (DecodedPictures(plan.store), DecodedPictures(plan.store))
        if plan is not None
        else (None, None)
    )
    pictures = ImageDataset(
        split.train, split.class_names, train_transform, decode_side, kept=kept_train
    )
    train_set = SkipUnreadable(pictures, resolve_data_dir(config))
    val_set = MarkUnreadable(
        ImageDataset(split.val, split.class_names, eval_transform, decode_side, kept=kept_val),
        resolve_data_dir(config),
        data.image_size,
    )
    balance_by = pictures.labels if data.balanced_sampling else None
    sampler = ResumableShuffleSampler(len(train_set), config.seed, balance_by, distributed)
    common = loader_options(config, device)
    # A last batch of one image breaks batch norm in training mode, so drop it (only then).
    share = len(sampler)
    drop_last = share > batch_size and share % batch_size == 1
    train_loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=collate_reporting_skipped,
        **common,
    )
    # Under torchrun each process checks its share of the validation pictures; the answers are
    # gathered (see loops.evaluate), so every process computes the same scores.
    val_order = shard(list(range(len(val_set))), distributed, pad=False)
    val_loader = DataLoader(
        val_set,
        batch_size=batch_size,
        sampler=val_order if distributed.is_distributed else None,
        shuffle=False,
        **common,
    )
    return DataLoaders(
        train_loader,
        val_loader,
        sampler,
        val_set.paths,
        train_set,
        kept=(kept_train, kept_val) if kept_train is not None and kept_val is not None else (),
        kept_note=plan.note if plan is not None else None,
    )


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
