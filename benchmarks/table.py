"""One row per figure a benchmark holds against its target, and the one table they make.

Every benchmark module takes ``--quick`` (under two minutes for all of them together) and
``--json`` (its rows as one line of JSON after its own report, for ``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

ROWS_MARKER = "BENCHMARK ROWS "


@dataclass(frozen=True)
class Row:
    """``ours`` and ``reference`` are shown as they are (with their units); ``ratio`` is the
    number the target judges (NaN when the target is on ``ours`` alone)."""

    name: str
    ours: str
    reference: str
    ratio: float
    target: str
    passed: bool

    @classmethod
    def ratio_at_most(cls, name: str, ours: str, reference: str, ratio: float, limit: float) -> Row:
        return cls(name, ours, reference, ratio, f"≤ {limit:g}", ratio <= limit)

    @classmethod
    def ratio_at_least(
        cls, name: str, ours: str, reference: str, ratio: float, limit: float
    ) -> Row:
        return cls(name, ours, reference, ratio, f"≥ {limit:g}", ratio >= limit)


def add_table_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller data")
    parser.add_argument("--json", action="store_true", help="end with the rows as JSON")


def report(rows: Sequence[Row], arguments: argparse.Namespace) -> None:
    print()
    print_table(rows)
    if arguments.json:
        print(ROWS_MARKER + json.dumps([asdict(row) for row in rows]), flush=True)


def rows_from_output(output: str) -> list[Row] | None:
    for line in reversed(output.splitlines()):
        if line.startswith(ROWS_MARKER):
            return [Row(**row) for row in json.loads(line[len(ROWS_MARKER) :])]
    return None


def print_table(rows: Sequence[Row]) -> None:
    header = ("benchmark", "ours", "reference", "ratio", "target", "result")
    cells = [header] + [
        (
            row.name,
            row.ours,
            row.reference,
            "—" if math.isnan(row.ratio) else f"{row.ratio:.2f}",
            row.target,
            "pass" if row.passed else "FAIL",
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    for index, line in enumerate(cells):
        print(
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            + " |"
        )
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
