"""The split the window shows is the split the run uses: a 2-picture class, a test/ folder and a
val/ folder, counted by the dataset panel and by the parts a run trains with."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ptm_studio.core.config import RunConfig, replace_field
from ptm_studio.core.engine.parts import build_training
from ptm_studio.gui.panels._preview import make_sample_images
from ptm_studio.gui.panels.dataset_panel import DatasetPanel


def _class_folders_with_a_two_picture_class(root: Path) -> Path:
    make_sample_images(root, classes=("cat", "dog"), per_class=7)
    make_sample_images(root, classes=("owl",), per_class=2)
    return root


def _split_folders(root: Path, *, with_val: bool) -> Path:
    make_sample_images(root / "train", classes=("cat", "dog"), per_class=6)
    make_sample_images(root / "test", classes=("cat", "dog"), per_class=3)
    if with_val:
        make_sample_images(root / "val", classes=("cat", "dog"), per_class=2)
    return root


LAYOUTS = {
    "a 2-picture class": _class_folders_with_a_two_picture_class,
    "a test/ folder": lambda root: _split_folders(root, with_val=False),
    "val/ and test/ folders": lambda root: _split_folders(root, with_val=True),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_window_shows_the_split_the_run_uses(qtbot: Any, tmp_path: Path, layout: str) -> None:
    folder = LAYOUTS[layout](tmp_path / "pictures")
    config = replace_field(RunConfig(), "data.data_dir", str(folder))
    config = replace_field(config, "data.image_size", 16)
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.dataset_changed, timeout=30_000) as blocker:
        panel.settings.replace(config)
    shown = {
        item.name: (item.train_count, item.val_count, item.test_count)
        for item in blocker.args[0].classes
    }

    split = build_training(config).split
    parts = (split.train, split.val, split.test)
    counted = [Counter(record.class_name for record in part) for part in parts]
    used = {name: tuple(counts[name] for counts in counted) for name in split.class_names}
    assert shown == used
    if layout == "a 2-picture class":
        assert shown["owl"] == (1, 1, 0)  # one to train on, one to check with
    else:
        assert all(test == 3 for _, _, test in shown.values())  # never counted as training
    panel.shutdown()
