"""Stop signals that arrive while a command starts up are remembered, not raised.

Python turns Ctrl-C into a KeyboardInterrupt at whatever line runs, and while a command starts
that is deep inside importing torch: the import is left half-done and a later one fails with
nonsense ("module 'torch' has no attribute 'fx'"). From the first line of ``ptm-studio`` until
a command installs its own handlers (cli_stopping.stopping_on_signals), Ctrl-C, SIGTERM and
SIGHUP are only written down here; that command then stops before it starts anything.
"""

from __future__ import annotations

import signal
import threading

received: list[int] = []
_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")


def remember_stop_signals() -> None:
    """From now on, a stop signal is remembered (a signal ignored on purpose stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (and only it receives signals)
    for name in _NAMES:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _remember)


def _remember(number: int, _frame: object) -> None:
    received.append(number)


def take() -> list[int]:
    """The signals remembered so far (then forgotten)."""
    taken = list(received)
    received.clear()
    return taken
