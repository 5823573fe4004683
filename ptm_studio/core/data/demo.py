"""Finds the small flower photo set shipped with PTM Studio, used when no folder is chosen."""

from __future__ import annotations

from pathlib import Path


def demo_data_dir() -> Path:
    """The demo data folder (train/ and val/, five flower classes, CC BY 2.0)."""
    # resources/ sits beside the ptm_studio package, both in the repository and in the
    # one-folder PyInstaller build.
    folder = Path(__file__).resolve().parents[3] / "resources" / "demo_data"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"The demo pictures are missing: expected them in {folder}. "
            "Reinstall PTM Studio, or run packaging/make_demo_data.py from the source folder."
        )
    return folder
