"""The objective panel's building blocks: its boxes with tooltips, and Auto's choices in words."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox

from ptm_studio.core.config import RunConfig, get_field
from ptm_studio.gui.panels.objective_words import SETTING_NAMES


def combo(entries: dict[str, tuple[str, str]], tip: str) -> QComboBox:
    combo = QComboBox()
    for key, (text, item_tip) in entries.items():
        combo.addItem(text, key)
        combo.setItemData(combo.count() - 1, item_tip, Qt.ItemDataRole.ToolTipRole)
    combo.setToolTip(tip)
    return combo


def double_box(low: float, high: float, step: float, decimals: int, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    return spin


def int_box(low: int, high: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setToolTip(tip)
    return spin


def choice_lines(choices: Any, config: RunConfig | None = None) -> list[str]:
    """ "• Network: small_cnn — pictures of about 28 px are too small…", one per choice; one
    the settings ``config`` holds no longer has is marked as the user's."""
    lines = []
    for choice in choices:
        name = (
            SETTING_NAMES.get(choice.setting)
            or choice.setting.rsplit(".", 1)[-1].replace("_", " ").capitalize()
        )
        chosen = _value_text(choice.value)
        now = get_field(config, choice.setting) if config is not None else choice.value
        budget = config.optim.time_budget_minutes if config is not None else 0
        if choice.setting == "optim.num_epochs" and budget > 0:
            lines.append(f"✎ {name}: planned to fit your {budget:g} minutes (Auto chose {chosen})")
        elif now != choice.value:
            lines.append(f"✎ {name}: {_value_text(now)} — yours (Auto chose {chosen})")
        else:
            lines.append(f"• {name}: {chosen} — {choice.reason}")
    return lines


def _value_text(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
