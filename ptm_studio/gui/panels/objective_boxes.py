"""The objective panel's building blocks: its boxes with tooltips, and Auto's choices in words."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox


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


def choice_lines(choices: Any) -> list[str]:
    """ "Network: small_cnn — pictures of about 28 px are too small…", one per choice."""
    lines = []
    for choice in choices:
        value = ", ".join(choice.value) if isinstance(choice.value, tuple) else choice.value
        name = choice.setting.rsplit(".", 1)[-1].replace("_", " ").capitalize()
        lines.append(f"• {name}: {value} — {choice.reason}")
    return lines
