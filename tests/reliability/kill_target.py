"""Trains forever-ish on a tiny dataset, checkpointing every step, until it is killed (T3/T5)."""

from __future__ import annotations

import sys
from pathlib import Path

from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig, SavingConfig
from ptm_studio.core.engine.trainer import Trainer


def main(data_dir: str, run_dir: str) -> None:
    config = RunConfig(
        data=DataConfig(data_dir=data_dir, image_size=16, batch_size=4, validation_fraction=0.25),
        optim=OptimConfig(num_epochs=1000),
        device=DeviceConfig(device="cpu", cpu_threads=1),
        saving=SavingConfig(checkpoint_every_steps=1),
        run_name=Path(run_dir).name,
    )
    Trainer.new_run(config, runs_root=Path(run_dir).parent).run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
