"""``python slow_batches.py SECONDS train …``: the real command line, each batch SECONDS longer
(as on a slow computer), so a signal sent during training surely lands inside a batch."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from ptm_studio import cli
from ptm_studio.cli_output import ProgressPrinter


def main() -> int:
    seconds = float(sys.argv[1])
    plain_hook = ProgressPrinter.on_batch_finished

    def slow_hook(self: ProgressPrinter, event: Any, control: Any) -> None:
        plain_hook(self, event, control)
        time.sleep(seconds)  # on the training thread, inside the batch (before its stop check)

    ProgressPrinter.on_batch_finished = slow_hook  # type: ignore[method-assign]
    # As at a terminal: a test runner started in the background passes SIGINT on ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return cli.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
