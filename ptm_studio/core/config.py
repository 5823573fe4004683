"""The settings of one run as frozen dataclasses, with a JSON round trip and plain-language validation.

The GUI writes these, the CLI builds them from flags (one flag per field, generated from the
field metadata below), and every run folder keeps the exact config it used in ``config.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptm_studio.core.config_values import ConfigError as ConfigError
from ptm_studio.core.config_values import ConfigFileError as ConfigFileError
from ptm_studio.core.config_values import check_choice, check_range, from_plain, to_plain
from ptm_studio.core.config_values import config_fields as config_fields
from ptm_studio.core.config_values import get_field as get_field
from ptm_studio.core.config_values import replace_field as replace_field
from ptm_studio.core.file_reading import MAX_SETTINGS_FILE_BYTES, UnreadableText, read_text

CONFIG_FORMAT_VERSION = 1

AUGMENTATIONS = ("flip", "small_rotations", "colour_changes", "random_crop")
# What each random change does to the training pictures, in words (the GUI and the CLI show it).
AUGMENTATION_DESCRIPTIONS = {
    "flip": "Mirror pictures left to right at random. Good unless left and right matter "
    "(for example text, or an asymmetric specimen seen from one side).",
    "small_rotations": "Turn pictures by up to 15 degrees either way, as if the camera "
    "were held slightly crooked.",
    "colour_changes": "Vary brightness, contrast, saturation and hue a little, as under "
    "different lighting or cameras.",
    "random_crop": "Train on a random part (60 to 100 %) of each picture, so the model does "
    "not rely on the object always filling the frame in the same way.",
}
WEIGHT_SOURCES = ("random", "imagenet", "file", "run")
TRAINING_MODES = (
    "full_finetune",
    "feature_extraction",
    "freeze_then_unfreeze",
    "probe_then_finetune",
)
TASKS = ("finetune", "pretrain")
SUPERVISED_LOSSES = ("cross_entropy",)
PRETRAIN_LOSSES = (
    "nt_xent",
    "contrastive_margin",
    "reconstruction",
    "rotation",
    "moco",
    "vicreg",
)
LOSSES = SUPERVISED_LOSSES + PRETRAIN_LOSSES
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "one_cycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "off", "bf16", "fp16")
NOT_SURE = "not sure"
"""The answer when the model's calibrated confidence is below the user's threshold."""
NOT_SURE_BELOW = 0.5
"""The threshold offered first: with calibrated confidences, below it the model is wrong more
often than right, so its answer is better not taken at its word."""


def _describe(help_text: str, **extra: Any) -> dict[str, Any]:
    return {"help": help_text, **extra}


@dataclass(frozen=True)
class DataConfig:
    data_dir: str | None = field(
        default=None,
        metadata=_describe(
            "Folder of images: one subfolder per class (optionally inside train/ and val/)."
        ),
    )
    image_size: int = field(
        default=64, metadata=_describe("Images are resized to this many pixels square.")
    )
    batch_size: int = field(default=32, metadata=_describe("Images per training step."))
    validation_fraction: float = field(
        default=0.2,
        metadata=_describe(
            "Share of each class kept aside for validation when there is no val/ folder."
        ),
    )
    balanced_sampling: bool = field(
        default=False,
        metadata=_describe(
            "Draw every class equally often in training (a rare class's pictures repeat): for "
            "classes of very different sizes. Finetuning only."
        ),
    )
    augmentations: tuple[str, ...] = field(
        default=("flip",),
        metadata=_describe("Random changes to training images.", choices=AUGMENTATIONS),
    )
    num_workers: int = field(
        default=0,
        metadata=_describe(
            "Background processes that load images (0 = load in the training thread)."
        ),
    )
    keep_decoded: bool = field(
        default=True,
        metadata=_describe(
            "Keep the pictures decoded after their first use (in memory, or in a scratch file in "
            "the cache folder when memory is short), so later epochs skip reading the files. "
            "Only without background loading processes."
        ),
    )
    loader_timeout_seconds: float = field(
        default=60.0,
        metadata=_describe(
            "With background loading processes: seconds to wait for a batch before giving up on "
            "them (one hung, or died) and loading in the training thread instead."
        ),
    )
    max_bad_file_fraction: float = field(
        default=0.05,
        metadata=_describe(
            "Refuse to train when more than this share of the files cannot be read."
        ),
    )
    label_fraction: float = field(
        default=1.0,
        metadata=_describe(
            "Use only this share of each class's labelled training images (1 = all); "
            "the same images for the same seed."
        ),
    )
    monitor_dir: str | None = field(
        default=None,
        metadata=_describe(
            "Pretraining: a labelled folder used only to measure progress "
            "(k-nearest-neighbour accuracy). Default: the training folder's own classes, if any."
        ),
    )

    def validate(self) -> None:
        check_range("data.image_size", self.image_size, 8, 1024)
        check_range("data.batch_size", self.batch_size, 1, 65536)
        check_range("data.validation_fraction", self.validation_fraction, 0.0, 0.9)
        check_range("data.num_workers", self.num_workers, 0, 64)
        check_range(
            "data.loader_timeout_seconds", self.loader_timeout_seconds, 0, 86400, low_open=True
        )
        check_range("data.max_bad_file_fraction", self.max_bad_file_fraction, 0.0, 1.0)
        check_range("data.label_fraction", self.label_fraction, 0.001, 1.0)
        for name in self.augmentations:
            check_choice("data.augmentations", name, AUGMENTATIONS)


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = field(
        default="small_cnn", metadata=_describe("Network architecture (see `ptm-studio models`).")
    )
    weights: str = field(
        default="random",
        metadata=_describe("Where the starting weights come from.", choices=WEIGHT_SOURCES),
    )
    weights_path: str | None = field(
        default=None,
        metadata=_describe(
            "A .safetensors/.pt file (weights=file) or an earlier run folder (weights=run)."
        ),
    )
    allow_download: bool = field(
        default=False,
        metadata=_describe("Download ImageNet weights when they are not on this computer yet."),
    )
    training_mode: str = field(
        default="full_finetune",
        metadata=_describe(
            "Which layers learn. probe_then_finetune (for a pretrained start): the last layer is "
            "first fitted on the frozen network's features, then every layer learns, the network "
            "at backbone_learning_rate_factor times the rate.",
            choices=TRAINING_MODES,
        ),
    )
    unfreeze_after_epochs: int = field(
        default=1, metadata=_describe("freeze_then_unfreeze: epochs with only the head learning.")
    )
    backbone_learning_rate_factor: float = field(
        default=0.1,
        metadata=_describe(
            "freeze_then_unfreeze, probe_then_finetune: the network's learning rate relative to "
            "the last layer's."
        ),
    )
    dropout: float = field(default=0.0, metadata=_describe("Dropout before the classifier head."))
    cache_frozen_features: bool = field(
        default=True,
        metadata=_describe(
            "While the network is frozen (feature extraction, the first epochs of "
            "freeze_then_unfreeze): compute its features of each picture once and train the head "
            "on them, instead of running every picture through it each epoch. Much faster, same "
            "result; off only to compare."
        ),
    )

    def validate(self) -> None:
        check_choice("model.weights", self.weights, WEIGHT_SOURCES)
        check_choice("model.training_mode", self.training_mode, TRAINING_MODES)
        if self.weights in ("file", "run") and not self.weights_path:
            raise ConfigError(
                "model.weights_path", f"weights={self.weights!r} needs a path to start from"
            )
        check_range("model.unfreeze_after_epochs", self.unfreeze_after_epochs, 0, 10_000)
        check_range(
            "model.backbone_learning_rate_factor", self.backbone_learning_rate_factor, 0.0, 10.0
        )
        check_range("model.dropout", self.dropout, 0.0, 0.95)


@dataclass(frozen=True)
class ObjectiveConfig:
    task: str = field(
        default="finetune", metadata=_describe("finetune (labelled) or pretrain.", choices=TASKS)
    )
    loss: str = field(
        default="cross_entropy",
        metadata=_describe(
            "Training loss: cross_entropy for finetune; nt_xent, contrastive_margin, "
            "reconstruction, rotation, moco or vicreg for pretrain.",
            choices=LOSSES,
        ),
    )
    label_smoothing: float = field(
        default=0.0, metadata=_describe("Soften the targets (0 = off, 0.1 is common).")
    )
    use_class_weights: bool = field(
        default=False, metadata=_describe("Weigh rare classes up so imbalanced data trains fairly.")
    )
    margin: float = field(
        default=1.0,
        metadata=_describe("contrastive_margin: how far apart different images are pushed."),
    )
    temperature: float = field(
        default=0.5,
        metadata=_describe("nt_xent, moco: softmax temperature (lower = sharper)."),
    )
    memory_size: int = field(
        default=1024,
        metadata=_describe(
            "moco: how many recently seen pictures each picture is also compared with."
        ),
    )
    projection_dim: int = field(
        default=128, metadata=_describe("Contrastive losses: size of the projection head's output.")
    )
    keep_colours: bool = field(
        default=False,
        metadata=_describe(
            "Contrastive losses: never change hue or turn pictures grey, for data where colour "
            "tells the classes apart (flowers, stained tissue)."
        ),
    )

    def validate(self) -> None:
        check_choice("objective.task", self.task, TASKS)
        allowed = PRETRAIN_LOSSES if self.task == "pretrain" else SUPERVISED_LOSSES
        check_choice("objective.loss", self.loss, allowed)
        check_range("objective.label_smoothing", self.label_smoothing, 0.0, 0.5)
        check_range("objective.margin", self.margin, 0.01, 2.0)
        check_range("objective.temperature", self.temperature, 0.01, 10.0)
        check_range("objective.projection_dim", self.projection_dim, 2, 4096)
        check_range("objective.memory_size", self.memory_size, 0, 65_536)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = field(default="adamw", metadata=_describe("Optimiser.", choices=OPTIMIZERS))
    learning_rate: float = field(default=1e-3, metadata=_describe("Step size of the optimiser."))
    weight_decay: float = field(
        default=1e-4, metadata=_describe("Pulls weights towards zero (regularisation).")
    )
    momentum: float = field(default=0.9, metadata=_describe("SGD momentum."))
    num_epochs: int = field(default=10, metadata=_describe("Passes over the training images."))
    time_budget_minutes: float = field(
        default=0.0,
        metadata=_describe(
            "Train for about this many minutes instead of a number of epochs: a few steps are "
            "timed on this computer first and the epochs planned to fit (0 = use num_epochs)."
        ),
    )
    schedule: str = field(
        default="cosine", metadata=_describe("Learning-rate schedule.", choices=SCHEDULES)
    )
    warmup_epochs: float = field(
        default=0.0, metadata=_describe("Epochs of linear learning-rate warm-up.")
    )
    early_stopping_patience: int = field(
        default=0,
        metadata=_describe("Stop after this many epochs without improvement (0 = never)."),
    )
    gradient_clip_norm: float = field(
        default=0.0, metadata=_describe("Clip gradient norm (0 = off).")
    )
    evaluate_every_steps: int = field(
        default=0,
        metadata=_describe(
            "Also check the model on the validation pictures every this many steps "
            "(0 = only at the end of each epoch); for long epochs."
        ),
    )

    def validate(self) -> None:
        check_choice("optim.optimizer", self.optimizer, OPTIMIZERS)
        check_choice("optim.schedule", self.schedule, SCHEDULES)
        check_range("optim.learning_rate", self.learning_rate, 1e-8, 10.0, low_open=False)
        check_range("optim.weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("optim.momentum", self.momentum, 0.0, 0.999)
        check_range("optim.num_epochs", self.num_epochs, 1, 100_000)
        check_range("optim.time_budget_minutes", self.time_budget_minutes, 0.0, 7 * 24 * 60)
        check_range("optim.early_stopping_patience", self.early_stopping_patience, 0, 100_000)
        check_range("optim.gradient_clip_norm", self.gradient_clip_norm, 0.0, 1e6)
        check_range("optim.evaluate_every_steps", self.evaluate_every_steps, 0, 10**9)
        if not 0.0 <= self.warmup_epochs < self.num_epochs:
            raise ConfigError(
                "optim.warmup_epochs",
                f"must be at least 0 and less than num_epochs ({self.num_epochs}), got {self.warmup_epochs}",
            )


@dataclass(frozen=True)
class DeviceConfig:
    device: str = field(
        default="auto",
        metadata=_describe("auto picks CUDA, then Apple MPS, then CPU.", choices=DEVICES),
    )
    precision: str = field(
        default="auto",
        metadata=_describe(
            "Mixed precision (auto = bf16 where the GPU, or the processor natively, computes "
            "it; off = full precision).",
            choices=PRECISIONS,
        ),
    )
    cpu_threads: int = field(
        default=0,
        metadata=_describe(
            "CPU threads for training (0 = automatic: all cores while no other program is busy "
            "when the run starts, else all but one, so the computer stays usable)."
        ),
    )

    def validate(self) -> None:
        check_choice("device.device", self.device, DEVICES)
        check_choice("device.precision", self.precision, PRECISIONS)
        check_range("device.cpu_threads", self.cpu_threads, 0, 1024)


@dataclass(frozen=True)
class SavingConfig:
    checkpoint_every_steps: int = field(
        default=0,
        metadata=_describe(
            "Also save a checkpoint every this many steps (0 = only at epoch ends)."
        ),
    )
    checkpoint_every_minutes: float = field(
        default=10.0,
        metadata=_describe(
            "Also save a checkpoint when this many minutes passed since the last one (0 = off), "
            "so a crash loses little work."
        ),
    )
    tensorboard: bool = field(
        default=False,
        metadata=_describe(
            "Also write the curves as TensorBoard event files into the run folder's "
            "tensorboard/ (needs the tensorboardX package: pip install 'ptm-studio[tensorboard]')."
        ),
    )

    def validate(self) -> None:
        check_range("saving.checkpoint_every_steps", self.checkpoint_every_steps, 0, 10**9)
        check_range("saving.checkpoint_every_minutes", self.checkpoint_every_minutes, 0.0, 10**6)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    saving: SavingConfig = field(default_factory=SavingConfig)
    seed: int = field(
        default=0, metadata=_describe("Random seed: the same seed gives the same run on CPU.")
    )
    run_name: str | None = field(
        default=None, metadata=_describe("Name of the run folder (default: date and time).")
    )

    def for_another_run(self) -> RunConfig:
        """These settings without what belonged to one run only: its folder's name, and the
        consent to download ImageNet weights (asked again for each start that needs it)."""
        model = dataclasses.replace(self.model, allow_download=False)
        return dataclasses.replace(self, model=model, run_name=None)

    def with_absolute_paths(self) -> RunConfig:
        """These settings with each relative folder or file that exists here made absolute, so
        the run's config.json means the same from any working folder (evaluating, resuming or
        reporting later from elsewhere). A path that does not exist is kept as typed: it may
        be a run's name (weights=run), and an error should name it as the user wrote it."""
        data = dataclasses.replace(
            self.data,
            data_dir=_absolute_if_here(self.data.data_dir),
            monitor_dir=_absolute_if_here(self.data.monitor_dir),
        )
        model = dataclasses.replace(
            self.model, weights_path=_absolute_if_here(self.model.weights_path)
        )
        return dataclasses.replace(self, data=data, model=model)

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first bad field; return self so calls chain."""
        for section in (
            self.data,
            self.model,
            self.objective,
            self.optim,
            self.device,
            self.saving,
        ):
            section.validate()
        check_range("seed", self.seed, 0, 2**32 - 1)
        return self

    def to_dict(self) -> dict[str, Any]:
        payload = to_plain(self)
        payload["format_version"] = CONFIG_FORMAT_VERSION
        return payload

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RunConfig:
        payload = dict(payload)
        version = payload.pop("format_version", CONFIG_FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ConfigError(
                "format_version", f"must be a whole number such as 1, got {version!r}"
            )
        if version > CONFIG_FORMAT_VERSION:
            raise ConfigError(
                "format_version",
                f"this config was written by a newer PTM Studio (format {version}); please update the app",
            )
        return from_plain(cls, payload, prefix="")

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            payload = json.loads(text, object_pairs_hook=_refuse_repeated_settings)
        except RecursionError:
            raise ConfigError("<file>", "not valid JSON (nested far too deeply)") from None
        except ValueError as error:  # JSONDecodeError, a number of thousands of digits, a repeat
            reason = str(error)
            if "integer string conversion" in reason:
                reason = "a number in it has thousands of digits"
            raise ConfigError("<file>", f"not valid JSON ({reason[:200]})") from None
        if not isinstance(payload, dict):
            raise ConfigError("<file>", "expected a JSON object with the run settings")
        return cls.from_dict(payload)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """The config in a file; ConfigFileError when the file cannot be read (missing, a
        folder or a pipe, too large, not UTF-8 text, not JSON, not an object of settings)."""
        try:
            text = read_text(path, max_bytes=MAX_SETTINGS_FILE_BYTES)
        except FileNotFoundError:
            raise ConfigFileError(str(path), "there is no such file; check the path") from None
        except (OSError, UnreadableText) as error:
            reason = error.reason if isinstance(error, UnreadableText) else error.strerror
            raise ConfigFileError(str(path), str(reason or error)) from None
        try:
            return cls.from_json(text)
        except ConfigError as error:
            where = "" if error.field_path == "<file>" else f"setting {error.field_path}: "
            raise ConfigFileError(str(path), where + error.message) from None


def _refuse_repeated_settings(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A setting given twice is a mistake in the file (which one was meant?), not a choice."""
    settings: dict[str, Any] = {}
    for name, value in pairs:
        if name in settings:
            raise ValueError(f"'{name}' is given twice; keep one")
        settings[name] = value
    return settings


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "optim": OptimConfig,
    "device": DeviceConfig,
    "saving": SavingConfig,
}


def _absolute_if_here(path: str | None) -> str | None:
    if not path:
        return path
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or not candidate.exists():
        return str(candidate) if candidate.is_absolute() else path  # ~/pictures as the folder
    return str(candidate.absolute())
