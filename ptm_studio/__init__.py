"""PTM Studio: train image classifiers on your own pictures, offline, by pointing and clicking."""

__version__ = "0.1.0"
