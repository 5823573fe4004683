"""ModelPanel: which network, where its starting weights come from, and which layers learn;
bound to the window's SettingsModel."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.gui.plain_text import plain_label
from ptm_studio.gui.settings_model import SettingsModel
from ptm_studio.gui.widgets.settings_binding import (
    Showing,
    keep_unedited,
    show_choice,
    show_number,
    show_text,
)

WEIGHT_SOURCE_TEXT = {
    "random": (
        "Start from scratch (random)",
        "The network starts knowing nothing. Needs more images and epochs.",
    ),
    "imagenet": (
        "Start from ImageNet",
        "Start from a network already trained on 1.2 million everyday photos. Usually the best start.",
    ),
    "file": (
        "Start from a weights file…",
        "Start from a .safetensors or .pt weights file you have.",
    ),
    "run": (
        "Continue from an earlier run…",
        "Start from the model of one of your earlier training runs.",
    ),
}
TRAINING_MODE_TEXT = {
    "full_finetune": ("Train all layers", "Every layer learns. Best with many images or a GPU."),
    "feature_extraction": (
        "Train only the last layer (fast)",
        "Keep the pretrained layers fixed and train only the final classifier. Fast, works with few images.",
    ),
    "freeze_then_unfreeze": (
        "Last layer first, then all",
        "Train only the classifier for the first epochs, then let all layers learn, more gently.",
    ),
    "probe_then_finetune": (
        "Fit the last layer, then all learn gently",
        "First fit the final classifier to what the starting network already sees (seconds), "
        "then let every layer learn, the network more slowly. Keeps what pretraining learnt: "
        "the usual choice when starting from a pretraining run.",
    ),
}
SLOWER_NETWORK_MODES = ("freeze_then_unfreeze", "probe_then_finetune")
# Under the list: the long tooltip would push the rest of the column down.
TRANSFER_MODE_WORDS = {
    "probe_then_finetune": "The last layer is fitted to the starting network first, then all "
    "layers learn, the network more slowly."
}
IMAGENET_STATUS_TEXT = {
    "available_offline": "available offline",
    "needs_download": "needs download",
    "not_available": "not available",
}


def load_backbones() -> list[Any]:
    """The backbone registry of the core; an empty list (never a crash) when it cannot load."""
    try:
        from ptm_studio.core.models import list_backbones

        return list(list_backbones())
    except Exception:  # the panel must still open; the error shows in the description
        return []


def imagenet_status(name: str) -> str:
    try:
        from ptm_studio.core.models import imagenet_status as core_status

        return str(core_status(name))
    except Exception:
        return "not_available"


def describe_backbone(spec: Any) -> str:
    parameters = getattr(spec, "parameter_count", 0) or 0
    size = (
        f"{parameters / 1e6:.1f} million parameters"
        if parameters >= 1e5
        else f"{parameters:,} parameters"
    )
    parts = [
        getattr(spec, "description", ""),
        f"Size: {size}. Speed: {getattr(spec, 'speed_hint', '?')}. "
        f"Default image size: {getattr(spec, 'default_image_size', '?')} px.",
    ]
    return "\n".join(part for part in parts if part)


class ModelPanel(QGroupBox):
    """Shows the model settings and writes the user's changes into the settings."""

    backbone_changed = Signal(object)
    """The chosen BackboneSpec (or None): its size makes the objective panel's time estimate."""

    def __init__(
        self,
        settings: SettingsModel | None = None,
        parent: QWidget | None = None,
        *,
        backbones: list[Any] | None = None,
    ) -> None:
        super().__init__("2. Model", parent)
        self.settings = settings or SettingsModel(parent=self)
        self._showing = Showing()
        self.mode_chosen_by_user = False
        self.recipe_chose_mode = False  # the mode shown was set by the transfer recipe
        self._shown = self.settings.config  # what the boxes showed (see keep_unedited)
        self._specs = {
            spec.name: spec for spec in (backbones if backbones is not None else load_backbones())
        }
        self.backbone_combo = QComboBox()
        self.backbone_combo.setToolTip("The network architecture. Small ones train fast on a CPU.")
        for spec in self._specs.values():
            self.backbone_combo.addItem(getattr(spec, "display_name", spec.name), spec.name)
        if not self._specs:
            self.backbone_combo.addItem("small_cnn", "small_cnn")
        self.backbone_info = plain_label()
        self.backbone_info.setObjectName("hint")

        self.weights_combo = QComboBox()
        self.weights_combo.setToolTip("Where the network's starting knowledge comes from.")
        self.weights_path_edit = QLineEdit()
        self.weights_path_edit.setPlaceholderText("Choose a weights file or an earlier run folder")
        self.weights_path_edit.setToolTip("The file or run folder to start from.")
        self.weights_browse = QPushButton("Browse…")
        self.weights_browse.setToolTip("Pick the weights file or run folder.")
        self.weights_browse.clicked.connect(self._browse_weights)
        path_row = QHBoxLayout()
        path_row.setContentsMargins(0, 0, 0, 0)
        path_row.addWidget(self.weights_path_edit, 1)
        path_row.addWidget(self.weights_browse)
        self.weights_path_row = QWidget()
        self.weights_path_row.setLayout(path_row)
        self.runs_root: Path | None = None  # None: the user's data folder
        self.runs_combo = QComboBox()
        self.runs_combo.setToolTip(
            "Earlier runs on this computer, newest first. Pretraining runs give a backbone that "
            "learnt from your unlabelled pictures."
        )
        self.runs_combo.activated.connect(self._on_run_chosen)

        self.mode_combo = QComboBox()
        for key, (text, tip) in TRAINING_MODE_TEXT.items():
            self.mode_combo.addItem(text, key)
            self.mode_combo.setItemData(
                self.mode_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.mode_combo.setToolTip("Which layers of the network learn from your images.")
        self.unfreeze_spin = QSpinBox()
        self.unfreeze_spin.setRange(0, 1000)
        self.unfreeze_spin.setValue(1)
        self.unfreeze_spin.setSuffix(" epoch(s)")
        self.unfreeze_spin.setToolTip(
            "How many epochs only the last layer learns before all layers do."
        )
        self.backbone_rate_spin = QDoubleSpinBox()
        self.backbone_rate_spin.setRange(0.0, 10.0)
        self.backbone_rate_spin.setDecimals(2)
        self.backbone_rate_spin.setSingleStep(0.05)
        self.backbone_rate_spin.setValue(0.1)
        self.backbone_rate_spin.setSuffix(" × the last layer's")
        self.backbone_rate_spin.setToolTip(
            "How fast the network learns compared with its last layer once all layers learn. "
            "Smaller keeps more of what the starting network knew."
        )
        self.mode_info = plain_label()
        self.mode_info.setObjectName("hint")

        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Network:", self.backbone_combo)
        form.addRow("", self.backbone_info)
        form.addRow("Starting weights:", self.weights_combo)
        self.runs_label = QLabel("Earlier run:")
        form.addRow(self.runs_label, self.runs_combo)
        form.addRow("", self.weights_path_row)
        form.addRow("Which layers learn:", self.mode_combo)
        form.addRow("Last layer only for:", self.unfreeze_spin)
        form.addRow("Network's learning rate:", self.backbone_rate_spin)
        form.addRow("", self.mode_info)

        self.backbone_combo.currentIndexChanged.connect(self._on_backbone_changed)
        self.weights_combo.currentIndexChanged.connect(self._on_weights_changed)
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)
        # Only the user's own pick (not one shown from the settings) keeps the transfer recipe
        # from choosing the mode for a start from pretraining.
        self.mode_combo.activated.connect(self._note_mode_chosen)
        self.unfreeze_spin.valueChanged.connect(self._write)
        self.backbone_rate_spin.valueChanged.connect(self._write)
        self.weights_path_edit.textChanged.connect(self._write)
        self.settings.changed.connect(self.show_settings)
        self.show_settings(self.settings.config)
        self._on_backbone_changed()
        self._on_mode_changed()

    @property
    def current_spec(self) -> Any:
        return self._specs.get(self.backbone_combo.currentData())

    def _fill_weight_sources(self) -> None:
        previous = self.weights_combo.currentData() or "random"
        spec = self.current_spec
        self.weights_combo.blockSignals(True)
        self.weights_combo.clear()
        for key, (text, tip) in WEIGHT_SOURCE_TEXT.items():
            if key == "imagenet":
                if spec is None or not getattr(spec, "has_imagenet_weights", False):
                    continue
                status = imagenet_status(spec.name)
                text = f"{text} ({IMAGENET_STATUS_TEXT.get(status, status)})"
            self.weights_combo.addItem(text, key)
            self.weights_combo.setItemData(
                self.weights_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        index = self.weights_combo.findData(previous)
        self.weights_combo.setCurrentIndex(max(0, index))
        self.weights_combo.blockSignals(False)
        self._on_weights_changed()

    @Slot()
    def _on_backbone_changed(self) -> None:
        spec = self.current_spec
        self.backbone_info.setText(describe_backbone(spec) if spec else "Model list unavailable.")
        self._fill_weight_sources()
        self.backbone_changed.emit(spec)
        self._write()

    @Slot()
    def _on_weights_changed(self) -> None:
        source = self.weights_combo.currentData()
        self.weights_path_row.setVisible(source in ("file", "run"))
        self.runs_combo.setVisible(source == "run")
        self.runs_label.setVisible(source == "run")
        if source == "run":
            self.refresh_runs()
        self._write()

    def refresh_runs(self) -> None:
        """List earlier runs by the names the Runs tab shows (pretraining runs first), newest
        first within each kind; damaged ones are left out."""
        from ptm_studio.core.run_catalog import describe_runs

        entries = [entry for entry in describe_runs(self.runs_root) if entry.state != "damaged"]
        entries.sort(key=lambda entry: not entry.is_pretraining)  # stable: newest first stays
        self.runs_combo.clear()
        self.runs_combo.addItem("Choose a run…", None)
        for entry in entries:
            when = entry.created.strftime("%d %b %H:%M") if entry.created else ""
            self.runs_combo.addItem(
                f"{entry.title}  ({when}, {entry.state_words})", str(entry.path)
            )
            self.runs_combo.setItemData(
                self.runs_combo.count() - 1, str(entry.path), Qt.ItemDataRole.ToolTipRole
            )

    @Slot(int)
    def _on_run_chosen(self, index: int) -> None:
        path = self.runs_combo.itemData(index)
        if path:
            self.weights_path_edit.setText(path)

    @Slot()
    def _note_mode_chosen(self) -> None:
        self.mode_chosen_by_user = True
        self.recipe_chose_mode = False

    @Slot()
    def _on_mode_changed(self) -> None:
        mode = self.mode_combo.currentData()
        self.mode_info.setText(self._mode_words(mode))
        self.unfreeze_spin.setEnabled(mode == "freeze_then_unfreeze")
        self.backbone_rate_spin.setEnabled(mode in SLOWER_NETWORK_MODES)
        self._write()

    @Slot()
    def _browse_weights(self) -> None:
        if self.weights_combo.currentData() == "run":
            chosen = QFileDialog.getExistingDirectory(self, "Choose an earlier run folder")
        else:
            chosen, _ = QFileDialog.getOpenFileName(
                self,
                "Choose a weights file",
                "",
                "Weights (*.safetensors *.pt *.pth);;All files (*)",
            )
        if chosen:
            self.weights_path_edit.setText(chosen)

    def _mode_words(self, mode: str) -> str:
        if self.recipe_chose_mode and mode == "probe_then_finetune":
            from ptm_studio.core.transfer_recipe import TRANSFER_SHORT_REASON

            return f"Chosen for you, as you start from a pretraining run: {TRANSFER_SHORT_REASON}."
        return TRANSFER_MODE_WORDS.get(mode, TRAINING_MODE_TEXT[mode][1])

    @Slot()
    def _write(self) -> None:
        if self._showing:
            return
        edited = self.apply_to(self.settings.config)
        if edited.model.weights == "run" and not self.mode_chosen_by_user:
            from ptm_studio.core.transfer_recipe import with_transfer_recipe

            recipe = with_transfer_recipe(edited)
            self.recipe_chose_mode = self.recipe_chose_mode or recipe != edited
            edited = recipe
        elif self.recipe_chose_mode and edited.model.weights != "run":
            # The start is no longer a pretraining run: undo the recipe's own choice.
            edited = replace_field(edited, "model.training_mode", "full_finetune")
            self.recipe_chose_mode = False
        self.settings.update(lambda current: keep_unedited(current, self._shown, edited))

    def apply_to(self, config: RunConfig) -> RunConfig:
        """``config`` with this panel's choices; another network brings its usual image size."""
        backbone = self.backbone_combo.currentData()
        if backbone != config.model.backbone and backbone in self._specs:
            from ptm_studio.core.planning import with_backbone

            config = with_backbone(config, backbone)
        source = self.weights_combo.currentData() or "random"
        path = self.weights_path_edit.text().strip() or None
        model = dataclasses.replace(
            config.model,
            backbone=backbone,
            weights=source,
            weights_path=path if source in ("file", "run") else None,
            training_mode=self.mode_combo.currentData(),
            unfreeze_after_epochs=self.unfreeze_spin.value(),
            backbone_learning_rate_factor=self.backbone_rate_spin.value(),
        )
        return dataclasses.replace(config, model=model)

    @Slot(object)
    def show_settings(self, config: RunConfig) -> None:
        with self._showing.active():
            show_choice(self.backbone_combo, config.model.backbone)
            show_choice(self.weights_combo, config.model.weights)
            show_choice(self.mode_combo, config.model.training_mode)
            show_number(self.unfreeze_spin, config.model.unfreeze_after_epochs)
            show_number(self.backbone_rate_spin, config.model.backbone_learning_rate_factor)
            if config.model.weights in ("file", "run"):  # else the box keeps it for later
                show_text(self.weights_path_edit, config.model.weights_path or "")
        self._shown = self.apply_to(config)


def _preview() -> None:  # pragma: no cover - manual preview
    from ptm_studio.gui.panels._preview import run_preview

    run_preview(ModelPanel, size=(480, 320))


if __name__ == "__main__":
    _preview()
