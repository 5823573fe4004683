"""After a test run that ended early: if a test hung, say which, and where each thread was.

tests/conftest.py writes the running test's name into .pytest-hang-report.txt and, if it is
still running after the hang limit, faulthandler appends every thread's stack and stops the run.
CI shows only the end of what it printed, so this puts the innermost calls of each thread first
and the test's name last."""

from __future__ import annotations

import sys
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / ".pytest-hang-report.txt"
FRAMES_PER_THREAD = 8


def main() -> int:
    if not REPORT.is_file():
        return 0
    lines = REPORT.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 3:
        return 0  # the run ended for another reason while a test was starting
    test, limit, stacks = lines[0], lines[1], lines[2:]
    shown: list[str] = []
    frames_left = 0
    for line in stacks:
        if line.startswith(("Thread 0x", "Current thread 0x")):
            shown.append(line)
            frames_left = FRAMES_PER_THREAD
        elif line.startswith("  File") and frames_left > 0:
            shown.append(line)
            frames_left -= 1
    print("\n".join(shown))
    print(f"\nA test hung (still running after {limit} s) and the run was stopped: {test}")
    print("Above: where each of its threads was, innermost call first.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
