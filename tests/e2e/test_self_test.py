"""`ptm-studio --self-test` (issue 13): the installed command trains, predicts, exports and opens
the window offscreen in a temporary folder, and says so step by step; a step that fails makes
the exit code 1 without hiding the steps after it. Nothing lands in the user's folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ptm_studio import self_test

STEPS = ("make test pictures", "train a small model", "predict", "export", "open the window")


def test_the_self_test_passes_and_leaves_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "user home"
    environment = {
        **os.environ,
        "PTM_STUDIO_HOME": str(home),
        "QT_QPA_PLATFORM": "offscreen",
        "TMPDIR": str(tmp_path / "temporary"),
    }
    (tmp_path / "temporary").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "ptm_studio", "--self-test"],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in STEPS:
        assert f"✓ {step}" in result.stdout
    assert "Self-test passed." in result.stdout
    assert not home.exists()  # the user's runs and log are not touched
    # Its own folder is removed (torch may leave caches of its own there, not ours to judge).
    assert not list((tmp_path / "temporary").glob("ptm-self-test-*"))


def test_a_failing_step_fails_the_self_test_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(pictures: Path, runs_root: Path) -> Path:
        raise RuntimeError("the run ended failed: out of memory")

    monkeypatch.setattr(self_test, "train_tiny_model", broken)
    monkeypatch.setattr(self_test, "open_window", lambda pictures, runs_root: "not opened here")
    before = os.environ.get("PTM_STUDIO_HOME")
    assert self_test.main() == self_test.EXIT_FAILED
    out = capsys.readouterr().out
    assert "✗ train a small model: RuntimeError: the run ended failed: out of memory" in out
    assert "✓ open the window" in out and "Self-test FAILED" in out
    assert os.environ.get("PTM_STUDIO_HOME") == before  # put back as it was
