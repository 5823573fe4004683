#!/usr/bin/env bash
# Build the one-folder app into dist/ptm-studio, check it with --self-test, and install the
# desktop entry and icon for the current user with --install.
#
#   bash packaging/build_bundle.sh             # uses .venv (make install) and its torch
#   bash packaging/build_bundle.sh --install   # also ~/.local/share/applications + icon
#
# The bundle holds the torch of the venv it is built from: the default (CUDA) wheels make it
# several GB; a venv with the CPU-only wheels makes a fraction of that (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" -m pip install --quiet "pyinstaller>=6"
"$PYTHON" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
    packaging/ptm_studio.spec
echo "Checking the bundle: dist/ptm-studio/ptm-studio --self-test"
QT_QPA_PLATFORM=offscreen dist/ptm-studio/ptm-studio --self-test
du -sh dist/ptm-studio
if [[ "${1:-}" == "--install" ]]; then
    applications="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
    icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
    mkdir -p "$applications" "$icons" "$HOME/.local/bin"
    ln -sf "$PWD/dist/ptm-studio/ptm-studio" "$HOME/.local/bin/ptm-studio"
    cp resources/icons/app.svg "$icons/ptm-studio.svg"
    sed "s|^Exec=ptm-studio|Exec=$PWD/dist/ptm-studio/ptm-studio|" packaging/ptm-studio.desktop \
        > "$applications/ptm-studio.desktop"
    echo "Installed: $applications/ptm-studio.desktop"
fi
