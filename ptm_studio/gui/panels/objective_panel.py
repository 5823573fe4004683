"""ObjectivePanel: what the training optimises and how (task, loss, optimiser, schedule sizes, augmentation).

"Auto" fills sane values for the data and the device; the estimate under the form says roughly
how long one epoch will take before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ptm_studio.core.config import PRETRAIN_LOSSES, SUPERVISED_LOSSES, RunConfig
from ptm_studio.gui import theme
from ptm_studio.gui.panels.pretrain_settings import PretrainSettings
from ptm_studio.gui.panels.training_panel import format_duration

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
AUGMENTATION_TEXT = {
    "flip": (
        "Flip",
        "Mirror images left–right at random. Off if left and right matter (e.g. text).",
    ),
    "small_rotations": ("Small rotations", "Turn images a few degrees at random."),
    "colour_changes": ("Colour changes", "Vary brightness, contrast and colour a little."),
    "random_crop": ("Random crops", "Zoom in on a random part of each image."),
}


def _plain_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setWordWrap(True)
    return label


def estimate_images_per_second(parameter_count: int, image_size: int, device_kind: str) -> float:
    """A deliberately rough guess (replaced by the measured speed once a run has been seen)."""
    scale = max(1.0, parameter_count / 1e5) ** 0.8 * (image_size / 64) ** 2
    speed = min(3000.0, 20000.0 / scale)
    return speed * (20.0 if device_kind in ("cuda", "mps") else 1.0)


class ObjectivePanel(QGroupBox):
    settings_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("3. Objective and schedule", parent)
        self._num_train_images = 0
        self._class_counts: list[int] = []
        self._backbone_spec: Any = None
        self._device_kind = "cpu"
        self._measured_speed: dict[tuple[str, int], float] = {}

        self.task_combo = self._combo(TASK_TEXT, "What the training should achieve.")
        self.loss_combo = QComboBox()
        self.loss_combo.setToolTip("What the network is scored on while it learns.")
        self.loss_info = _plain_label("")
        self.loss_info.setObjectName("hint")
        self.keep_colours_check = QCheckBox("Keep colours when changing pictures")
        self.keep_colours_check.setToolTip(
            "For contrastive pretraining: never change hue or turn pictures grey. Use it when colour "
            "tells your classes apart (flowers, stained tissue)."
        )
        self.pretrain_settings = PretrainSettings(self)
        self.smoothing_spin = self._double(
            0.0,
            0.5,
            0.05,
            2,
            "Soften the targets a little (0 = off, 0.1 is common); "
            "helps when some labels may be wrong.",
        )
        self.class_weights_check = QCheckBox("Weigh rare classes up")
        self.class_weights_check.setToolTip(
            "Count mistakes on rare classes more, so an imbalanced dataset trains fairly."
        )
        self.optimizer_combo = self._combo(OPTIMIZER_TEXT, "The method that updates the weights.")
        self.learning_rate_spin = self._double(
            1e-6,
            1.0,
            1e-4,
            6,
            "How big each learning step is. "
            "Too high: the loss jumps or explodes. Too low: learning is slow.",
        )
        self.learning_rate_spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.weight_decay_spin = self._double(
            0.0, 1.0, 1e-4, 5, "Pulls weights towards zero to reduce memorising."
        )
        self.weight_decay_spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.epochs_spin = self._int(1, 10_000, "Passes over all training images.")
        self.batch_spin = self._int(
            1, 4096, "Images per learning step. Larger is faster per image but needs more memory."
        )
        self.image_size_spin = self._int(
            8, 1024, "Images are resized to this many pixels square before training."
        )
        self.image_size_spin.setSuffix(" px")
        self.seed_spin = self._int(
            0, 2**31 - 1, "The same seed gives the same run again (on the CPU)."
        )
        self.augmentation_checks: dict[str, QCheckBox] = {}
        augmentation_box = QWidget()
        grid = QGridLayout(augmentation_box)
        grid.setContentsMargins(0, 0, 0, 0)
        for index, (key, (text, tip)) in enumerate(AUGMENTATION_TEXT.items()):
            check = QCheckBox(text)
            check.setToolTip(tip)
            check.toggled.connect(self.settings_changed)
            self.augmentation_checks[key] = check
            grid.addWidget(check, index // 2, index % 2)
        self.auto_button = QPushButton(theme.icon("auto"), "Auto")
        self.auto_button.setToolTip("Pick sensible values for this dataset, network and computer.")
        self.auto_button.clicked.connect(self.apply_auto)
        self.estimate_label = _plain_label("")
        self.estimate_label.setObjectName("hint")

        form = self._form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Task:", self.task_combo)
        form.addRow("Loss:", self.loss_combo)
        form.addRow("", self.loss_info)
        form.addRow("", self.keep_colours_check)
        self.pretrain_settings.add_rows(form)
        form.addRow("Label smoothing:", self.smoothing_spin)
        form.addRow("", self.class_weights_check)
        form.addRow("Optimiser:", self.optimizer_combo)
        form.addRow("Learning rate:", self.learning_rate_spin)
        form.addRow("Weight decay:", self.weight_decay_spin)
        form.addRow("Epochs:", self.epochs_spin)
        form.addRow("Batch size:", self.batch_spin)
        form.addRow("Image size:", self.image_size_spin)
        form.addRow("Random changes:", augmentation_box)
        form.addRow("Seed:", self.seed_spin)
        form.addRow(self.auto_button, self.estimate_label)
        self._supervised_rows = (self.smoothing_spin, self.class_weights_check)
        for widget in (self.task_combo, self.loss_combo, self.optimizer_combo):
            widget.currentIndexChanged.connect(self.settings_changed)
        for widget in (self.smoothing_spin, self.learning_rate_spin, self.weight_decay_spin):
            widget.valueChanged.connect(self.settings_changed)
        for widget in (self.epochs_spin, self.batch_spin, self.image_size_spin, self.seed_spin):
            widget.valueChanged.connect(self.settings_changed)
        self.class_weights_check.toggled.connect(self.settings_changed)
        self.keep_colours_check.toggled.connect(self.settings_changed)
        self.pretrain_settings.settings_changed.connect(self.settings_changed)
        self.loss_combo.currentIndexChanged.connect(self._on_loss_changed)
        self.task_combo.currentIndexChanged.connect(self._on_task_changed)
        self.settings_changed.connect(self.update_estimate)
        self.load_from(RunConfig())

    def _combo(self, entries: dict[str, tuple[str, str]], tip: str) -> QComboBox:
        combo = QComboBox()
        for key, (text, item_tip) in entries.items():
            combo.addItem(text, key)
            combo.setItemData(combo.count() - 1, item_tip, Qt.ItemDataRole.ToolTipRole)
        combo.setToolTip(tip)
        return combo

    def _double(
        self, low: float, high: float, step: float, decimals: int, tip: str
    ) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(low, high)
        spin.setDecimals(decimals)
        spin.setSingleStep(step)
        spin.setToolTip(tip)
        return spin

    def _int(self, low: int, high: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setToolTip(tip)
        return spin

    @Slot()
    def _on_task_changed(self) -> None:
        task = self.task_combo.currentData()
        is_finetune = task == "finetune"
        for widget in self._supervised_rows:
            widget.setEnabled(is_finetune)
            self._form.setRowVisible(widget, is_finetune)  # hidden: a shorter pretraining form
        previous = self.loss_combo.currentData()
        self.loss_combo.blockSignals(True)
        self.loss_combo.clear()
        for key in LOSSES_FOR_TASK.get(task, SUPERVISED_LOSSES):
            text, tip = LOSS_TEXT.get(key, (key, ""))
            self.loss_combo.addItem(text, key)
            self.loss_combo.setItemData(
                self.loss_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.loss_combo.setCurrentIndex(max(0, self.loss_combo.findData(previous)))
        self.loss_combo.blockSignals(False)
        self._on_loss_changed()

    @Slot()
    def _on_loss_changed(self) -> None:
        loss = self.loss_combo.currentData()
        self.loss_info.setText(LOSS_TEXT.get(loss, ("", ""))[1])
        self.keep_colours_check.setVisible(loss in ("nt_xent", "contrastive_margin"))
        self.pretrain_settings.show_for(self.task_combo.currentData(), loss)
        self.settings_changed.emit()

    def set_dataset(
        self, num_train_images: int, class_counts: list[int], *, is_labeled: bool = True
    ) -> None:
        self._num_train_images = num_train_images
        self._class_counts = list(class_counts)
        if not is_labeled:
            self.task_combo.setCurrentIndex(self.task_combo.findData("pretrain"))
        self.update_estimate()

    @Slot(object)
    def set_backbone(self, spec: Any) -> None:
        self._backbone_spec = spec
        if spec is not None and getattr(spec, "default_image_size", None):
            self.image_size_spin.setValue(int(spec.default_image_size))
        self.update_estimate()

    def set_device_kind(self, kind: str) -> None:
        self._device_kind = kind
        self.update_estimate()

    def remember_speed(self, backbone: str, image_size: int, images_per_second: float) -> None:
        if math.isfinite(images_per_second) and images_per_second > 0:
            self._measured_speed[(backbone, image_size)] = images_per_second
            self.update_estimate()

    @Slot()
    def apply_auto(self) -> None:
        """Sensible values from the number of images, class balance, network and device."""
        images = self._num_train_images
        is_gpu = self._device_kind in ("cuda", "mps")
        spec = self._backbone_spec
        image_size = int(getattr(spec, "default_image_size", 64) or 64)
        if not is_gpu:
            image_size = min(image_size, 128)
        batch = 64 if is_gpu else 32
        if images:
            batch = max(4, min(batch, 2 ** int(math.log2(max(4, images // 4)))))
        epochs = 30 if images < 300 else 15 if images < 3000 else 8
        self.optimizer_combo.setCurrentIndex(self.optimizer_combo.findData("adamw"))
        self.learning_rate_spin.setValue(1e-3)
        self.weight_decay_spin.setValue(1e-4)
        self.epochs_spin.setValue(epochs)
        self.batch_spin.setValue(batch)
        self.image_size_spin.setValue(image_size)
        counts = [count for count in self._class_counts if count > 0]
        is_imbalanced = bool(counts) and max(counts) > 3 * min(counts)
        self.class_weights_check.setChecked(is_imbalanced)
        self.smoothing_spin.setValue(0.1 if len(counts) > 10 else 0.0)
        for key, check in self.augmentation_checks.items():
            check.setChecked(
                key in ("flip", "small_rotations") or (key == "colour_changes" and images > 200)
            )
        self.update_estimate()

    @Slot()
    def update_estimate(self) -> None:
        images = self._num_train_images
        if images <= 0:
            self.estimate_label.setText("Choose a dataset to see how long an epoch will take.")
            return
        spec = self._backbone_spec
        name = getattr(spec, "name", "")
        size = self.image_size_spin.value()
        speed = self._measured_speed.get((name, size))
        how = "measured on this computer"
        if speed is None:
            speed = estimate_images_per_second(
                int(getattr(spec, "parameter_count", 1e5) or 1e5), size, self._device_kind
            )
            how = "rough guess"
        per_epoch = images / speed
        total = per_epoch * self.epochs_spin.value()
        self.estimate_label.setText(
            f"About {format_duration(per_epoch)} per epoch, {format_duration(total)} in all ({how})."
        )

    def apply_to(self, config: RunConfig) -> RunConfig:
        augmentations = tuple(
            key for key, check in self.augmentation_checks.items() if check.isChecked()
        )
        data = dataclasses.replace(
            config.data,
            image_size=self.image_size_spin.value(),
            batch_size=self.batch_spin.value(),
            augmentations=augmentations,
        )
        objective = dataclasses.replace(
            config.objective,
            task=self.task_combo.currentData(),
            loss=self.loss_combo.currentData(),
            label_smoothing=round(self.smoothing_spin.value(), 4),
            use_class_weights=self.class_weights_check.isChecked(),
            keep_colours=self.keep_colours_check.isChecked(),
        )
        optim = dataclasses.replace(
            config.optim,
            optimizer=self.optimizer_combo.currentData(),
            learning_rate=self.learning_rate_spin.value(),
            weight_decay=self.weight_decay_spin.value(),
            num_epochs=self.epochs_spin.value(),
        )
        config = dataclasses.replace(
            config, data=data, objective=objective, optim=optim, seed=self.seed_spin.value()
        )
        return self.pretrain_settings.apply_to(config)

    def load_from(self, config: RunConfig) -> None:
        for combo, value in (
            (self.task_combo, config.objective.task),
            (self.loss_combo, config.objective.loss),
            (self.optimizer_combo, config.optim.optimizer),
        ):
            index = combo.findData(value)
            if index >= 0:
                combo.setCurrentIndex(index)
        self.smoothing_spin.setValue(config.objective.label_smoothing)
        self.class_weights_check.setChecked(config.objective.use_class_weights)
        self.keep_colours_check.setChecked(config.objective.keep_colours)
        self.learning_rate_spin.setValue(config.optim.learning_rate)
        self.weight_decay_spin.setValue(config.optim.weight_decay)
        self.epochs_spin.setValue(config.optim.num_epochs)
        self.batch_spin.setValue(config.data.batch_size)
        self.image_size_spin.setValue(config.data.image_size)
        self.seed_spin.setValue(config.seed)
        for key, check in self.augmentation_checks.items():
            check.setChecked(key in config.data.augmentations)
        self.pretrain_settings.load_from(config)
        self._on_task_changed()


def _preview() -> None:  # pragma: no cover - manual preview
    from ptm_studio.gui.panels._preview import run_preview

    def build() -> ObjectivePanel:
        panel = ObjectivePanel()
        panel.set_dataset(1200, [400, 500, 300])
        return panel

    run_preview(build, size=(480, 560))


if __name__ == "__main__":
    _preview()
