"""How many CPU threads should train: all cores, or all but one (the default)?

Trains the real Trainer (Small CNN, 64 px, generated photo-like JPEGs or --data DIR) with
all-but-one and with all of this computer's cores, each alone and then beside another program
that keeps one core busy (a process spinning in a loop, as a browser or a second app would),
alternated in this one process. Prints seconds per epoch (the fastest later epoch of each) and
the speed of all cores against all but one, alone and with the competitor (issue 14, B6; the
window's responsiveness with each count comes from ``event_loop_responsiveness --cpu-threads``).

    python -m benchmarks.cpu_threads [--data DIR | --pictures 600] [--epochs 3] [--quick]
        [--json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.pictures import make_class_folders
from benchmarks.table import Row, add_table_flags, report
from benchmarks.trainer_overhead import trainer_seconds_per_epoch
from ptm_studio.core.config import DataConfig, DeviceConfig, OptimConfig, RunConfig
from ptm_studio.core.devices import available_cpu_count


def _spin() -> None:
    while True:
        pass


@contextmanager
def another_program_busy() -> Iterator[None]:
    """A separate process keeping one core fully busy while the block runs."""
    busy = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    busy.start()
    try:
        yield
    finally:
        busy.terminate()
        busy.join()


def fastest_later_epoch(config: RunConfig) -> float:
    """The first epoch decodes the pictures; the later ones use them kept."""
    return min(trainer_seconds_per_epoch(config)[1])


def measure(arguments: argparse.Namespace) -> None:
    cores = available_cpu_count()
    counts = (max(1, cores - 1), cores)

    def config(threads: int) -> RunConfig:
        return RunConfig(
            data=DataConfig(data_dir=str(arguments.data), image_size=64),
            optim=OptimConfig(num_epochs=arguments.epochs),
            device=DeviceConfig(device="cpu", cpu_threads=threads),
        ).validate()

    seconds: dict[tuple[int, bool], float] = {}
    for competing in (False, True):
        for threads in counts:
            if competing:
                with another_program_busy():
                    seconds[threads, competing] = fastest_later_epoch(config(threads))
            else:
                seconds[threads, competing] = fastest_later_epoch(config(threads))
    print(f"data: {arguments.data}  cores: {cores}  epochs: {arguments.epochs}")
    print(f"{'threads':<9}{'alone':>10}{'beside a busy program':>24}")
    for threads in counts:
        print(f"{threads:<9}{seconds[threads, False]:>9.2f}s{seconds[threads, True]:>23.2f}s")
    fewer, more = counts
    rows = []
    for competing, label in ((False, "alone"), (True, "beside a busy program")):
        speed = seconds[fewer, competing] / seconds[more, competing]
        rows.append(
            Row(
                f"B6 all {more} cores vs {fewer} thread(s), {label} (speed)",
                f"{seconds[more, competing]:.2f} s/epoch",
                f"{seconds[fewer, competing]:.2f} s/epoch",
                speed,
                "measured (no target)",
                True,
            )
        )
    report(rows, arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="default: generated photos")
    parser.add_argument("--pictures", type=int, default=600, help="generated, in 4 classes")
    parser.add_argument("--epochs", type=int, default=3)
    add_table_flags(parser)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.epochs, arguments.pictures = 2, 200
    with tempfile.TemporaryDirectory() as folder:
        if arguments.data is None:
            arguments.data = make_class_folders(
                Path(folder), arguments.pictures // 4, 300, width=400, suffix=".jpg"
            )
        measure(arguments)


if __name__ == "__main__":
    main()
