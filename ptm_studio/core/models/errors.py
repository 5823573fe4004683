"""The two errors the models package raises, each worded for someone who does not program."""

from __future__ import annotations

from pathlib import Path


class ModelError(Exception):
    """A model cannot be built as asked (unknown backbone, impossible class count)."""


class WeightsError(ModelError):
    """Weights cannot be used. ``message`` says why, ``advice`` what to do, ``path`` which file.

    ``details`` holds the individual problems (for example the first mismatched layers) so a
    dialog can show them in an expandable list; they are also part of ``message``.
    """

    def __init__(
        self,
        message: str,
        *,
        advice: str = "",
        path: str | Path | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{message} {advice}".strip())
        self.message = message
        self.advice = advice
        self.path = Path(path) if path is not None else None
        self.details = details
