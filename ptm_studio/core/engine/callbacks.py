"""Callbacks receive the run's events; the hook for ``BatchFinished`` is ``on_batch_finished``.

A callback defines the hooks it needs, each taking ``(event, control)``: the immutable event and
the run's :class:`TrainingControl`, the only thing a callback may change. ``on_event`` receives
every event (recorders and forwarders override it). The hook names come from the event table, so
a misspelt hook is an error when the class is defined, not a hook that silently never runs.

A callback that raises is a bug in that callback; the Trainer lets the exception fail the run so
it is never silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import EngineEvent, hook_names

EventType = TypeVar("EventType", bound=EngineEvent)


class Callback:
    """Define ``on_<event>(self, event, control)`` for the events you need."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        known = hook_names()
        unknown = sorted(
            name
            for name in vars(cls)
            if name.startswith("on_") and name != "on_event" and name not in known
        )
        if unknown:
            raise TypeError(
                f"{cls.__name__} defines {', '.join(unknown)}, which no event calls; "
                f"the hooks are: {', '.join(sorted(known))}"
            )

    def on_event(self, event: EngineEvent, control: TrainingControl) -> None:
        """Receives every event; by default passes it to the event's own hook, if defined."""
        hook = getattr(self, event.hook_name, None)
        if hook is not None:
            hook(event, control)


class EventRecorder(Callback):
    """Keeps every event in order; used by tests, the comparison and the CLI summary."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def on_event(self, event: EngineEvent, control: TrainingControl) -> None:
        self.events.append(event)

    def of_type(self, event_type: type[EventType]) -> list[EventType]:
        return [event for event in self.events if isinstance(event, event_type)]


class CallbackList:
    """Sends each event to every callback, in order, with the run's control."""

    def __init__(
        self, callbacks: Iterable[Callback] = (), control: TrainingControl | None = None
    ) -> None:
        self.callbacks = list(callbacks)
        self.control = control or TrainingControl()

    def emit(self, event: EngineEvent) -> None:
        for callback in self.callbacks:
            callback.on_event(event, self.control)
