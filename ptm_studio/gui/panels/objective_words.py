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
    "moco": (
        "Contrastive with a memory (MoCo)",
        "As Contrastive (SimCLR), and also compares each picture with the last thousand or so "
        "pictures seen: better with small batches.",
    ),
    "vicreg": (
        "Variance-invariance (VICReg)",
        "Pulls two random changes of the same picture together and keeps the pictures' "
        "summaries varied, without comparing pictures: needs no large batches.",
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
SCHEDULE_TEXT = {
    "cosine": (
        "Falls smoothly (cosine, recommended)",
        "The learning rate falls smoothly from its value to almost nothing by the last epoch: "
        "steady last epochs.",
    ),
    "one_cycle": (
        "Rises, then falls (one cycle)",
        "The rate climbs to its value over the first third, then falls: often the quickest "
        "for networks trained from scratch.",
    ),
    "constant": ("Stays the same", "The same learning rate from the first step to the last."),
}
TRAIN_FOR_TEXT = {
    "epochs": ("Epochs", "Train for a number of passes over all training pictures."),
    "minutes": (
        "Minutes",
        "Train for about this long: a few steps are timed on this computer and the epochs "
        "planned to fit.",
    ),
}
SETTING_NAMES = {
    "model.backbone": "Network",
    "model.weights": "Starting weights",
    "model.weights_path": "Start from",
    "model.training_mode": "Which layers learn",
    "model.unfreeze_after_epochs": "All layers learn after",
    "model.backbone_learning_rate_factor": "Network's learning rate",
    "data.image_size": "Image size",
    "data.batch_size": "Batch size",
    "data.augmentations": "Random changes",
    "optim.optimizer": "Optimiser",
    "optim.learning_rate": "Learning rate",
    "optim.schedule": "Learning-rate schedule",
    "optim.warmup_epochs": "Warm-up epochs",
    "optim.num_epochs": "Epochs",
    "optim.time_budget_minutes": "Train for (minutes)",
    "optim.early_stopping_patience": "Stop when no better for (epochs)",
    "objective.label_smoothing": "Label smoothing",
    "objective.use_class_weights": "Weigh rare classes up",
    "data.balanced_sampling": "Draw classes equally often",
}
"""Auto's choices named as the window names the settings (not the config's dotted names)."""
