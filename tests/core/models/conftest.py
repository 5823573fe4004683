"""Shared fixtures for the models tests: a private TORCH_HOME and tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.hub

from ptm_studio.core.models import ImageClassifier, build_classifier


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME, so nothing from the real hub cache is read or written."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    # torch.hub.get_dir() reads TORCH_HOME on every call (unless set_dir was used).
    assert Path(torch.hub.get_dir()) == home / "hub"
    return home


@pytest.fixture
def small_model() -> ImageClassifier:
    torch.manual_seed(0)
    return build_classifier("small_cnn", 3)
