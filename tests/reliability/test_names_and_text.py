"""Names and text (issue 11): folder and file names with newlines, escape sequences or bytes
that are not UTF-8 never reach the terminal raw, and a name that cannot be written into a run's
files is refused by the scan before training, naming it and the fix."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from ptm_studio.cli_arguments import EXIT_DATA, EXIT_OK
from ptm_studio.cli_output import TerminalSafeStream, plain
from ptm_studio.core.data import preflight, scan_folder
from ptm_studio.core.data.manifest import DatasetError

from .cli_checks import assert_plain_answer, run_cli, run_cli_process
from .conftest import folder_digest

ESCAPE_NAME = "red\x1b[31m\x1b]0;owned\x07class\nsecond line"


def _pictures(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (16, 16), (40 * index, 90, 160)).save(folder / f"{index}.png")
    return folder


def test_control_characters_in_names_are_shown_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pictures(tmp_path / "pictures" / ESCAPE_NAME)
    _pictures(tmp_path / "pictures" / "plain")
    before = folder_digest(tmp_path / "pictures")
    code, out, err = run_cli(capsys, "scan", tmp_path / "pictures")
    assert code == EXIT_OK
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert r"red\x1b[31m\x1b]0;owned\x07class\nsecond line" in out
    assert "second line" not in out.replace(r"\nsecond line", "")
    assert folder_digest(tmp_path / "pictures") == before


def _latin1_dataset(root: Path) -> Path:
    """A class folder named in Latin-1 (as old archives unpack): 'rosés' as bytes."""
    _pictures(root / os.fsdecode(b"ros\xe9s"))
    _pictures(root / "tulips")
    return root


def test_a_name_that_is_not_utf8_is_refused_before_training_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pictures = _latin1_dataset(tmp_path / "pictures")
    before = folder_digest(pictures)
    code, out, err = run_cli(capsys, "scan", pictures)
    assert_plain_answer(code, out, err, expected=EXIT_DATA, says="not valid text")
    assert r"ros\xe9s" in out + err and "convmv" in out + err
    assert "Ready" not in out
    code, out, err = run_cli(
        capsys, "train", "--data", pictures, "--runs-root", tmp_path / "runs", "--quiet"
    )
    assert_plain_answer(code, out, err, expected=EXIT_DATA, says="not valid text")
    for run in (tmp_path / "runs").glob("*"):
        assert '"running"' not in (run / "run.json").read_text(encoding="utf-8")
    assert folder_digest(pictures) == before


def test_the_scan_names_the_problem_and_preflight_refuses_it(tmp_path: Path) -> None:
    pictures = _latin1_dataset(tmp_path / "pictures")
    scan = scan_folder(pictures)
    problem = next(problem for problem in scan.problems if problem.kind == "names_not_text")
    assert problem.severity == "error"
    for task in ("finetune", "pretrain"):
        with pytest.raises(DatasetError, match="not valid text"):
            preflight(scan, task=task)


def test_what_a_real_terminal_receives(tmp_path: Path) -> None:
    _pictures(tmp_path / "pictures" / ESCAPE_NAME)
    _latin1_dataset(tmp_path / "pictures")
    done = run_cli_process("scan", tmp_path / "pictures", home=tmp_path / "home")
    assert done.returncode == EXIT_DATA, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_plain_and_the_terminal_stream() -> None:
    assert plain("a\nb\tc\x1b[0m\x9b") == r"a\nb\tc\x1b[0m\x9b"
    assert plain(os.fsdecode(b"caf\xe9")) == r"caf\xe9"
    assert plain("café ✓") == "café ✓"
    sink = io.StringIO()
    TerminalSafeStream(sink).write("line\r\nnext\x1b[2J" + os.fsdecode(b"\xff") + "\n")
    assert sink.getvalue() == "line\r\nnext\\x1b[2J\\xff\n"


def test_embed_keeps_one_line_per_picture_whatever_the_names() -> None:
    """Row i of embeddings.npy is line i of files.txt, also for a name with a line break."""
    from ptm_studio.core.embeddings import one_line

    names = ["plain/a.png", "nl\nline/b.png", "cr\rx/c.png", "C:\\pics\\d.png"]
    lines = "".join(f"{one_line(name)}\n" for name in names).splitlines()
    assert len(lines) == len(names)
    assert lines[1] == "nl\\nline/b.png" and lines[3] == "C:\\pics\\d.png"
