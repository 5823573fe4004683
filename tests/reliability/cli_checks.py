"""Driving the real command line the way a user does, and what every answer must look like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ptm_studio.cli import main

_REPOSITORY = Path(__file__).resolve().parents[2]


def run_cli(capsys: pytest.CaptureFixture[str], *arguments: object) -> tuple[int, str, str]:
    """``ptm-studio ARGUMENTS`` in this process: (exit code, stdout, stderr)."""
    code = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli_process(
    *arguments: object, home: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m ptm_studio ARGUMENTS`` in a new process (what reaches a terminal, and a
    bound on the time so that a hang fails the test instead of blocking it)."""
    environment = {**os.environ, "PTM_STUDIO_HOME": str(home), "PYTHONPATH": str(_REPOSITORY)}
    return subprocess.run(
        [sys.executable, "-m", "ptm_studio", *(os.fsdecode(str(a)) for a in arguments)],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
        env=environment,
        check=False,
    )


def assert_plain_answer(code: int, out: str, err: str, *, expected: int, says: str) -> None:
    """The exit code is the documented one, the message says what was wrong, and no Python
    traceback (nor a raw escape character) reached the user."""
    assert code == expected, (code, out, err)
    assert says in err, err
    assert "Traceback" not in out + err
    assert "\x1b" not in out + err
