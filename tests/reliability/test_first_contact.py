"""First contact on a fresh machine: the system libraries Qt's window needs are found with
ldd, named by their Debian/Ubuntu packages, installed where that is allowed (root and apt-get)
or given as the exact command to type; no display is said in plain words instead of Qt's abort."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ptm_studio import system_libraries
from ptm_studio.system_libraries import (
    DEBIAN_PACKAGES,
    NO_DISPLAY,
    Missing,
    files_to_check,
    missing_libraries,
    not_found_in,
    qt_folder,
    qt_start_problem,
    run_ldd,
    system_libraries_in,
)

# What ldd printed for libQt6XcbQpa on the tester's minimal Debian.
LDD_ON_A_MINIMAL_DEBIAN = """\
\tlinux-vdso.so.1 (0x00007ffd5b5f1000)
\tlibQt6Gui.so.6 => /venv/PySide6/Qt/lib/libQt6Gui.so.6 (0x00007f2a1c000000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f2a1bfd0000)
\tlibxcb-cursor.so.0 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2a1bc00000)
"""


def a_fake_pyside(root: Path) -> Path:
    """A PySide6 folder holding the files the check looks at (empty: ldd is faked)."""
    pyside = root / "PySide6"
    (pyside / "Qt" / "plugins" / "platforms").mkdir(parents=True)
    for name in ("libqxcb.so", "libqoffscreen.so"):
        (pyside / "Qt" / "plugins" / "platforms" / name).write_bytes(b"")
    for name in system_libraries.BINDINGS:
        (pyside / f"{name}.abi3.so").write_bytes(b"")
    return pyside


def test_the_testers_missing_libraries_are_named_by_their_packages(tmp_path: Path) -> None:
    assert not_found_in(LDD_ON_A_MINIMAL_DEBIAN) == [
        "libxcb-icccm.so.4",
        "libxcb-keysyms.so.1",
        "libxcb-cursor.so.0",
    ]
    missing = missing_libraries(
        "xcb", a_fake_pyside(tmp_path), ldd=lambda _path: LDD_ON_A_MINIMAL_DEBIAN
    )
    assert missing.libraries == ("libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0")
    assert missing.packages == ("libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1")
    message = missing.explain(has_apt=True)
    assert "sudo apt-get install -y libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in message
    assert "libxcb-icccm.so.4" in message and "start PTM Studio again" in message


def test_a_library_of_no_known_package_is_still_named() -> None:
    missing = Missing("xcb", ("libxcb-icccm.so.4", "libsomething-new.so.2"))
    message = missing.explain(has_apt=False)
    assert "libsomething-new.so.2" in message and "package manager" in message
    assert "sudo apt-get" not in message  # no apt here: no command that cannot work


def test_every_system_library_qt_needs_here_has_a_package() -> None:
    """On this machine, ldd on the real plugin and bindings: each system library they load is
    in the table, so a machine lacking any of them is told its package."""
    pyside = qt_folder()
    assert pyside is not None
    for platform in ("xcb", "offscreen"):
        files = files_to_check(platform, pyside)
        assert files[0].name == f"libq{platform}.so" and len(files) == 4
        needed = {name for path in files for name in system_libraries_in(run_ldd(path))}
        assert "libxcb.so.1" in needed or platform == "offscreen"
        assert needed - set(DEBIAN_PACKAGES) == set()


def test_the_command_line_prints_the_exact_command_and_stops(tmp_path: Path) -> None:
    """A fake ldd on PATH answers as on the tester's machine; without --install (or not root)
    the check prints the command and exits 1, without a traceback."""
    tools = tmp_path / "bin"
    tools.mkdir()
    fake_ldd = tools / "ldd"
    fake_ldd.write_text("#!/bin/sh\ncat <<'EOF'\n" + LDD_ON_A_MINIMAL_DEBIAN + "EOF\n")
    fake_ldd.chmod(fake_ldd.stat().st_mode | stat.S_IXUSR)
    environment = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    finished = subprocess.run(
        [sys.executable, "-m", "ptm_studio.system_libraries", "--platform", "xcb"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == system_libraries.EXIT_MISSING
    assert "Traceback" not in finished.stderr
    assert "libxcb-icccm4" in finished.stderr and "libxcb-keysyms1" in finished.stderr


def test_as_root_with_apt_it_installs_then_checks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyside = a_fake_pyside(tmp_path)
    installed: list[list[str]] = []
    answers = iter([LDD_ON_A_MINIMAL_DEBIAN] * 4 + [""] * 4)  # missing before, found after
    monkeypatch.setattr(system_libraries, "qt_folder", lambda: pyside)
    monkeypatch.setattr(system_libraries, "run_ldd", lambda _path: next(answers))
    monkeypatch.setattr(system_libraries, "can_install", lambda: True)
    monkeypatch.setattr(
        system_libraries, "_run_without_questions", lambda command: installed.append(command) or 0
    )
    assert system_libraries.main(["--platform", "xcb", "--install"]) == system_libraries.EXIT_OK
    assert installed[-1][:3] == ["apt-get", "install", "-y"]
    assert {"libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0"} <= set(installed[-1])


def test_no_display_is_said_plainly_with_the_fix() -> None:
    assert qt_start_problem({}) == NO_DISPLAY
    assert "DISPLAY" in NO_DISPLAY and "ssh -X" in NO_DISPLAY
    # The tests' own platform needs no display, and its libraries are on this machine.
    assert qt_start_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
