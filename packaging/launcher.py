"""The bundle's entry point: the same ``main`` as the installed ``ptm-studio`` command (the
window without arguments, a command with them, ``--self-test`` to check the bundle)."""

from __future__ import annotations

import multiprocessing
import sys

from ptm_studio.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the loading processes start this executable again
    sys.exit(main())
