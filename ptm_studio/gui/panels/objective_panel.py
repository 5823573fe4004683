"""ObjectivePanel: what the training optimises and how (task, loss, optimiser, schedule sizes,
augmentation), bound to the window's SettingsModel.

Plain by default: the task, the loss, how long to train (epochs or minutes) and Auto are
always shown; the settings a non-programmer need not touch (optimiser, learning rate, schedule,
batch and image size, random changes, seed, the pretraining losses' own numbers) sit in an
Advanced section, closed until opened, each with a tooltip in plain words.

"Auto" asks the core for sensible values for the data and the device; the estimate under the
form says roughly how long one epoch will take before anything starts. "Find a learning
rate…" beside the learning-rate box runs the learning-rate test on the settings shown and offers
its suggestion (see RateFinderView).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from PySide6.QtCore import QEvent, Qt, Slot
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QWidget,
)

from ptm_studio.core.config import AUGMENTATION_DESCRIPTIONS, SUPERVISED_LOSSES, RunConfig
from ptm_studio.gui import theme
from ptm_studio.gui.panels.auto_choices import AutoChoices
from ptm_studio.gui.panels.objective_boxes import combo, double_box, int_box
from ptm_studio.gui.panels.objective_words import (
    AUGMENTATION_NAMES,
    LOSS_TEXT,
    LOSSES_FOR_TASK,
    OPTIMIZER_TEXT,
    TASK_TEXT,
)
from ptm_studio.gui.panels.pretrain_settings import TWO_VIEW_LOSSES, PretrainSettings
from ptm_studio.gui.panels.schedule_settings import ScheduleSettings
from ptm_studio.gui.plain_text import plain_label, tall_enough_label
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.widgets.collapsible_section import CollapsibleSection
from ptm_studio.gui.widgets.duration_estimate import DurationEstimate
from ptm_studio.gui.widgets.rate_finder_view import RateFinderView
from ptm_studio.gui.widgets.settings_binding import (
    Showing,
    keep_unedited,
    show_checked,
    show_choice,
    show_number,
)


class ObjectivePanel(QGroupBox):
    def __init__(
        self, settings: SettingsModel | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__("3. Objective and schedule", parent)
        self.settings = settings or SettingsModel(parent=self)
        self._showing = Showing()
        self._shown = self.settings.config  # what the boxes showed (see keep_unedited)
        self._num_train_images = 0
        self._class_counts: tuple[int, ...] = ()
        self._backbone_spec: Any = None
        self._device_kind = "cpu"
        self._measured_speed: dict[tuple[str, int], float] = {}
        self._picture_facts: Any = None
        self._device_known = False
        self._auto_for_new_user: RunConfig | None = None  # the untouched settings, while waiting
        self._build_boxes()
        self._lay_out()
        # The task and the loss write through _on_task_changed / _on_loss_changed: the losses
        # offered follow the task, and both must reach the settings together.
        self.optimizer_combo.currentIndexChanged.connect(self._write)
        for spin in (
            self.smoothing_spin,
            self.learning_rate_spin,
            self.weight_decay_spin,
            self.batch_spin,
            self.image_size_spin,
            self.seed_spin,
        ):
            spin.valueChanged.connect(self._write)
        for check in (
            self.class_weights_check,
            self.balanced_check,
            self.keep_colours_check,
            self.tensorboard_check,
        ):
            check.toggled.connect(self._write)
        for check in self.augmentation_checks.values():
            check.toggled.connect(self._write)
        self.pretrain_settings.settings_changed.connect(self._write)
        self.schedule.settings_changed.connect(self._write)
        self.loss_combo.currentIndexChanged.connect(self._on_loss_changed)
        self.task_combo.currentIndexChanged.connect(self._on_task_changed)
        self.settings.changed.connect(self.show_settings)
        self.show_settings(self.settings.config)

    def _build_boxes(self) -> None:
        self.task_combo = combo(TASK_TEXT, "What the training should achieve.")
        self.loss_combo = QComboBox()
        self.loss_combo.setToolTip("What the network is scored on while it learns.")
        self.loss_info = plain_label()
        self.loss_info.setObjectName("hint")
        self.keep_colours_check = QCheckBox("Keep colours when changing pictures")
        self.keep_colours_check.setToolTip(
            "For contrastive pretraining: never change hue or turn pictures grey. Use it when "
            "colour tells your classes apart (flowers, stained tissue)."
        )
        self.pretrain_settings = PretrainSettings(self)
        self.smoothing_spin = double_box(
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
        self.balanced_check = QCheckBox("Draw classes equally often")
        self.balanced_check.setToolTip(
            "Show the network every class about as often, repeating a rare class's pictures: "
            "for classes of very different sizes (use this or the weighing, not both)."
        )
        self.optimizer_combo = combo(OPTIMIZER_TEXT, "The method that updates the weights.")
        self.learning_rate_spin = double_box(
            1e-6,
            1.0,
            1e-4,
            6,
            "How big each learning step is. "
            "Too high: the loss jumps or explodes. Too low: learning is slow.",
        )
        self.learning_rate_spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.weight_decay_spin = double_box(
            0.0, 1.0, 1e-4, 5, "Pulls weights towards zero to reduce memorising."
        )
        self.weight_decay_spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.schedule = ScheduleSettings(self)
        self.epochs_spin = self.schedule.epochs_spin
        self.minutes_spin = self.schedule.minutes_spin
        self.batch_spin = int_box(
            1, 4096, "Images per learning step. Larger is faster per image but needs more memory."
        )
        self.image_size_spin = int_box(
            8, 1024, "Images are resized to this many pixels square before training."
        )
        self.image_size_spin.setSuffix(" px")
        # A double box: seeds go up to 2**32 - 1, beyond what Qt's whole-number boxes hold.
        self.seed_spin = double_box(
            0, 2**32 - 1, 1, 0, "The same seed gives the same run again (on the CPU)."
        )
        self.tensorboard_check = QCheckBox("Also write TensorBoard logs")
        self.tensorboard_check.setToolTip(
            "For people who already use TensorBoard: the curves also go into the run folder's "
            "tensorboard/ folder (needs the tensorboardX package; the run says so if it is "
            "missing)."
        )
        self.augmentation_checks: dict[str, QCheckBox] = {}
        for key, name in AUGMENTATION_NAMES.items():
            check = QCheckBox(name)
            check.setToolTip(AUGMENTATION_DESCRIPTIONS[key])
            self.augmentation_checks[key] = check
        self.auto_button = QPushButton(theme.icon("auto"), "Auto")
        self.auto_button.setToolTip("Pick sensible values for this dataset, network and computer.")
        self.auto_button.clicked.connect(self.apply_auto)
        self.auto_reasons = tall_enough_label()
        self.auto_reasons.setObjectName("hint")
        self.auto_reasons.setVisible(False)
        self.estimate_label = plain_label()
        self.estimate_label.setObjectName("hint")
        self.duration = DurationEstimate(self.estimate_label, self)
        self.rate_finder = RateFinderView()
        self.rate_finder.job.running_changed.connect(self.duration.set_paused)
        self.rate_finder.find_button.clicked.connect(self.find_learning_rate)
        self.rate_finder.rate_chosen.connect(self.use_learning_rate)
        self.auto = AutoChoices(self.settings, self.rate_finder, self.auto_reasons)

    def _lay_out(self) -> None:
        augmentation_box = QWidget()
        grid = QGridLayout(augmentation_box)
        grid.setContentsMargins(0, 0, 0, 0)
        for index, check in enumerate(self.augmentation_checks.values()):
            grid.addWidget(check, index // 2, index % 2)
        plain = QFormLayout(self)
        plain.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        plain.addRow("Task:", self.task_combo)
        plain.addRow("Loss:", self.loss_combo)
        plain.addRow("", self.loss_info)
        plain.addRow("", self.keep_colours_check)
        self.schedule.add_plain_rows(plain)
        plain.addRow(self.auto_button, self.estimate_label)
        plain.addRow(self.auto_reasons)
        self.advanced = CollapsibleSection(
            "Advanced settings",
            "The optimiser, learning rate, schedule, sizes, random changes, seed and "
            "TensorBoard logs: Auto and the defaults choose them well; open to change them.",
        )
        plain.addRow(self.advanced)
        form = self._form = self.advanced_form = QFormLayout(self.advanced.body)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.pretrain_settings.add_rows(form)
        form.addRow("Label smoothing:", self.smoothing_spin)
        form.addRow("", self.class_weights_check)
        form.addRow("", self.balanced_check)
        form.addRow("Optimiser:", self.optimizer_combo)
        learning_rate_row = QHBoxLayout()
        learning_rate_row.addWidget(self.learning_rate_spin, 1)
        learning_rate_row.addWidget(self.rate_finder.find_button)
        form.addRow("Learning rate:", learning_rate_row)
        form.addRow(self.rate_finder)
        form.addRow("Weight decay:", self.weight_decay_spin)
        self.schedule.add_advanced_rows(form)
        form.addRow("Batch size:", self.batch_spin)
        form.addRow("Image size:", self.image_size_spin)
        form.addRow("Random changes:", augmentation_box)
        form.addRow("Seed:", self.seed_spin)
        form.addRow("", self.tensorboard_check)
        self._supervised_rows = (self.smoothing_spin, self.class_weights_check, self.balanced_check)

    # ------------------------------------------------------------------ task and loss
    @Slot()
    def _on_task_changed(self) -> None:
        task = self.task_combo.currentData()
        is_finetune = task == "finetune"
        for widget in self._supervised_rows:
            widget.setEnabled(is_finetune)
            self._form.setRowVisible(widget, is_finetune)  # hidden: a shorter pretraining form
        losses = LOSSES_FOR_TASK.get(task, SUPERVISED_LOSSES)
        offered = tuple(self.loss_combo.itemData(i) for i in range(self.loss_combo.count()))
        if offered == tuple(losses):
            self._on_loss_changed()
            return
        previous = self.loss_combo.currentData()
        self.loss_combo.blockSignals(True)
        self.loss_combo.clear()
        for key in losses:
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
        self.keep_colours_check.setVisible(loss in TWO_VIEW_LOSSES)
        self.pretrain_settings.show_for(self.task_combo.currentData(), loss)
        self._write()

    # ------------------------------------------------------------------ what the window tells it
    def set_dataset(
        self, num_train_images: int, class_counts: list[int], picture_facts: Any = None
    ) -> None:
        """The pictures the estimate and Auto go by (the task a folder needs is the images
        panel's to set: see FolderTask)."""
        self._num_train_images = num_train_images
        self._class_counts = tuple(class_counts)
        self._picture_facts = picture_facts
        self.update_estimate()
        self._auto_if_new_user()

    def set_task(self, task: str, loss: str) -> None:
        """Select ``task`` and ``loss`` as a user would: they are written with what the other
        boxes hold for that task (the folder kept for pretraining comes along)."""
        with self._showing.active():
            show_choice(self.task_combo, task)
            self._on_task_changed()  # the losses offered depend on the task
            show_choice(self.loss_combo, loss)
            self._on_loss_changed()
        self._write()

    @Slot(object)
    def set_backbone(self, spec: Any) -> None:
        """The chosen network (its size makes the estimate)."""
        self._backbone_spec = spec
        self.update_estimate()

    @Slot(object)
    def show_device(self, info: object) -> None:
        """The device the check at launch found (a DeviceInfo): it changes the estimate."""
        self.set_device_kind(str(getattr(info, "kind", "cpu")))

    def set_device_kind(self, kind: str) -> None:
        self._device_kind = kind
        self._device_known = True
        self.update_estimate()
        self._auto_if_new_user()

    def auto_for_a_new_user(self) -> None:
        """Auto is a new user's default: once the first folder's facts and the computer are
        known, Auto chooses, unless the user changed a setting by then (theirs is kept)."""
        self._auto_for_new_user = self.settings.config

    def _auto_if_new_user(self) -> None:
        untouched = self._auto_for_new_user
        if untouched is None or self._picture_facts is None or not self._device_known:
            return
        self._auto_for_new_user = None
        current = self.settings.config
        if _without_folder(current) == _without_folder(untouched) and (
            current.objective.task == "finetune"
        ):
            self.apply_auto()

    def remember_speed(self, backbone: str, image_size: int, images_per_second: float) -> None:
        if math.isfinite(images_per_second) and images_per_second > 0:
            self._measured_speed[(backbone, image_size)] = images_per_second
            self.update_estimate()

    @Slot()
    def apply_auto(self) -> None:
        """Sensible values from the number of images, class balance, network and device."""
        if self._picture_facts is not None:
            self.auto.apply(self._picture_facts, self._device_kind)
            return
        from ptm_studio.core.planning import DataFacts, auto_settings

        facts = DataFacts(self._num_train_images, self._class_counts)
        self.settings.replace(auto_settings(self.settings.config, facts, self._device_kind))

    @Slot()
    def find_learning_rate(self) -> None:
        """The learning-rate test on the settings shown, in the background."""
        self.rate_finder.start_test(self.settings.config)

    @Slot(float)
    def use_learning_rate(self, rate: float) -> None:
        """The user took the test's suggestion: it is their setting now, as if typed."""
        self.settings.set("optim.learning_rate", rate)

    def shutdown(self) -> None:
        """Stop a learning-rate test or a speed measurement still running and wait (closing)."""
        self.rate_finder.shutdown()
        self.duration.shutdown()

    def changeEvent(self, event: QEvent) -> None:
        # Disabled while a run trains: no measuring then (it would slow the run and itself).
        if event.type() == QEvent.Type.EnabledChange:
            self.duration.set_paused(not self.isEnabled())
        super().changeEvent(event)

    @Slot()
    def update_estimate(self) -> None:
        images = self._num_train_images
        if images <= 0:
            self.estimate_label.setText("Choose a dataset to see how long an epoch will take.")
            return
        from ptm_studio.core.planning import estimate_images_per_second

        spec = self._backbone_spec
        size = self.settings.config.data.image_size
        speed = self._measured_speed.get((getattr(spec, "name", ""), size))
        how = "measured on this computer"
        if speed is None:
            parameters = int(getattr(spec, "parameter_count", 1e5) or 1e5)
            speed = estimate_images_per_second(parameters, size, self._device_kind)
            how = "rough guess"
        # The guess is shown at once; a measurement on this computer replaces it moments later.
        self.duration.show(self.settings.config, images / speed, how)

    # ------------------------------------------------------------------ settings in and out
    @Slot(object)
    def show_settings(self, config: RunConfig) -> None:
        """Show ``config`` in the boxes (they write nothing back while they are being set)."""
        with self._showing.active():
            show_choice(self.task_combo, config.objective.task)
            self._on_task_changed()  # the losses offered depend on the task
            show_choice(self.loss_combo, config.objective.loss)
            show_choice(self.optimizer_combo, config.optim.optimizer)
            show_number(self.smoothing_spin, config.objective.label_smoothing)
            show_checked(self.class_weights_check, config.objective.use_class_weights)
            show_checked(self.balanced_check, config.data.balanced_sampling)
            show_checked(self.keep_colours_check, config.objective.keep_colours)
            show_number(self.learning_rate_spin, config.optim.learning_rate)
            show_number(self.weight_decay_spin, config.optim.weight_decay)
            self.schedule.show_settings(config)
            show_number(self.batch_spin, config.data.batch_size)
            show_number(self.image_size_spin, config.data.image_size)
            show_number(self.seed_spin, config.seed)
            show_checked(self.tensorboard_check, config.saving.tensorboard)
            for key, check in self.augmentation_checks.items():
                show_checked(check, key in config.data.augmentations)
            self.pretrain_settings.show_settings(config)
            self._on_loss_changed()
        self._shown = self.apply_to(config)
        self.rate_finder.show_learning_rate(config.optim.learning_rate)
        self.auto.show(config)
        self.update_estimate()

    @Slot()
    def _write(self) -> None:
        if not self._showing:
            edited = self.apply_to(self.settings.config)
            self.settings.update(lambda current: keep_unedited(current, self._shown, edited))

    def apply_to(self, config: RunConfig) -> RunConfig:
        """``config`` with the values of this panel's boxes."""
        augmentations = tuple(
            key for key, check in self.augmentation_checks.items() if check.isChecked()
        )
        data = dataclasses.replace(
            config.data,
            image_size=self.image_size_spin.value(),
            batch_size=self.batch_spin.value(),
            augmentations=augmentations,
            balanced_sampling=self.balanced_check.isChecked(),
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
        )
        saving = dataclasses.replace(config.saving, tensorboard=self.tensorboard_check.isChecked())
        config = dataclasses.replace(
            config,
            data=data,
            objective=objective,
            optim=optim,
            saving=saving,
            seed=int(self.seed_spin.value()),
        )
        return self.pretrain_settings.apply_to(self.schedule.apply_to(config))


def _without_folder(config: RunConfig) -> RunConfig:
    return dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=None))


def _preview() -> None:  # pragma: no cover - manual preview
    from ptm_studio.gui.panels._preview import run_preview

    def build() -> ObjectivePanel:
        panel = ObjectivePanel()
        panel.set_dataset(1200, [400, 500, 300])
        return panel

    run_preview(build, size=(480, 560))


if __name__ == "__main__":
    _preview()
