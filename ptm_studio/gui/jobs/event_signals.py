"""The engine's events as Qt signals, made from the event table (core.engine.events).

:class:`EventSignals` has one ``Signal(object)`` per event type, named like the event
(``BatchFinished`` → ``batch_finished``), so tests can wait for them by name; GUI code connects
through :meth:`EventSignals.connect_event`, which the type checker can follow. A new event needs
no edit here. :class:`EventForwarder` is the engine-side callback that sends every event on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import QObject, Signal, SignalInstance

from ptm_studio.core.engine.callbacks import Callback
from ptm_studio.core.engine.control import TrainingControl
from ptm_studio.core.engine.events import EVENT_TYPES, EngineEvent

EventType = TypeVar("EventType", bound=EngineEvent)

if TYPE_CHECKING:
    _SignalsBase = QObject
else:
    # Qt signals must exist when the class is made: one per event of the table.
    _SignalsBase = type(
        "_EngineEventSignals",
        (QObject,),
        {event_type.signal_name: Signal(object) for event_type in EVENT_TYPES.values()},
    )


class EventSignals(_SignalsBase):
    """A QObject with a signal per engine event; emit them on the GUI thread only."""

    def signal_for(self, event_type: type[EngineEvent]) -> SignalInstance:
        signal: SignalInstance = getattr(self, event_type.signal_name)
        return signal

    def connect_event(
        self, event_type: type[EventType], slot: Callable[[EventType], object]
    ) -> None:
        """Call ``slot(event)`` on the GUI thread for every event of ``event_type``."""
        self.signal_for(event_type).connect(slot)

    def emit_event(self, event: EngineEvent) -> None:
        self.signal_for(type(event)).emit(event)


class EventForwarder(Callback):
    """Engine callback: every event goes to ``send`` (called on the training thread)."""

    def __init__(self, send: Callable[[EngineEvent], None]) -> None:
        self._send = send

    def on_event(self, event: EngineEvent, control: TrainingControl) -> None:
        self._send(event)
