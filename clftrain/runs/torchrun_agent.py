"""torchrun's agent (torch.distributed.run's main, unchanged) in a process of clftrain's, run by launch.py.

When a process of the launch exits with an error, torchrun's agent raises ChildFailedError, and Python prints its
traceback and a "Root Cause" block under the error clftrain's process has already printed (`error: ...`, exit 2).
Here that exception ends the agent quietly with torchrun's own exit code (1), its log lines on the failed process
and the SIGTERM it sends the others left out; only a process that did not end through clftrain's error handling
(killed, crashed: no exit code of rank 0's in CLFTRAIN_EXIT_FILE) gets a line saying which process failed and how.
"""

from __future__ import annotations

import logging
import os
import signal
import sys


def main(argv: list[str]) -> int:
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_said_below)
    try:
        run.main(argv)
    except ChildFailedError as failed:
        if not _rank_zero_told():
            for rank, failure in sorted(failed.failures.items()):
                print(f"error: process {rank} of the launch {_how(failure.exitcode)}", file=sys.stderr)
        return 1
    return 0


def _said_below(record: logging.LogRecord) -> bool:
    """The agent's lines on a failed process and the SIGTERM it sends the others: main says it in one line."""
    return not str(record.msg).startswith(("failed (exitcode", "Sending process"))


def _rank_zero_told() -> bool:
    """Whether rank 0 ended through clftrain's main (it wrote its exit code, having printed any error itself)."""
    path = os.environ.get("CLFTRAIN_EXIT_FILE")
    return bool(path) and os.path.isfile(path)


def _how(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was stopped by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was stopped by signal {-exitcode}"
    return f"exited with code {exitcode}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
