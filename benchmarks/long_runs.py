"""B4, long runs: the process's memory after 20 epochs against after epoch 2, and how many
thumbnails the predictions grid asks for when it holds 10,000 pictures.

Memory: the real Trainer, small CNN at 32 px, on generated pictures (800; 400 with --quick),
resident memory (RSS, from /proc/self/statm) read at the end of each epoch; the target is at
most 50 MB more after epoch 20 than after epoch 2 (a leak grows with every epoch, the first
epochs only fill caches). Grid: the window's predictions panel, offscreen at 1200×800, given
10,000 predictions; every thumbnail the grid asks its cache for is counted; the target is no
more than the cells that fit on the screen and a row or two beyond (lazy loading).

    python -m benchmarks.long_runs [--epochs 20] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

from benchmarks.pictures import make_class_folders
from benchmarks.table import Row, add_table_flags, report

MEMORY_TARGET_MB = 50.0
GRID_PICTURES = 10_000
PANEL_SIZE = (1200, 800)


def resident_megabytes() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def memory_row(epochs: int, pictures: int) -> Row:
    from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig
    from ptm_studio.core.engine.callbacks import Callback
    from ptm_studio.core.engine.control import TrainingControl
    from ptm_studio.core.engine.events import EngineEvent, EpochFinished
    from ptm_studio.core.engine.trainer import Trainer

    class MemoryAtEpochEnd(Callback):
        def __init__(self) -> None:
            self.megabytes: dict[int, float] = {}

        def on_event(self, event: EngineEvent, control: TrainingControl) -> None:
            if isinstance(event, EpochFinished):
                self.megabytes[event.epoch] = resident_megabytes()

    recorder = MemoryAtEpochEnd()
    with tempfile.TemporaryDirectory() as folder:
        data = make_class_folders(Path(folder) / "pictures", pictures // 4, size=32)
        config = RunConfig(
            data=DataConfig(data_dir=str(data), image_size=32, batch_size=32),
            optim=OptimConfig(num_epochs=epochs),
            device=DeviceConfig(device="cpu"),
        ).validate()
        runs = Path(folder) / "runs"
        finished = Trainer.new_run(config, callbacks=[recorder], runs_root=runs).run()
    assert finished.status == "completed", finished.error_message
    early, late = recorder.megabytes[2], recorder.megabytes[epochs]
    grown = late - early
    print(f"resident memory by epoch (MB): {recorder.megabytes}")
    return Row(
        f"B4 memory, epoch {epochs} vs epoch 2",
        f"{late:.0f} MB ({grown:+.1f} MB)",
        f"{early:.0f} MB",
        float("nan"),
        f"≤ +{MEMORY_TARGET_MB:.0f} MB",
        grown <= MEMORY_TARGET_MB,
    )


def grid_row() -> Row:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from ptm_studio.gui.panels._preview import fake_predictions
    from ptm_studio.gui.panels.predictions_panel import PredictionsPanel

    _app = QApplication.instance() or QApplication([])
    panel = PredictionsPanel()
    asked: set[str] = set()
    ask = panel.cache.pixmap

    def counted(path: str) -> object:
        asked.add(path)
        return ask(path)

    panel.cache.pixmap = counted  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        names = ("cat", "dog", "bird", "fish")
        per_class = GRID_PICTURES // len(names)
        paths = {
            name: [Path(folder) / name / f"{i}.png" for i in range(per_class)] for name in names
        }
        panel.resize(*PANEL_SIZE)
        panel.show()
        panel.show_predictions(fake_predictions(paths))
        for _ in range(20):  # paint, and let the lazy loads come back
            loop = QEventLoop()
            QTimer.singleShot(25, loop.quit)
            loop.exec()
        view = panel.grid
        cell = view.sizeHintForIndex(view.model().index(0, 0))
        columns = max(1, view.viewport().width() // max(1, cell.width()))
        rows = view.viewport().height() // max(1, cell.height()) + 2  # a row or two beyond
        limit = columns * rows
        held = panel.model.rowCount()
        panel.shutdown()
    assert held == GRID_PICTURES, held
    print(
        f"{held} pictures in the grid, {len(asked)} thumbnails asked for; {columns} columns × {rows} rows on screen"
    )
    return Row(
        f"B4 thumbnails asked for, {GRID_PICTURES:,} predictions",
        f"{len(asked)}",
        f"{limit} cells on screen",
        float("nan"),
        f"≤ {limit}",
        len(asked) <= limit,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    add_table_flags(parser)
    arguments = parser.parse_args()
    pictures = 400 if arguments.quick else 800
    epochs = 8 if arguments.quick else arguments.epochs
    report([memory_row(epochs, pictures), grid_row()], arguments)


if __name__ == "__main__":
    main()
