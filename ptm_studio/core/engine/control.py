"""How a run is steered: the user's thread-safe stop request, and the narrow control callbacks get.

The GUI thread (or Ctrl-C) sets a :class:`StopRequest`; the loop polls it between batches.
Callbacks cannot touch the Trainer: each hook receives the event and the run's
:class:`TrainingControl`, whose requests the Trainer carries out right after the hooks of that
event have run (Hugging Face's TrainerControl shape).
"""

from __future__ import annotations

import threading


class StopRequest:
    """Call :meth:`request` from any thread; the Trainer stops at the next batch boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def request(self) -> None:
        self._event.set()

    @property
    def is_requested(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()


class StoppedBeforeTraining(Exception):
    """Stop was pressed while the run was still being prepared (e.g. downloading weights)."""


class TrainingControl:
    """What a callback may ask of the run: end it, save a checkpoint now, or evaluate now.

    Requests made in a batch's hooks are carried out after that batch; a stop requested at an
    epoch's end ends the run after that epoch's checkpoints. Ending the run this way completes
    it (early stopping, a time budget); the user's Stop goes through the StopRequest instead and
    leaves a run that can be resumed.
    """

    def __init__(self) -> None:
        self._stop_reason: str | None = None
        self._should_save = False
        self._should_evaluate = False
        self._advice: list[tuple[str, str]] = []

    def request_stop(self, reason: str) -> None:
        """End the run after this batch or epoch; ``reason`` is logged and shown to the user."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def request_save(self) -> None:
        """Save a resumable checkpoint after this batch."""
        self._should_save = True

    def advise(self, kind: str, message: str) -> None:
        """Tell the user something about the run (fired as LearningAdvice after the hook)."""
        self._advice.append((kind, message))

    def take_advice(self) -> list[tuple[str, str]]:
        """The advice given since the last call (the Trainer's side)."""
        advice, self._advice = self._advice, []
        return advice

    def request_evaluation(self) -> None:
        """Run the validation pass after this batch (fires EvaluationFinished)."""
        self._should_evaluate = True

    @property
    def should_stop(self) -> bool:
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str:
        return self._stop_reason or ""

    def take_save(self) -> bool:
        """Whether a save was requested since the last call (the Trainer's side)."""
        requested, self._should_save = self._should_save, False
        return requested

    def take_evaluation(self) -> bool:
        """Whether an evaluation was requested since the last call (the Trainer's side)."""
        requested, self._should_evaluate = self._should_evaluate, False
        return requested
