"""The places the app writes: an odd or unwritable ``PTM_STUDIO_HOME`` (a file, a read-only
folder, a path under a file or under a read-only folder) never stops --version or --help, never
shows a traceback, and stops a command that must write runs with exit 2 and a message naming
the folder and the fix. The log falls back (temp folder, else console) and says so once. A full
disk during a run through the real command line says only what is true and leaves nothing
half-written; the picture folder is never touched."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from core.training_helpers import TINY_CLI_TRAINING  # tests/ is on the path: tests/core

from ptm_studio import __main__ as entry
from ptm_studio import __version__
from ptm_studio.core import app_logging, checkpoints
from ptm_studio.core.runs import RunDirectory

from .test_disk_full import a_disk_of, stray_files

MB = 1_000_000
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def listing(folder: Path) -> list[tuple[str, int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    return sorted(
        (str(path.relative_to(folder)), path.lstat().st_size, path.lstat().st_mtime_ns)
        for path in [folder, *folder.rglob("*")]
    )


def is_writable(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture(autouse=True)
def app_temp_folder(tmp_path: Path) -> Path:
    """The app's temp folder (TMPDIR) in a subprocess: the log's fallback lands here."""
    temp = tmp_path / "temp"
    temp.mkdir()
    return temp


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written into, even by root: permissions first, then the
    immutable flag where root ignores them, else a sysfs folder (read-only to everyone)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if is_writable(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], check=False).returncode == 0
    if is_writable(folder):
        folder = Path("/sys/kernel")
    assert not is_writable(folder), "no folder on this machine refuses writes"
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(tmp_path / "read-only")], check=False)
    (tmp_path / "read-only").chmod(0o755)


@pytest.fixture
def odd_homes(tmp_path: Path, read_only_folder: Path) -> dict[str, tuple[Path, Path]]:
    """Each odd PTM_STUDIO_HOME, with the folder a message must name for its runs."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {
        "a file": (a_file, a_file / "runs"),
        "under a file": (a_file / "home", a_file / "home" / "runs"),
        "a read-only folder": (read_only_folder, read_only_folder / "runs"),
        "under a read-only folder": (
            read_only_folder / "missing" / "home",
            read_only_folder / "missing" / "home" / "runs",
        ),
    }


def run_app(arguments: list[str], home: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m ptm_studio ARGUMENTS`` as a user runs it, with its temp folder in the test's."""
    temp = tmp_path / "temp"  # made by the fixture app_temp_folder
    environment = {**os.environ, "PTM_STUDIO_HOME": home, "TMPDIR": str(temp)}
    return subprocess.run(
        [sys.executable, "-m", "ptm_studio", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "Logging error" not in text, text


@pytest.mark.parametrize("home", ["a file", "under a file", "a read-only folder", "blank"])
@pytest.mark.parametrize("arguments", [["--version"], ["--help"], ["train", "--help"]])
def test_version_and_help_never_depend_on_the_data_folder(
    odd_homes: dict[str, tuple[Path, Path]], tmp_path: Path, home: str, arguments: list[str]
) -> None:
    folder = " " if home == "blank" else str(odd_homes[home][0])
    before = listing(tmp_path)
    finished = run_app(arguments, folder, tmp_path)
    assert finished.returncode == EXIT_OK, finished.stderr
    assert_no_traceback(finished.stdout, finished.stderr)
    assert finished.stderr == ""  # not even a word about the log: help writes none
    if arguments == ["--version"]:
        assert finished.stdout.strip() == f"PTM Studio {__version__}"
    else:
        assert "usage:" in finished.stdout
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    "home", ["a file", "under a file", "a read-only folder", "under a read-only folder"]
)
def test_a_run_into_an_unusable_home_stops_with_exit_2_naming_the_folder_and_the_fix(
    odd_homes: dict[str, tuple[Path, Path]], tiny_dataset: Path, tmp_path: Path, home: str
) -> None:
    folder, runs_folder = odd_homes[home]
    pictures_before = listing(tiny_dataset)
    arguments = ["train", "--data", str(tiny_dataset), *TINY_CLI_TRAINING]
    finished = run_app(arguments, str(folder), tmp_path)
    assert finished.returncode == EXIT_USAGE, finished.stderr
    assert_no_traceback(finished.stdout, finished.stderr)
    errors = [line for line in finished.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, finished.stderr
    assert str(runs_folder) in errors[0]
    assert "PTM_STUDIO_HOME" in errors[0] and "--runs-root" in errors[0]
    # The log could not go there either: one plain line says where it went instead.
    log_lines = [line for line in finished.stderr.splitlines() if "could not write the log" in line]
    assert len(log_lines) == 1 and str(folder) in log_lines[0]
    assert str(tmp_path / "temp") in log_lines[0]
    assert list((tmp_path / "temp").glob("ptm-studio-*/logs/ptm-studio.log"))
    assert listing(tiny_dataset) == pictures_before


@pytest.mark.parametrize("flag", ["--runs-root", "--output"])
def test_an_unwritable_runs_root_or_output_names_its_own_flag(
    read_only_folder: Path, tiny_dataset: Path, tmp_path: Path, flag: str
) -> None:
    home = tmp_path / "home"
    target = read_only_folder / "new-run" if flag == "--output" else read_only_folder
    arguments = ["train", "--data", str(tiny_dataset), flag, str(target), *TINY_CLI_TRAINING]
    finished = run_app(arguments, str(home), tmp_path)
    assert finished.returncode == EXIT_USAGE, finished.stderr
    assert_no_traceback(finished.stdout, finished.stderr)
    assert f"cannot write into {read_only_folder}" in finished.stderr
    assert f"with {flag}" in finished.stderr
    assert not (home / "runs").exists()


# ------------------------------------------------------------------------------- the log
@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Handlers a test adds to the root logger are closed and removed after it."""
    before = list(logging.getLogger().handlers)
    yield
    for handler in logging.getLogger().handlers:
        if handler not in before:
            logging.getLogger().removeHandler(handler)
            handler.close()


def test_with_no_temp_folder_either_the_log_goes_to_the_console_and_says_so_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_handlers: None,
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")

    def no_temp_folder() -> str:
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")

    monkeypatch.setattr(app_logging.tempfile, "gettempdir", no_temp_folder)
    assert app_logging.configure_logging(blocked / "logs") is None
    assert app_logging.configure_logging(blocked / "logs") is None
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"PTM Studio: could not write the log at {blocked / 'logs' / 'ptm-studio.log'}"
        f" ({blocked} is a file, not a folder); it goes to the console only."
    ]


def test_a_log_file_that_fails_later_says_so_once_and_steps_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], root_handlers: None
) -> None:
    log_file = app_logging.configure_logging(tmp_path / "logs")
    assert log_file is not None
    handler = next(
        h for h in logging.getLogger().handlers if isinstance(h, app_logging.LogFileHandler)
    )

    class FullDisk(io.StringIO):
        def write(self, _text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    handler.stream.close()  # the disk "fills up" under the open log
    handler.stream = FullDisk()
    logging.getLogger("ptm_studio.test").warning("first")
    logging.getLogger("ptm_studio.test").warning("second")
    errors = capsys.readouterr().err
    assert_no_traceback(errors)
    assert errors.count("cannot be written any more (the disk is full)") == 1
    assert handler not in logging.getLogger().handlers


# ------------------------------------------------------------------------ a disk that fills
@contextlib.contextmanager
def a_small_disk(monkeypatch: pytest.MonkeyPatch, size: int, holding: Path) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints.shutil, "disk_usage", a_disk_of(size, holding))
        yield


def train_through_the_command_line(arguments: list[str]) -> int:
    return entry.main(arguments)


def test_a_full_disk_before_the_first_checkpoint_fails_plainly_and_leaves_nothing_half_written(
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_handlers: None,
) -> None:
    pictures_before = listing(tiny_dataset)
    runs = tmp_path / "runs"
    arguments = ["train", "--data", str(tiny_dataset), "--runs-root", str(runs)]
    with a_small_disk(monkeypatch, 3 * MB, runs):
        code = train_through_the_command_line([*arguments, *TINY_CLI_TRAINING])
    out, err = capsys.readouterr()
    assert code == EXIT_FAILED
    assert_no_traceback(out, err)
    assert "Nothing of this run is saved yet" in err and "MB free" in err and "MB needed" in err
    assert "kept" not in err and "--resume" not in out  # nothing is offered that is not there
    (run,) = runs.iterdir()
    assert not RunDirectory(run).last_checkpoint_dir.exists() and not stray_files(run)
    assert listing(tiny_dataset) == pictures_before


def test_a_full_disk_later_keeps_the_last_checkpoint_and_the_run_resumes_once_there_is_room(
    tiny_dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    root_handlers: None,
) -> None:
    pictures_before = listing(tiny_dataset)
    runs = tmp_path / "runs"
    settings = [*TINY_CLI_TRAINING[:1], "3", *TINY_CLI_TRAINING[2:]]  # three epochs
    arguments = ["train", "--data", str(tiny_dataset), "--runs-root", str(runs), *settings]
    # Epoch 1 (last ≈ 14 MB + best ≈ 5 MB) fits in 30 MB; epoch 2's new "last" does not.
    with a_small_disk(monkeypatch, 30 * MB, runs):
        code = train_through_the_command_line(arguments)
    out, err = capsys.readouterr()
    assert code == EXIT_FAILED  # could not go on; 130 is only for the user's Ctrl-C
    assert_no_traceback(out, err)
    assert "'last' (epoch 1, step" in out and "kept and intact" in out
    (run,) = runs.iterdir()
    assert f"--resume '{run}'" in out and not stray_files(run)

    code = train_through_the_command_line(["train", "--resume", str(run)])  # space was freed
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert [record["epoch"] for record in RunDirectory(run).read_metrics("epoch")] == [1, 2, 3]
    assert listing(tiny_dataset) == pictures_before


def test_the_entry_point_checks_only_commands_that_make_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only_folder: Path
) -> None:
    monkeypatch.setenv("PTM_STUDIO_HOME", str(read_only_folder))
    assert entry.unusable_runs_folder(["models"]) is None
    assert entry.unusable_runs_folder(["runs"]) is None
    problem = entry.unusable_runs_folder(["pretrain", "--epochs", "1"])
    assert problem is not None and str(read_only_folder / "runs") in problem
    assert entry.asks_for_help_or_version(["train", "-h"])
    assert not entry.asks_for_help_or_version(["predict", "--", "--help"])
