"""Run every benchmark and print one table: name, ours, reference, ratio, target, pass/fail.

    python -m benchmarks [--quick] [--only start_up cached_features …] [--verbose]

Each benchmark runs in its own fresh interpreter (torch's thread settings, Qt's application and
imported modules do not carry from one to the next); inside one, both sides of a ratio run in
that same process, alternated, so machine noise hits both alike. ``--quick`` takes about a
minute for all of them; the full run takes about three on a 2-core laptop.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.table import Row, print_table, rows_from_output

# In the order of issue 14's list; each is `python -m benchmarks.<name>` on its own too.
BENCHMARKS = (
    "trainer_overhead",  # B1: the Trainer against a hand-written loop
    "cached_features",  # B2: feature extraction from cached features
    "event_loop_responsiveness",  # B3: the window's event loop while training
    "curve_update",  # B4: a 1,000,000-point curve
    "long_runs",  # B4: memory over 20 epochs, a 10,000-picture grid
    "start_up",  # B5: window, --help, --version, models, scanning
    "cpu_threads",  # B6: all cores against all but one, alone and beside a busy program
    "decode_size",  # decoding camera photos at the size the model needs
)
FAILED_TO_RUN = "did not run"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under two minutes in all")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--verbose", action="store_true", help="show each benchmark's report")
    arguments = parser.parse_args()
    rows: list[Row] = []
    root = Path(__file__).resolve().parent.parent
    for name in arguments.only:
        started = time.perf_counter()
        command = [sys.executable, "-m", f"benchmarks.{name}", "--json"]
        command += ["--quick"] if arguments.quick else []
        result = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
        found = rows_from_output(result.stdout)
        if arguments.verbose or found is None:
            print(result.stdout + result.stderr[-4000:])
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        rows += found or [Row(name, FAILED_TO_RUN, "", float("nan"), "", False)]
    print()
    print_table(rows)
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
