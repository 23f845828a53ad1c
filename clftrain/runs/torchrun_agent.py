"""torchrun's agent (torch.distributed.run's main, unchanged) in a process of clftrain's, run by launch.py.

torchrun's agent ends in an exception whenever a launch does not succeed, and Python prints its traceback under
what clftrain's processes have already said:
- a process exits with an error (ChildFailedError, with a "Root Cause" block), under `error: ...` (exit 2);
- Ctrl-C or SIGTERM (SignalException), under rank 0's `interrupted by SIGINT; continue with: ...`.
Here both end quietly: an error with torchrun's own exit code (1), a signal with 128 + its number; the agent's
log lines on a failed process, the SIGTERM it sends the others and a signal it passes on are left out. Only a
process that did not end through clftrain's error handling (killed, crashed: rank 0 left no exit code in
CLFTRAIN_EXIT_FILE) gets a line, saying which process failed and how.
"""

from __future__ import annotations

import logging
import os
import signal
import sys


def main(argv: list[str]) -> int:
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    for name in ("torch.distributed.elastic.multiprocessing.api", "torch.distributed.elastic.agent.server.api"):
        logging.getLogger(name).addFilter(_said_below)
    try:
        run.main(argv)
    except SignalException as stopped:  # Ctrl-C or SIGTERM: the processes got it too, and rank 0 said what to do
        return 128 + int(stopped.sigval)
    except ChildFailedError as failed:
        if not _rank_zero_told():
            for rank, failure in sorted(failed.failures.items()):
                print(f"error: process {rank} of the launch {_how(failure.exitcode)}", file=sys.stderr)
        return 1
    return 0


def _said_below(record: logging.LogRecord) -> bool:
    """The agent's lines on a failed process, the SIGTERM it sends the others and a signal it passes on: main
    says the first in one line, rank 0 the last (interrupted, and how to resume)."""
    return not str(record.msg).startswith(("failed (exitcode", "Sending process", "Received"))


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
