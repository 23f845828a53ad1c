"""A warm figure-drawing process (views/drawing.py starts it): it imports matplotlib and renders a throwaway
figure at once, then draws each FigureJob it reads from stdin, answering with (path, error) on stdout.

Started as `python -m clftrain.views.plot_worker`, a module of its own, so that nothing of the parent's
main script runs again here (as multiprocessing's spawn would). It ends at the end of its input.
"""

from __future__ import annotations

import io
import pickle
import sys


def warm_up() -> None:
    """Import matplotlib and render a small figure, so fonts and caches are loaded before the first job."""
    from clftrain.views.plots import new_figure

    fig, axes = new_figure(1, 1, (2, 2))
    axes[0, 0].plot([0, 1], [0, 1], label="x")
    axes[0, 0].legend()
    fig.savefig(io.BytesIO(), format="png")


def serve(requests, replies) -> None:
    while True:
        try:
            job = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = (job.draw(), None)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent, which reports it
            reply = (None, f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    warm_up()
    serve(sys.stdin.buffer, sys.stdout.buffer)
