"""Callbacks receive engine events; a CallbackList dispatches each to ``on_<event>``.

Callbacks observe: they get immutable events and may only ask the run to stop through the
StopRequest they were given. A callback that raises is a bug in that callback; the Trainer
lets the exception fail the run so it is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ptm_studio.core.engine.events import (
    BatchFinished,
    CheckpointSaved,
    EpochFinished,
    Event,
    PredictionsReady,
    PretrainSamplesReady,
    TrainingAdjusted,
    TrainingFinished,
    TrainingStarted,
    hook_name,
)


class Callback:
    """Override the hooks you need; each receives one immutable event."""

    def on_training_started(self, event: TrainingStarted) -> None: ...

    def on_batch_finished(self, event: BatchFinished) -> None: ...

    def on_epoch_finished(self, event: EpochFinished) -> None: ...

    def on_predictions_ready(self, event: PredictionsReady) -> None: ...

    def on_pretrain_samples_ready(self, event: PretrainSamplesReady) -> None: ...

    def on_checkpoint_saved(self, event: CheckpointSaved) -> None: ...

    def on_training_adjusted(self, event: TrainingAdjusted) -> None: ...

    def on_training_finished(self, event: TrainingFinished) -> None: ...


class FunctionCallback(Callback):
    """Sends every event to one function (handy for tests and recorders)."""

    def __init__(self, function: Callable[[Event], None]) -> None:
        self._function = function

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            return object.__getattribute__(self, "_function")
        return object.__getattribute__(self, name)


class EventRecorder(Callback):
    """Keeps every event in order; used by tests and the CLI summary."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def _record(self, event: Event) -> None:
        self.events.append(event)

    on_training_started = on_batch_finished = on_epoch_finished = _record
    on_predictions_ready = on_checkpoint_saved = on_training_finished = _record
    on_pretrain_samples_ready = on_training_adjusted = _record

    def of_type(self, event_type: type) -> list[Event]:
        return [event for event in self.events if isinstance(event, event_type)]


class CallbackList:
    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def emit(self, event: Event) -> None:
        name = hook_name(event)
        for callback in self.callbacks:
            getattr(callback, name)(event)
