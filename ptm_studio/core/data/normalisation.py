"""The colour statistics pictures are normalised with: plain numbers, no torch, so the model
catalogue (and the window) can name them before torch has loaded."""

from __future__ import annotations

# ImageNet's mean and standard deviation per channel (red, green, blue), as torchvision uses.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
