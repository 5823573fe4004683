"""Helpers for panels bound to the SettingsModel: show a value in a box without echoing it back.

A panel shows the settings whenever they change and writes its boxes into them whenever a box
changes. While it shows, its boxes' change signals must not write (:class:`Showing`), and a box
already showing the value is left alone (a text box would lose its cursor). Values a box does
not usually offer (from the command line, or a resumed run) are shown as they are: the range
and the decimals widen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PySide6.QtWidgets import QAbstractButton, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from ptm_studio.core.config import config_fields, replace_field

MAX_DECIMALS = 10


class Showing:
    """True while a panel puts the settings into its boxes."""

    def __init__(self) -> None:
        self._depth = 0

    def __bool__(self) -> bool:
        return self._depth > 0

    @contextmanager
    def active(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1


def show_number(spin: QDoubleSpinBox | QSpinBox, value: float) -> None:
    if isinstance(spin, QDoubleSpinBox):
        while spin.decimals() < MAX_DECIMALS and round(value, spin.decimals()) != value:
            spin.setDecimals(spin.decimals() + 1)
        spin.setRange(min(spin.minimum(), value), max(spin.maximum(), value))
    else:
        spin.setRange(min(spin.minimum(), int(value)), max(spin.maximum(), int(value)))
    if spin.value() != value:
        spin.setValue(value)  # type: ignore[arg-type]


def show_choice(combo: QComboBox, value: object) -> bool:
    """Select the item whose data is ``value``; False when the box has none."""
    index = combo.findData(value)
    if index >= 0 and index != combo.currentIndex():
        combo.setCurrentIndex(index)
    return index >= 0


def show_checked(box: QAbstractButton, value: bool) -> None:
    if box.isChecked() != value:
        box.setChecked(value)


def show_text(edit: QLineEdit, value: str) -> None:
    if edit.text() != value:
        edit.setText(value)


def keep_unedited(current: Any, shown: Any, edited: Any) -> Any:
    """``current`` with only the settings whose boxes were edited since they were shown.

    ``shown`` is what the panel's boxes said when it last showed the settings, ``edited`` what
    they say now (both from the panel's ``apply_to``). A box that could not show a value
    exactly (a rounded number, a network its list does not offer, a seed beyond its range)
    writes nothing until the user edits that box.
    """
    before, after = config_fields(shown), config_fields(edited)
    for field_path, value in after.items():
        if value != before[field_path]:
            current = replace_field(current, field_path, value)
    return current
