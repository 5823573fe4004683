"""How a command-line run stops: on its own thread while the main thread waits for signals;
Ctrl-C, SIGTERM (logout, shutdown, `kill`) or SIGHUP (the terminal closed) stop it after the
batch with a checkpoint, as the Stop button does; a second signal stops it at once, still
leaving a run marked stopped with its last complete checkpoint."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ptm_studio import early_signals
from ptm_studio.cli_arguments import EXIT_INTERRUPTED

Result = TypeVar("Result")
# True while the main thread only waits for the training thread: the one place where a second
# stop signal may raise (StopAtOnce) without cutting something in half.
_waiting_for_training = False


def on_training_thread(work: Callable[[], Result]) -> Result:
    """Run ``work`` on a training thread, as the app does, while the main thread waits.

    Off the main thread PyTorch reports a dead picture-loading process from inside the loader,
    where the watchdog catches it; on the main thread its signal handler raises at whatever line
    is running. Ctrl-C still reaches the main thread's handler (which asks the run to stop).
    """
    results: list[Result] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(work())
        except BaseException as error:  # handed to the main thread, which raises it
            errors.append(error)

    thread = threading.Thread(target=target, name="ptm-training", daemon=True)
    global _waiting_for_training
    thread.start()
    _waiting_for_training = True
    try:
        while thread.is_alive():
            thread.join(0.2)
    finally:
        _waiting_for_training = False
    if errors:
        raise errors[0]
    return results[0]


# Signals that ask a run to stop: Ctrl-C, a polite kill (logout, shutdown, `kill PID`), and the
# terminal going away. Each is handled as the Stop button: after the batch, with a checkpoint.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


_FIRST_WORDS = {
    "SIGINT": "Stopping after this batch and saving a checkpoint.",
    "SIGTERM": "Asked to stop (SIGTERM): stopping after this batch and saving a checkpoint.",
    "SIGHUP": "The terminal closed (SIGHUP): stopping after this batch and saving a checkpoint.",
}


AT_ONCE_WORDS = (
    " (Ctrl-C again to stop at once, without waiting for the batch: the run then keeps its "
    "last complete checkpoint and can be resumed from it.)"
)


class StopAtOnce(BaseException):
    """A second stop signal: raised on the main thread, out of the wait for the training."""


@contextlib.contextmanager
def stopping_on_signals(stop_request: Any) -> Iterator[None]:
    """While the block runs, every stop signal asks the run to stop (the first) or stops at
    once (the second); the earlier handlers are put back after it."""
    handler = _stop_on_first_interrupt(stop_request)
    # A signal the user chose to ignore stays ignored (`nohup` ignores SIGHUP so a run
    # outlives the terminal; a shell ignores SIGINT for a job started with `&`).
    previous = {
        number: signal.signal(number, handler)
        for number in STOP_SIGNALS
        if signal.getsignal(number) is not signal.SIG_IGN
    }
    if early_signals.take():  # Ctrl-C while the command was starting: stop before it starts
        _say("\nStopping before the run starts; nothing is written.")
        stop_request.request()
    try:
        yield
    finally:
        for number, earlier in previous.items():
            signal.signal(number, earlier)


def _stop_on_first_interrupt(stop_request: Any) -> Any:
    def handle(signal_number: int, _frame: object) -> None:
        if stop_request.is_requested:
            if _waiting_for_training:  # only then: raised anywhere else it would cut an import
                raise StopAtOnce
            return  # still starting: the first stop is enough, nothing has begun yet
        name = signal.Signals(signal_number).name
        if name == "SIGHUP":
            _silence_the_terminal()
        _say("\n" + _FIRST_WORDS.get(name, _FIRST_WORDS["SIGTERM"]) + AT_ONCE_WORDS)
        stop_request.request()

    return handle


def stop_at_once() -> int:
    """The second stop signal: the training thread is busy inside a batch (it cannot be
    interrupted there), so it is left behind. Every run it trains is marked stopped first,
    once a checkpoint being written has been completed (recorder.abandon_runs_in_progress);
    nothing is written after that, and the process ends at once, its lock released with it.
    A third signal ends it without waiting for that save."""
    from ptm_studio.core.engine.recorder import abandon_runs_in_progress

    for number in STOP_SIGNALS:
        signal.signal(number, lambda *_: _exit_now(EXIT_INTERRUPTED))
    _say("\nStopping at once.")
    note = "Stopped at once (a second Ctrl-C or stop signal); it goes on from its last checkpoint."
    for run_dir in abandon_runs_in_progress(note):
        _say(f"The run in {run_dir} keeps its last complete checkpoint.")
        _say(f"Continue it with: ptm-studio train --resume '{run_dir}'")
    _exit_now(EXIT_INTERRUPTED)
    return EXIT_INTERRUPTED  # not reached


def _exit_now(code: int) -> None:
    """End the process without waiting for the training thread left inside a batch (a normal
    exit would wait on it, or crash in it while the interpreter shuts down)."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _say(text: str) -> None:
    """A line for the user; a terminal that went away is no reason to fail."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _silence_the_terminal() -> None:
    """The terminal is gone: writing to it fails, which would fail the run. Its output goes
    nowhere from now on (the log file still has everything)."""
    with contextlib.suppress(OSError):
        nowhere = os.open(os.devnull, os.O_WRONLY)
        for descriptor in (1, 2):
            os.dup2(nowhere, descriptor)
        os.close(nowhere)
