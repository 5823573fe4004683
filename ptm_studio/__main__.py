"""``python -m ptm_studio`` opens the app; ``python -m ptm_studio train …`` (and evaluate, predict,
scan, pretrain, models, runs) runs headless through :mod:`ptm_studio.cli`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# Asking for help or the version goes to the command-line interface too.
CLI_FLAGS = frozenset({"-h", "--help", "--version"})


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    from ptm_studio import cli
    from ptm_studio.core.app_logging import configure_logging

    configure_logging()  # a log file in the user's data folder, and faulthandler
    if arguments and (arguments[0] in cli.COMMANDS or arguments[0] in CLI_FLAGS):
        try:
            return int(cli.main(arguments) or 0)
        except BrokenPipeError:
            # Output piped into `head` (or similar) that stopped reading: not an error of ours.
            # Point stdout at nothing so Python's flush at exit does not complain again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    from ptm_studio.gui.app import main as gui_main

    return gui_main(arguments)


if __name__ == "__main__":
    sys.exit(main())
