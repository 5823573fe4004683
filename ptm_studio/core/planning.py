"""Choices made before a run starts: Auto's settings, a backbone's usual image size, and a rough
time estimate. The window shows them; the decisions live here so the command line and a future
Auto recipe make the same ones."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ptm_studio.core.config import RunConfig
from ptm_studio.core.data.problems import IMBALANCE_WARNING_RATIO
from ptm_studio.core.models import get_backbone_spec

GPU_KINDS = ("cuda", "mps")
CPU_IMAGE_SIZE_LIMIT = 128  # larger pictures make a CPU epoch take many minutes


@dataclass(frozen=True)
class DataFacts:
    """What Auto looks at: how many pictures train and how they spread over the classes."""

    num_train_images: int
    class_counts: tuple[int, ...] = ()

    @property
    def is_imbalanced(self) -> bool:
        """The largest class at least as many times the smallest as the scan warns about."""
        counts = [count for count in self.class_counts if count > 0]
        return bool(counts) and max(counts) >= IMBALANCE_WARNING_RATIO * min(counts)


def with_backbone(config: RunConfig, backbone: str) -> RunConfig:
    """``config`` with another network, at the image size that network usually works with."""
    spec = get_backbone_spec(backbone)
    model = replace(config.model, backbone=spec.name)
    data = replace(config.data, image_size=int(spec.default_image_size or config.data.image_size))
    return replace(config, model=model, data=data)


def auto_settings(config: RunConfig, facts: DataFacts, device_kind: str) -> RunConfig:
    """Sensible settings for these pictures, this network and this computer; the choices a
    domain expert should not have to make (the network and the weights stay as chosen)."""
    images = facts.num_train_images
    is_gpu = device_kind in GPU_KINDS
    spec = get_backbone_spec(config.model.backbone)
    image_size = int(spec.default_image_size or 64)
    if not is_gpu:
        image_size = min(image_size, CPU_IMAGE_SIZE_LIMIT)
    batch_size = 64 if is_gpu else 32
    if images:
        batch_size = max(4, min(batch_size, 2 ** int(math.log2(max(4, images // 4)))))
    num_classes = len([count for count in facts.class_counts if count > 0])
    augmentations = ["flip", "small_rotations"]
    if images > 200:
        augmentations.append("colour_changes")
    return replace(
        config,
        data=replace(
            config.data,
            image_size=image_size,
            batch_size=batch_size,
            augmentations=tuple(augmentations),
        ),
        objective=replace(
            config.objective,
            use_class_weights=facts.is_imbalanced,
            label_smoothing=0.1 if num_classes > 10 else 0.0,
        ),
        optim=replace(
            config.optim,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-4,
            num_epochs=30 if images < 300 else 15 if images < 3000 else 8,
        ),
    )


def estimate_images_per_second(parameter_count: int, image_size: int, device_kind: str) -> float:
    """A deliberately rough guess, used until a run on this computer has been measured."""
    scale = max(1.0, parameter_count / 1e5) ** 0.8 * (image_size / 64) ** 2
    speed = min(3000.0, 20000.0 / scale)
    return speed * (20.0 if device_kind in GPU_KINDS else 1.0)
