"""Every way in through the command line gives a clear answer (issue 11, first class).

Rule: a bad argument or file exits 2 (3 for pictures that cannot be used) with a message that
names it and the fix; a traceback never reaches the user (it goes to the log); nothing is left
half-written and the picture folder is unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ptm_studio import cli
from ptm_studio.cli_arguments import EXIT_DATA, EXIT_FAILED, EXIT_USAGE
from ptm_studio.core.locations import default_runs_root

from .cli_checks import assert_plain_answer, run_cli, run_cli_process
from .conftest import NothingLost


def _no_runs_made() -> None:
    root = default_runs_root()
    assert not root.exists() or not any(root.iterdir()), list(root.iterdir())


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda folder: folder / "missing.json", "there is no file"),
        (lambda folder: folder, "is a folder; give the config.json file"),
        (lambda folder: _write(folder / "latin1.json", b'{"seed": "\xe9"}'), "not UTF-8 text"),
        (lambda folder: _write(folder / "broken.json", b'{"seed": '), "not valid JSON"),
        (lambda folder: _write(folder / "list.json", b"[1, 2]"), "expected a JSON object"),
        (lambda folder: _write(folder / "section.json", b'{"data": 5}'), "setting data"),
        (lambda folder: _write(folder / "value.json", b'{"seed": "x"}'), "setting seed"),
        (lambda folder: _write(folder / "empty.json", b""), "not valid JSON"),
    ],
    ids=["missing", "folder", "not-utf8", "cut-short", "a-list", "wrong-section", "wrong-value",
         "empty"],
)  # fmt: skip
def test_a_config_file_that_cannot_be_used_exits_2_naming_it(
    nothing_lost: NothingLost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: object,
    says: str,
) -> None:
    config = make(tmp_path)  # type: ignore[operator]
    for command in (["train"], ["pretrain"], ["compare", "--init-from", nothing_lost.run_dir.path]):
        code, out, err = run_cli(
            capsys, *command, "--config", config, "--data", nothing_lost.pictures
        )
        assert_plain_answer(code, out, err, expected=EXIT_USAGE, says=says)
        assert str(config) in err
    # A resume asked to apply such a file refuses it too, before touching the run.
    status_before = nothing_lost.run_dir.status_path.read_bytes()
    code, out, err = run_cli(
        capsys, "train", "--resume", nothing_lost.run_dir.path, "--config", config
    )
    assert_plain_answer(code, out, err, expected=EXIT_USAGE, says=says)
    assert nothing_lost.run_dir.status_path.read_bytes() == status_before
    _no_runs_made()
    nothing_lost.check()


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["predict", "--top-k", "0"], "--top-k"),
        (["predict", "--top-k", "-3"], "--top-k"),
        (["predict", "--threshold", "nan"], "--threshold"),
        (["heatmap", "--opacity", "2"], "--opacity"),
        (["train", "--epochs", "0"], "--num-epochs"),
        (["train", "--learning-rate", "inf"], "--learning-rate"),
        (["train", "--seed", "-1"], "--seed"),
        (["train", "--data", ""], "--data"),
        (["compare", "--seeds", "x"], "--seeds"),
        (["train", "--backbone", "no_such_network"], "no_such_network"),
    ],
)
def test_a_bad_value_exits_2_naming_the_flag(
    nothing_lost: NothingLost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    says: str,
) -> None:
    command, *rest = flags
    if command in ("predict", "heatmap"):
        arguments = [command, "--run", nothing_lost.run_dir.path, nothing_lost.pictures, *rest]
        if command == "heatmap":
            arguments += ["--to", tmp_path / "maps"]
    else:
        arguments = [command, "--data", nothing_lost.pictures, "--epochs", "1", *rest]
        arguments += ["--image-size", "16", "--quiet", "--runs-root", tmp_path / "new runs"]
    code, out, err = run_cli(capsys, *arguments)
    assert_plain_answer(code, out, err, expected=EXIT_USAGE, says=says)
    assert not (tmp_path / "maps").exists()
    nothing_lost.check()


def test_an_unknown_network_is_refused_before_a_run_folder_is_used(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "train", "--data", nothing_lost.pictures, "--backbone", "resnet_9000",
        "--runs-root", tmp_path / "new runs", "--quiet",
    )  # fmt: skip
    assert_plain_answer(code, out, err, expected=EXIT_USAGE, says="no backbone called")
    assert "small_cnn" in err  # the names that exist
    for run in (tmp_path / "new runs").glob("*"):
        assert (run / "run.json").read_text().count('"running"') == 0


@pytest.mark.parametrize("fraction", ["-0.1", "0.95", "1.5", "nan", "inf"])
def test_scan_and_train_accept_and_refuse_the_same_validation_fractions(
    nothing_lost: NothingLost, tmp_path: Path, capsys: pytest.CaptureFixture[str], fraction: str
) -> None:
    scan = run_cli(capsys, "scan", nothing_lost.pictures, "--validation-fraction", fraction)
    train = run_cli(
        capsys, "train", "--data", nothing_lost.pictures, "--validation-fraction", fraction,
        "--runs-root", tmp_path / "new runs", "--quiet",
    )  # fmt: skip
    for code, out, err in (scan, train):
        assert_plain_answer(code, out, err, expected=EXIT_USAGE, says="--validation-fraction")
    assert "Ready" not in scan[1]
    assert not list((tmp_path / "new runs").glob("*"))


def test_scan_is_ready_exactly_when_train_can_start(
    nothing_lost: NothingLost, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "scan", nothing_lost.pictures, "--validation-fraction", "0.5")
    assert code == 0 and "Ready for finetune" in out


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["scan", "{missing}"], "there is no folder"),
        (["scan", "{file}"], "is a file, not a folder"),
        (["evaluate", "--run", "{pictures}"], "not a PTM Studio run folder"),
        (["evaluate", "--run", "{missing}"], "there is no folder"),
        (["predict", "--run", "{run}", "{missing}"], "there is no file or folder"),
        (["predict", "--run", "{run}", "{file}", "--csv", "{pictures}"], "is a folder"),
        (["export", "--run", "{run}", "--to", "{file}"], "is a file, not a folder"),
        (["report", "--run", "{run}", "--to", "{file}/report.html"], "cannot"),
        (["train", "--resume", "{pictures}"], "not a PTM Studio run folder"),
        (["train", "--output", "{file}"], "is a file, not a folder"),
        (["runs", "--runs-root", "{file}"], "is a file, not a folder"),
        (["finetune", "--init-from", "{file}"], "is a file"),
    ],
)
def test_a_path_of_the_wrong_kind_exits_2_saying_what_was_found(
    nothing_lost: NothingLost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    says: str,
) -> None:
    picture = sorted((nothing_lost.pictures / "circle").iterdir())[0]
    places = {
        "missing": tmp_path / "nowhere",
        "file": picture,
        "pictures": nothing_lost.pictures,
        "run": nothing_lost.run_dir.path,
    }
    filled = [argument.format(**places) for argument in arguments]
    code, out, err = run_cli(capsys, *filled)
    assert_plain_answer(code, out, err, expected=EXIT_USAGE, says=says)
    nothing_lost.check()


def test_data_that_cannot_be_used_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty pictures"
    empty.mkdir()
    for command in (["scan", empty], ["train", "--data", empty, "--quiet"]):
        code, out, err = run_cli(capsys, *command)
        assert_plain_answer(code, out, err, expected=EXIT_DATA, says="No pictures were found")
    _no_runs_made()


def test_anything_unexpected_is_one_line_pointing_to_the_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "ptm-studio.log"
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)

    def broken(_arguments: object) -> int:
        raise RuntimeError("a bug deep inside\nwith a second line")

    monkeypatch.setitem(cli.HANDLERS, "models", broken)
    try:
        code, out, err = run_cli(capsys, "models")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert_plain_answer(code, out, err, expected=EXIT_FAILED, says="did not expect")
    assert "a bug deep inside" in err and "second line" not in err
    assert str(log_file) in err
    logged = log_file.read_text()
    assert "Traceback" in logged and "a bug deep inside" in logged


def test_no_traceback_reaches_a_terminal_for_bad_files(tmp_path: Path) -> None:
    """The same through a real process: what a terminal receives."""
    (tmp_path / "config.json").write_bytes(b"\xff\xfe not text")
    for arguments in (
        ["train", "--config", tmp_path / "config.json"],
        ["train", "--config", tmp_path],
        ["predict", "--run", tmp_path, tmp_path, "--top-k", "0"],
    ):
        done = run_cli_process(*arguments, home=tmp_path / "home")
        assert_plain_answer(
            done.returncode, done.stdout, done.stderr, expected=EXIT_USAGE, says="error"
        )
