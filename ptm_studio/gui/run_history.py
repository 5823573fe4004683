"""A run's logged curves (``metrics.jsonl``), read back so a resumed or reopened run shows them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ptm_studio.core.runs import RunDirectory


@dataclass(frozen=True)
class RunHistory:
    """A run's logged records up to a step, in order: per step, per epoch, per mid-epoch check."""

    batches: tuple[dict[str, Any], ...]
    epochs: tuple[dict[str, Any], ...]
    evaluations: tuple[dict[str, Any], ...] = ()
    # probe_then_finetune: what the frozen starting features scored (see FrozenFeaturesMeasured)
    frozen_features: dict[str, Any] | None = None


def load_history(run: RunDirectory, up_to_step: int | None = None) -> RunHistory:
    """Records with ``global_step <= up_to_step`` (every one when None), in order, without
    repeats (a resumed run trains the later steps again)."""
    by_type: dict[str, dict[Any, dict[str, Any]]] = {"batch": {}, "epoch": {}, "evaluation": {}}
    frozen_features = None
    for record in run.read_metrics():
        step = record.get("global_step")
        if not isinstance(step, int) or (up_to_step is not None and step > up_to_step):
            continue
        kind = record.get("type")
        if kind == "epoch" and isinstance(record.get("epoch"), int):
            by_type["epoch"][record["epoch"]] = record
        elif kind in ("batch", "evaluation"):
            by_type[str(kind)][step] = record
        elif kind == "frozen_features":
            frozen_features = record
    batches, epochs, evaluations = (
        tuple(records[key] for key in sorted(records)) for records in by_type.values()
    )
    return RunHistory(batches, epochs, evaluations, frozen_features)


def logged_number(record: Mapping[str, Any], key: str) -> float:
    """A logged value as a float: NaN was written as null, and a missing one is NaN too."""
    try:
        return float(record.get(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
