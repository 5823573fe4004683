"""``ptm-studio train --auto``: Auto's recipe for the folder and this computer (core:
auto_recipe), refined by a learning-rate test, printed choice by choice with its reason; the
flags typed on the command line win over Auto's choices and are marked as the user's."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ptm_studio.cli_arguments import flag_for, flags_given
from ptm_studio.cli_output import plain
from ptm_studio.core.config import RunConfig, replace_field


def auto_config(arguments: argparse.Namespace, config: RunConfig) -> RunConfig:
    """``config`` with Auto's choices, then the flags given on top; says each one."""
    from ptm_studio.core.auto_recipe import (
        Computer,
        choose_recipe,
        picture_facts,
        same_folder_pretraining,
    )
    from ptm_studio.core.data import preflight, scan_folder
    from ptm_studio.core.devices import describe_device
    from ptm_studio.core.engine.setup import resolve_data_dir
    from ptm_studio.core.engine.time_budget import budget_after_test, with_epochs
    from ptm_studio.core.models import imagenet_status
    from ptm_studio.core.runs import list_runs

    scan = scan_folder(resolve_data_dir(config))
    preflight(scan, task=config.objective.task, validation_fraction=config.data.validation_fraction)
    device = describe_device(config.device.device)
    recipe = choose_recipe(
        config,
        picture_facts(scan),
        Computer(device.kind, device.name),
        imagenet_offline=lambda name: imagenet_status(name) == "available_offline",
        pretraining_run=same_folder_pretraining(
            list_runs(arguments.runs_root), config.data.data_dir
        ),
    )
    recipe, test_seconds = _with_rate_test(recipe, scan)
    given = flags_given(arguments)
    chosen = recipe.config
    for name, value in given.items():
        chosen = replace_field(chosen, name, value)
    _say_choices(recipe.choices, given)
    chosen, budget_words = budget_after_test(chosen, test_seconds)
    if budget_words:
        print(plain(f"Auto: {budget_words}"), file=sys.stderr)
    # Auto's warm-up and unfreezing fitted to fewer epochs typed (a time budget plans its own).
    return with_epochs(chosen, chosen.optim.num_epochs, keep=frozenset(given)).validate()


def _with_rate_test(recipe: Any, scan: Any) -> tuple[Any, float]:
    """Auto's recipe with the tested rate, and how long the test took (building included)."""
    from ptm_studio.core.auto_recipe import with_tested_rate
    from ptm_studio.core.engine.parts import build_training
    from ptm_studio.core.engine.rate_finder import find_learning_rate

    print("Auto: testing learning rates on your pictures…", file=sys.stderr)
    started = time.perf_counter()
    test = find_learning_rate(build_training(recipe.config, scan=scan))
    return with_tested_rate(recipe, test.suggestion, test.rule), time.perf_counter() - started


def _say_choices(choices: Any, given: dict[str, Any]) -> None:
    print("Auto chose (each can be changed with its flag):", file=sys.stderr)
    for choice in choices:
        value = " ".join(choice.value) if isinstance(choice.value, tuple) else choice.value
        if choice.setting in given and given[choice.setting] != choice.value:
            line = (
                f"  {flag_for(choice.setting)}: yours ({given[choice.setting]}), not Auto's {value}"
            )
        else:
            line = f"  {flag_for(choice.setting)} {value}: {choice.reason}"
        print(plain(line), file=sys.stderr)
