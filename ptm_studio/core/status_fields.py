"""Reading the fields of a run's run.json with their types checked: a damaged file (a word
where a number belongs, an accuracy of 300 %, a list of 10**300 epochs) makes that run show as
damaged, naming the field, and never stops the others from being listed."""

from __future__ import annotations

import math
from typing import Any


def kind_of_json(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    return "a number" if isinstance(value, int | float) else "text"


MOST_EPOCHS = 10**7  # beyond any run: a larger count is damage, not history


def whole_number(value: Any) -> int | None:
    """``value`` when it is a whole number (not a bool, not a word); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class StatusFields:
    """run.json's fields read with their types checked; ``problem`` names the first wrong one."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status
        self.problem = ""

    def _wrong(self, name: str, expected: str) -> None:
        if not self.problem:
            self.problem = f"run.json: {name} is not {expected}"

    def text(self, name: str, default: str) -> str:
        value = self.status.get(name, default)
        if isinstance(value, str):
            return value
        self._wrong(name, "text")
        return default

    def count(self, name: str) -> int:
        value = whole_number(self.status.get(name, 0))
        if value is None or value < 0 or value > MOST_EPOCHS:
            self._wrong(name, "a whole number")
            return 0
        return value

    def fraction(self, name: str) -> float | None:
        value = self.status.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._wrong(name, "a number")
            return None
        if math.isfinite(value) and not 0 <= value <= 1:
            self._wrong(name, "a share between 0 and 1")
            return None
        return float(value) if math.isfinite(value) else None  # NaN: nothing measured yet

    def names(self, name: str) -> tuple[str, ...]:
        value = self.status.get(name, [])
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(value)
        self._wrong(name, "a list of names")
        return ()
