"""Drawing a run's figures, in this process or in warm worker processes.

Importing matplotlib and rendering a first figure costs about 0.5 s, drawing each figure 0.1-0.3 s,
and fit draws three when a run ends. So `clftrain fit` and `sweep` start the process's shared
`Drawer` first thing: its worker processes (plot_worker.py, a fresh interpreter: they share nothing
with torch) import matplotlib and render a throwaway figure while this process imports torch and
trains, and when a run ends its figures are drawn there, in parallel; every run of the process (a
sweep's many) uses the same workers. Where no worker can start (or one fails), the figures are drawn
in this process, as `clftrain plot` always does.

CLFTRAIN_PLOT_PROCESSES sets the number of workers: `auto` (the default: two where there are two cores
or more; measured on 2 cores, one worker draws circles' three figures in about 0.7 s, two in 0.35 s)
or a number, 0 to draw in this process.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PROCESSES_SETTING = "CLFTRAIN_PLOT_PROCESSES"
# A figure that takes longer than this in a worker is drawn here instead: a stuck worker never holds up a run.
WORKER_TIMEOUT_S = 120.0


@dataclass
class FigureJob:
    """One figure to draw: a function of views/plots.py by name and its arguments (arrays, rows, text), so that
    it can be drawn in this process or in another."""

    figure: str
    path: Path
    arguments: dict

    def draw(self) -> Path:
        from clftrain.views import plots  # matplotlib: imported only where a figure is drawn

        getattr(plots, self.figure)(self.path, **self.arguments)  # looked up at call time: tests may replace one
        return self.path


def worker_count() -> int:
    setting = os.environ.get(PROCESSES_SETTING, "auto").strip().lower()
    if setting == "auto":
        return 2 if (os.cpu_count() or 1) >= 2 else 0
    try:
        return max(0, int(setting))
    except ValueError:
        return 0


def _lower_priority() -> None:
    """In a starting worker: yield the CPU to training (a worker's imports must not slow the epochs down)."""
    try:
        os.nice(10)
    except OSError:
        pass


class WorkerFailed(RuntimeError):
    """A worker process could not answer (it ended, or its pipe broke): the figure is drawn here instead."""


class Drawer:
    """Draws FigureJobs: in warm worker processes when there are any, else (or for a job a worker failed) here."""

    def __init__(self, processes: int = 0) -> None:
        self.workers: queue.Queue[subprocess.Popen] = queue.Queue()
        self.started: list[subprocess.Popen] = []
        for _ in range(processes):
            try:
                worker = subprocess.Popen([sys.executable, "-m", "clftrain.views.plot_worker"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, preexec_fn=_lower_priority)
            except OSError:  # no processes here (limits, no interpreter path): draw in this process
                break
            self.started.append(worker)
            self.workers.put(worker)
        self.live = len(self.started)  # workers that still answer
        self.threads = ThreadPoolExecutor(len(self.started)) if self.started else None

    def draw(self, jobs: list[FigureJob]) -> list[tuple[FigureJob, Path | None, BaseException | None]]:
        """(job, path written or None, the error that stopped it or None) for each job, in order."""
        use_workers = self.threads is not None and self.live > 0
        futures = [self.threads.submit(self._in_worker, job) if use_workers else None for job in jobs]
        results = []
        for job, future in zip(jobs, futures):
            if future is not None:
                try:
                    path, error = future.result(timeout=WORKER_TIMEOUT_S)
                    results.append((job, path, RuntimeError(error) if error else None))
                    continue
                except Exception:  # noqa: BLE001 - the worker could not answer: draw it here
                    pass
            results.append(self._here(job))
        return results

    def _in_worker(self, job: FigureJob) -> tuple[Path | None, str | None]:
        worker = self._free_worker()
        try:
            pickle.dump(job, worker.stdin)
            worker.stdin.flush()
            reply = pickle.load(worker.stdout)
        except (OSError, EOFError, pickle.PickleError) as exc:
            self.live -= 1  # this worker is not put back
            raise WorkerFailed(str(exc)) from None
        self.workers.put(worker)
        return reply

    def _free_worker(self) -> subprocess.Popen:
        """The next worker free to draw; WorkerFailed at once when none is left alive (a signal to the process
        group ends them too), or after WORKER_TIMEOUT_S."""
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                return self.workers.get(timeout=0.05)
            except queue.Empty:
                if self.live <= 0:
                    break
        raise WorkerFailed("no worker left")

    @staticmethod
    def _here(job: FigureJob):
        try:
            return job, job.draw(), None
        except Exception as exc:  # noqa: BLE001 - reported by the caller as a note
            return job, None, exc

    def close(self) -> None:
        """End the workers: the end of their input, on which they exit (not waited for: they have nothing left
        to write, and waiting would add their exit to the run's)."""
        for worker in self.started:
            try:
                worker.stdin.close()
            except OSError:
                pass
        if self.threads is not None:
            self.threads.shutdown(wait=False)
        self.started, self.threads = [], None


_shared: Drawer | None = None


def shared_drawer() -> Drawer:
    """The process's Drawer, its workers started on the first call (clftrain fit and sweep call it first thing)
    and serving every run after; closed when the process ends."""
    global _shared
    if _shared is None or (_shared.started and _shared.live == 0):
        _shared = Drawer(worker_count())
        atexit.register(_shared.close)
    return _shared
