"""First contact on a fresh machine: the system libraries Qt needs for the window.

PySide6's wheels carry Qt but not the X11/xcb, OpenGL and font libraries of the system. When
one is missing, Qt aborts with a message that often names another library. This module asks
``ldd`` what Qt's platform plugin (and the Qt libraries it loads) cannot find, maps each missing
library to its Debian/Ubuntu package, and installs them (as root, with apt-get) or prints the
exact command. Nothing here imports Qt, so it works exactly when Qt would not.

``python -m ptm_studio.system_libraries [--platform auto|xcb|wayland|offscreen] [--install]``
(``make run`` and ``.ci/run`` call it); :func:`qt_start_problem` is the same check for the app.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_OK, EXIT_MISSING, EXIT_USAGE = 0, 1, 2

# Library → the Debian/Ubuntu package that holds it (apt picks the renamed t64 packages of
# Ubuntu 24.04 by itself when asked for the old name).
DEBIAN_PACKAGES = {
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libpng16.so.16": "libpng16-16",
    "libz.so.1": "zlib1g",
    "libzstd.so.1": "libzstd1",
    "libexpat.so.1": "libexpat1",
    "libbrotlidec.so.1": "libbrotli1",
    "libbrotlicommon.so.1": "libbrotli1",
    "libpcre2-8.so.0": "libpcre2-8-0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libffi.so.8": "libffi8",
    # What those need in turn (apt brings them along; listed for a system that lost one).
    "libbsd.so.0": "libbsd0",
    "libmd.so.0": "libmd0",
    "libsystemd.so.0": "libsystemd0",
    "libcap.so.2": "libcap2",
    "libgcrypt.so.20": "libgcrypt20",
    "libgpg-error.so.0": "libgpg-error0",
    "liblzma.so.5": "liblzma5",
    "liblz4.so.1": "liblz4-1",
}
# Part of every Linux (the C library) or of PySide6's own wheel: never a package to add.
ALWAYS_THERE = re.compile(
    r"^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s)[.-]"
    r"|^(libQt6|libicu|libpyside6|libshiboken6)"
)
# The PySide6 modules the app imports; ldd follows them to libQt6Core/Gui/Widgets and beyond.
BINDINGS = ("QtCore", "QtGui", "QtWidgets")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


@dataclass(frozen=True)
class Missing:
    """What Qt's ``platform`` plugin cannot load on this machine."""

    platform: str
    libraries: tuple[str, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(
            sorted({DEBIAN_PACKAGES[name] for name in self.libraries if name in DEBIAN_PACKAGES})
        )

    @property
    def unknown(self) -> tuple[str, ...]:
        """Missing libraries of no known package (say their names; the user's system knows)."""
        return tuple(name for name in self.libraries if name not in DEBIAN_PACKAGES)

    def install_command(self) -> str:
        return "sudo apt-get install -y " + " ".join(self.packages)

    def explain(self, *, has_apt: bool) -> str:
        """For the user: what is missing, and the exact command that fixes it."""
        lines = [
            f"PTM Studio's window (Qt, platform {self.platform!r}) needs system libraries"
            f" that are not installed: {', '.join(self.libraries)}."
        ]
        if self.packages and has_apt:
            lines += ["Install them with:", f"    {self.install_command()}"]
        elif self.packages:
            lines.append(
                "Install the packages that provide them with your system's package manager"
                f" (on Debian/Ubuntu: {' '.join(self.packages)})."
            )
        if self.unknown:
            lines.append(f"Also install whatever provides: {', '.join(self.unknown)}.")
        lines.append("Then start PTM Studio again (`make run`, or `ptm-studio`).")
        return "\n".join(lines)


def qt_folder() -> Path | None:
    """PySide6's folder, found without importing it (importing it is what may fail)."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def files_to_check(platform: str, pyside: Path) -> list[Path]:
    """The platform plugin and the bindings the app loads: what Qt opens before a window."""
    candidates = [pyside / "Qt" / "plugins" / "platforms" / f"libq{platform}.so"]
    candidates += [
        next(iter(pyside.glob(f"{name}.*so")), pyside / f"{name}.abi3.so") for name in BINDINGS
    ]
    return [path for path in candidates if path.exists()]


def run_ldd(path: Path) -> str:
    """``ldd``'s answer for ``path`` ("" when there is no ldd: then nothing can be told)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return ""
    finished = subprocess.run([ldd, str(path)], capture_output=True, text=True, check=False)
    return finished.stdout


def system_libraries_in(ldd_output: str) -> list[str]:
    """Every library ``ldd`` lists that comes from a system package (found or not)."""
    names = [line.split()[0] for line in ldd_output.splitlines() if "=>" in line]
    return [name for name in names if not ALWAYS_THERE.match(name)]


def not_found_in(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reported as ``=> not found``."""
    return [match.group(1) for line in ldd_output.splitlines() if (match := _NOT_FOUND.match(line))]


def missing_libraries(
    platform: str, pyside: Path | None = None, ldd: Callable[[Path], str] | None = None
) -> Missing:
    """What Qt's ``platform`` plugin and the app's Qt modules cannot find on this machine."""
    ldd = ldd or run_ldd
    pyside = pyside or qt_folder()
    if pyside is None or not sys.platform.startswith("linux"):
        return Missing(platform, ())  # no PySide6 (pip says so) or not Linux: nothing to add
    found: dict[str, None] = {}
    for path in files_to_check(platform, pyside):
        found.update(dict.fromkeys(not_found_in(ldd(path))))
    return Missing(platform, tuple(found))


def platform_to_check(environment: dict[str, str] | None = None) -> str | None:
    """The platform Qt will use: QT_QPA_PLATFORM's first, else X11 (xcb) when there is a
    DISPLAY, else Wayland; None when there is no display at all."""
    environment = dict(os.environ) if environment is None else environment
    chosen = environment.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return re.split(r"[;:]", chosen)[0]
    if environment.get("DISPLAY"):
        return "xcb"
    if environment.get("WAYLAND_DISPLAY"):
        return "wayland"
    return None


NO_DISPLAY = (
    "PTM Studio's window needs a display, and none was found (DISPLAY and WAYLAND_DISPLAY are"
    " not set). Start it from a desktop session, or over ssh with `ssh -X`; without a screen,"
    " use the command line (`ptm-studio --help`)."
)


def qt_start_problem(environment: dict[str, str] | None = None) -> str | None:
    """Why Qt would abort if the app started it now, with the fix; None when it can start.

    For ``gui/app.py``: ``if (problem := qt_start_problem()): print(problem, file=sys.stderr);
    return 1`` before the QApplication is made.
    """
    if not sys.platform.startswith("linux"):
        return None
    platform = platform_to_check(environment)
    if platform is None:
        return NO_DISPLAY
    missing = missing_libraries(platform)
    return (
        missing.explain(has_apt=shutil.which("apt-get") is not None) if missing.libraries else None
    )


def install(missing: Missing, run: Callable[[list[str]], int] | None = None) -> int:
    """apt-get install the missing packages (as root); apt-get's exit code."""
    print(f"Installing system libraries for Qt: {' '.join(missing.packages)}", file=sys.stderr)
    run = run or _run_without_questions
    if run(["apt-get", "update", "-qq"]) != 0:
        return EXIT_MISSING
    return run(["apt-get", "install", "-y", "-qq", *missing.packages])


def _run_without_questions(command: list[str]) -> int:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(command, env=environment, check=False).returncode


def can_install() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ptm_studio.system_libraries",
        description="Check (and with --install, install) the system libraries Qt needs.",
    )
    parser.add_argument(
        "--platform",
        default="auto",
        help="xcb (X11), wayland, offscreen (tests), or auto: the one Qt would use (default).",
    )
    parser.add_argument(
        "--install", action="store_true", help="As root with apt-get: install what is missing."
    )
    arguments = parser.parse_args(argv)
    platform = platform_to_check() if arguments.platform == "auto" else arguments.platform
    if platform is None:
        print(NO_DISPLAY, file=sys.stderr)
        return EXIT_MISSING
    missing = missing_libraries(platform)
    if missing.libraries and arguments.install and missing.packages and can_install():
        install(missing)
        missing = missing_libraries(platform)
    if missing.libraries:
        print(missing.explain(has_apt=shutil.which("apt-get") is not None), file=sys.stderr)
        return EXIT_MISSING
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
