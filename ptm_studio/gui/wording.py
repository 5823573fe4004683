"""Numbers in the words the window uses: durations, sizes."""

from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """12 → "12 s", 125 → "2 min 05 s", 7300 → "2 h 01 min"; unknown → "–"."""
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_megabytes(num_bytes: int) -> str:
    """4_500_000 → "4.5", 45_200_000 → "45" (megabytes, as download sizes are quoted)."""
    megabytes = max(0, num_bytes) / 1e6
    return f"{megabytes:.1f}" if megabytes < 10 else f"{megabytes:.0f}"
