"""``ptm-studio find-lr``: the learning-rate test on a folder with the settings a run would use,
the curve as a small table, and the suggested rate with the rule that chose it. Nothing is
written: the model is put back as it was and no run folder is made."""

from __future__ import annotations

import argparse
import math
import sys

from ptm_studio.cli_arguments import EXIT_DATA, EXIT_INTERRUPTED, EXIT_OK, config_from_arguments
from ptm_studio.cli_output import clear_progress_line, plain, print_table
from ptm_studio.cli_stopping import on_training_thread, stopping_on_signals

CURVE_ROWS = 12


def run_find_lr(arguments: argparse.Namespace) -> int:
    from ptm_studio.core.data import DatasetError
    from ptm_studio.core.engine.control import StopRequest
    from ptm_studio.core.engine.parts import build_training
    from ptm_studio.core.engine.rate_finder import find_learning_rate

    config = config_from_arguments(arguments)
    try:
        parts = build_training(config)
    except DatasetError as error:
        print(f"error: {plain(error)}", file=sys.stderr)
        return EXIT_DATA
    stop_request = StopRequest()
    with stopping_on_signals(stop_request):
        found = on_training_thread(
            lambda: find_learning_rate(
                parts,
                max_steps=arguments.steps,
                should_stop=lambda: stop_request.is_requested,
                on_step=_show_step,
            )
        )
    clear_progress_line()
    if found.ended_because == "stopped":
        print("Stopped; nothing was changed.", file=sys.stderr)
        return EXIT_INTERRUPTED
    _print_curve(found.rates, found.losses, found.suggestion)
    print(f"\n{found.describe()}")
    print(f"The test ended because {found.ended_because}.")
    if found.suggestion is not None:
        print(f"Train with it: add --learning-rate {found.suggestion:.2g} to the train command.")
    return EXIT_OK


def _show_step(done: int, total: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\rTrying learning rates… step {done} of at most {total} ")
        sys.stderr.flush()


def _print_curve(rates: tuple[float, ...], losses: tuple[float, ...], mark: float | None) -> None:
    if not rates:
        return
    every = max(1, math.ceil(len(rates) / CURVE_ROWS))
    shown = sorted({*range(0, len(rates), every), len(rates) - 1})
    marked = None
    if mark is not None:
        marked = min(shown, key=lambda index: abs(math.log(rates[index] / mark)))
    lowest = min(losses)
    rows = [
        [
            f"{rates[index]:.2g}",
            f"{losses[index]:.4g}",
            "#" * max(1, round(30 * lowest / losses[index])) if losses[index] > 0 else "",
            "<- suggested" if index == marked else "",
        ]
        for index in shown
    ]
    print_table(["learning rate", "loss (smoothed)", "the longer, the lower", ""], rows)
