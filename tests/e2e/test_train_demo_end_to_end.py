"""End to end: the installed command trains on the built-in demo flowers for real, then predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PTM_STUDIO_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "ptm_studio", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
    )


def test_training_on_the_demo_data_learns_and_predict_loads_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo run"
    trained = _run(
        "train",
        "--demo",
        "--epochs",
        "4",
        "--image-size",
        "32",
        "--batch-size",
        "16",
        "--learning-rate",
        "0.003",
        "--output",
        str(run_dir),
        home=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr + trained.stdout
    epochs = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["type"] == "epoch"
    ]
    assert [epoch["epoch"] for epoch in epochs] == [1, 2, 3, 4]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    # 5 classes: chance is 20 %. Four short epochs of a small CNN on 32-px flowers clear it well.
    assert max(epoch["val_accuracy"] for epoch in epochs) >= 0.35, epochs
    demo_val = Path(__file__).parents[2] / "resources" / "demo_data" / "val" / "daisy"
    predicted = _run("predict", "--run", str(run_dir), str(demo_val), home=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.count(".jpg") == len(list(demo_val.glob("*.jpg")))
