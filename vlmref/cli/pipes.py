"""A reader that goes away (``vlmref check-data ... | head``) ends the command quietly, as ``SIGPIPE`` ends
``cat``: no traceback, no ``error:`` line, exit code 141 (128 + SIGPIPE), as a shell reports a killed ``cat``."""

from __future__ import annotations

import os
import sys

EXIT_BROKEN_PIPE = 141


def flush_stdout() -> None:
    """Flush now, so that a closed pipe raises ``BrokenPipeError`` inside the command, not at interpreter exit."""
    sys.stdout.flush()


def stdout_closed() -> int:
    """Point stdout at /dev/null (the interpreter's final flush must not fail again) and return 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE
