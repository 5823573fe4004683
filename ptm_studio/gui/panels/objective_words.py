"""The objective panel's words: what each task, loss, optimiser and random change is, for a user."""

from __future__ import annotations

from ptm_studio.core.config import PRETRAIN_LOSSES, SUPERVISED_LOSSES

TASK_TEXT = {
    "finetune": (
        "Learn my classes (finetune)",
        "Train the network to tell your labelled classes apart.",
    ),
    "pretrain": (
        "Learn from unlabelled images (pretrain)",
        "Let the network learn what your images look like without labels, as a better start for later finetuning.",
    ),
}
OPTIMIZER_TEXT = {
    "adamw": ("AdamW (recommended)", "Adapts the step size per weight; a reliable default."),
    "adam": ("Adam", "Like AdamW, with the older form of weight decay."),
    "sgd": (
        "SGD with momentum",
        "Classic; can generalise well but needs a well-chosen learning rate.",
    ),
}
LOSS_TEXT = {
    "cross_entropy": (
        "Cross-entropy",
        "The standard loss for classification: how surprised the model is by the right answer.",
    ),
    "nt_xent": (
        "Contrastive (SimCLR)",
        "Learns that two random changes of the same picture belong together, and apart from "
        "the other pictures. Usually the best way to pretrain.",
    ),
    "contrastive_margin": (
        "Contrastive with a margin",
        "Pulls two views of the same picture together and pushes different pictures apart.",
    ),
    "reconstruction": (
        "Redraw the picture (autoencoder)",
        "Learns to redraw each picture from a short summary of it.",
    ),
    "rotation": (
        "Guess the rotation",
        "Learns to tell how far each picture was turned (0, 90, 180 or 270 degrees).",
    ),
}
LOSSES_FOR_TASK = {
    "finetune": SUPERVISED_LOSSES,
    "pretrain": PRETRAIN_LOSSES,
}
AUGMENTATION_NAMES = {
    "flip": "Flip",
    "small_rotations": "Small rotations",
    "colour_changes": "Colour changes",
    "random_crop": "Random crops",
}
"""Short names for the check boxes; config.AUGMENTATION_DESCRIPTIONS says what each does."""
