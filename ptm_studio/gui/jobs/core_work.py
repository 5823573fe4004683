"""Core functions that take ``on_progress`` and ``should_stop`` become Job work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ptm_studio.gui.jobs.job import JobContext, Work


def core_work(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Work:
    """``function(*args, on_progress=…, should_stop=…, **kwargs)`` as a Job's work: progress
    goes to the job (throttled there), and a cancel reaches the function's own stop check
    (it raises, and the job reports "cancelled", not "failed")."""

    def work(context: JobContext) -> Any:
        return function(
            *args,
            on_progress=context.progress,
            should_stop=lambda: context.is_cancelled,
            **kwargs,
        )

    return work
