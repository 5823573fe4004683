"""PTM Studio's own small convolutional network: trains from scratch on a CPU in minutes."""

from __future__ import annotations

import torch
from torch import nn

SMALL_CNN_CHANNELS = (32, 64, 128, 256)
SMALL_CNN_FEATURE_DIM = SMALL_CNN_CHANNELS[-1]


def _convolution_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    # bias=False because the BatchNorm right after has its own shift.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def _stage(in_channels: int, out_channels: int, *, num_convolutions: int) -> nn.Sequential:
    layers = _convolution_block(in_channels, out_channels)
    for _ in range(num_convolutions - 1):
        layers += _convolution_block(out_channels, out_channels)
    layers.append(nn.MaxPool2d(kernel_size=2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Four stages of 3×3 convolutions (32, 64, 128, 256 channels), then global average pooling.

    The first stage has one convolution, the others two: most of the compute at full resolution
    would go to the first stage otherwise. Global pooling makes any input of 16 px or more work;
    the output is a ``[batch, 256]`` feature vector.
    """

    def __init__(self) -> None:
        super().__init__()
        stages = []
        in_channels = 3
        for index, out_channels in enumerate(SMALL_CNN_CHANNELS):
            stages.append(
                _stage(in_channels, out_channels, num_convolutions=1 if index == 0 else 2)
            )
            in_channels = out_channels
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self._initialise_weights()

    def _initialise_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(self.features(images)))
