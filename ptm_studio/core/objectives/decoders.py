"""Small heads that self-supervised objectives put on top of a backbone's pooled features."""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from torch import nn

DECODER_START_SIZE = 4
DECODER_START_CHANNELS = 128
DECODER_MIN_CHANNELS = 8


def decoded_size(image_size: int) -> int:
    """The side the decoder draws before any resize: the smallest 4·2ⁿ that is ≥ ``image_size``.

    Each upsampling stage doubles the side, so only these sizes come out exactly; any other size
    is drawn one step larger and shrunk to ``image_size`` (48 → 64 → 48).
    """
    if image_size < DECODER_START_SIZE:
        raise ValueError(
            f"Pictures must be at least {DECODER_START_SIZE} pixels wide to be redrawn, "
            f"got {image_size}."
        )
    size = DECODER_START_SIZE
    while size < image_size:
        size *= 2
    return size


def _upsampling_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    # Nearest upsampling then a 3×3 convolution avoids the checkerboard artefacts that strided
    # transposed convolutions leave (Odena et al. 2016); bias=False because BatchNorm shifts.
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FeatureDecoder(nn.Module):
    """Redraws a ``[B, 3, S, S]`` picture from a ``[B, F]`` feature vector.

    Linear(F → 128·4·4) → reshape to 128 × 4 × 4, then per stage: nearest upsample ×2, Conv3×3,
    BatchNorm, ReLU, halving the channels (never below 8) until the side reaches ``decoded_size``;
    a final 1×1 convolution to 3 channels with no activation, since the targets are normalised
    pictures that can be negative. About 0.6 M parameters for F = 256, S = 64.
    """

    def __init__(self, feature_dim: int, image_size: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.decoded_size = decoded_size(image_size)
        self.project = nn.Linear(
            feature_dim, DECODER_START_CHANNELS * DECODER_START_SIZE * DECODER_START_SIZE
        )
        stages: list[nn.Module] = []
        channels = DECODER_START_CHANNELS
        size = DECODER_START_SIZE
        while size < self.decoded_size:
            next_channels = max(channels // 2, DECODER_MIN_CHANNELS)
            stages.append(_upsampling_stage(channels, next_channels))
            channels = next_channels
            size *= 2
        self.stages = nn.Sequential(*stages)
        self.to_pixels = nn.Conv2d(channels, 3, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        grid = self.project(features).view(
            -1, DECODER_START_CHANNELS, DECODER_START_SIZE, DECODER_START_SIZE
        )
        pictures = self.to_pixels(self.stages(grid))
        if self.decoded_size != self.image_size:
            pictures = functional.interpolate(
                pictures,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return pictures


class ProjectionHead(nn.Module):
    """SimCLR's projection MLP: Linear(F → F), ReLU, Linear(F → P); the loss sees its output.

    The backbone features before this head transfer better than its output (Chen et al. 2020),
    which is why the head stays with the objective and is not saved with the backbone.
    """

    def __init__(self, feature_dim: int, projection_dim: int) -> None:
        super().__init__()
        if projection_dim < 1:
            raise ValueError(f"projection_dim must be at least 1, got {projection_dim}.")
        self.layers = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, projection_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
