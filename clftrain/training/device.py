"""Turn the config's `device` into a torch.device that exists on this machine, and pick the CPU threads."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator

import torch
from torch import nn

from clftrain.errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto: CUDA if present, else Apple MPS, else CPU. An explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device = '{name}': no CUDA GPU is available here; use device: auto or cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device = '{name}': only {torch.cuda.device_count()} CUDA device(s) here "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device = 'mps': Apple MPS is not available here; use device: auto or cpu")
    return torch.device(name)


class ThreadChooser:
    """`threads: auto` on the CPU, measured rather than guessed: after one warm-up step, the next training steps
    alternate between 1 thread and torch's default N, and the run goes on with the faster (by the median step
    time; N must win by 10% to be kept, one thread being the cheaper bet on a shared machine). Only the timed
    steps run at N: everything between them (evaluation, callbacks) runs at 1 until the choice is made.

    On a busy machine one N-thread step can cost as much as a hundred at 1 thread (OpenMP threads spin waiting
    for a core), so N is tried only when it can win: not when the machine has fewer than N cores free right now
    (the kernel's count of runnable tasks, /proc/loadavg: then 1 thread is measured and kept), and an N step
    ABANDON times slower than one thread's ends the measurement at once. The machine's load changes, so the
    choice is measured again every RECHECK_S seconds of training (another process may have left), and at once
    when the last MEASURED steps' median is SLOWER times the measured one (another process took the cores);
    measuring again waits while earlier measurements cost more than BUDGET of the training time.
    The steps measured are training steps: nothing is repeated. Where a step's matrices are large enough for
    torch to split them, 1 and N threads round sums differently (about 1e-7): the choice is in summary.json
    (`threads`), and `threads: N` fixes it for runs that must match across machines and loads.

    Measured in `make bench-threads` (README, Speed): a 12-seed [32, 32] run on a 214-row table picked 2
    threads by the old size rule and took 15.1 s on a busy machine, 0.44 s with 1."""

    MEASURED = 5  # steps at each thread count
    KEPT = 5  # measurements summary.json lists (a long run on a changing machine measures every RECHECK_S)
    RECHECK_S = 30.0
    SLOWER = 2.0  # steps this many times slower than measured start a new measurement
    ABANDON = 3.0  # an N-thread step this many times slower than the 1-thread median settles it: 1 thread
    N_MARGIN = 0.9  # N threads are kept only when their median step takes less than this share of 1 thread's
    BUDGET = 0.05  # the most of the training time that N-thread steps slower than 1 thread's may have cost

    def __init__(self, many: int, free_cores=None) -> None:
        self.counts = (1, many)
        self.free_cores = free_cores or cores_free
        self.choices: list[dict] = []  # the latest KEPT measurements: seconds per step at each count, the count kept
        self.measurements = 0
        self.began, self.cost = time.monotonic(), 0.0  # cost: seconds N-thread steps lost against 1 thread's
        self._start_measuring()

    def _start_measuring(self) -> None:
        free = self.free_cores()
        self.busy = free is not None and free < self.counts[1]
        tried = (1,) if self.busy else self.counts
        self.schedule = [1] + [c for _ in range(self.MEASURED) for c in tried]  # a warm-up step first
        self.times: dict[int, list[float]] = {c: [] for c in self.counts}
        self.free, self.warming = free, True
        torch.set_num_threads(1)

    def wrap(self, step):
        def timed_step(*args, **kwargs):
            threads = self.schedule.pop(0) if self.schedule else None
            if threads is not None:
                torch.set_num_threads(threads)
            started = time.perf_counter()
            result = step(*args, **kwargs)
            seconds = time.perf_counter() - started
            if threads is None:
                self._watch(seconds)
            else:
                self._measured(threads, seconds)
            return result

        return timed_step

    def _measured(self, threads: int, seconds: float) -> None:
        torch.set_num_threads(1)  # until the choice: the work between steps is not timed, and 1 is the safe bet
        if self.warming:  # the warm-up step (allocations, first kernels): not counted
            self.warming = False
            return
        self.times[threads].append(seconds)
        one = statistics.median(self.times[1])
        if threads != 1:
            self.cost += max(seconds - one, 0.0)
        abandon = threads != 1 and seconds > self.ABANDON * one
        if abandon or not self.schedule:
            self.schedule = []
            self._choose()

    def _choose(self) -> None:
        one = statistics.median(self.times[1])
        many = statistics.median(self.times[self.counts[1]]) if self.times[self.counts[1]] else None
        self.chosen = self.counts[1] if many is not None and many < self.N_MARGIN * one else 1
        torch.set_num_threads(self.chosen)
        self.expected = many if self.chosen != 1 else one
        self.checked_at, self.recent = time.monotonic(), []
        self.measurements += 1
        choice = {"seconds_per_step": {str(c): round(statistics.median(self.times[c]), 6)
                                       for c in self.counts if self.times[c]},
                  "steps": {str(c): len(self.times[c]) for c in self.counts}, "threads": self.chosen}
        if self.busy:
            choice["not_tried"] = f"{self.counts[1]} threads: {max(self.free, 0)} of the cores were free"
        self.choices = [*self.choices[1 - self.KEPT:], choice]

    def _watch(self, seconds: float) -> None:
        self.recent = [*self.recent[1 - self.MEASURED:], seconds]
        jumped = len(self.recent) == self.MEASURED and statistics.median(self.recent) > self.SLOWER * self.expected
        if not (jumped or time.monotonic() - self.checked_at >= self.RECHECK_S):
            return
        if self.cost > self.BUDGET * (time.monotonic() - self.began):  # measuring has cost enough for now
            self.checked_at, self.recent = time.monotonic(), []
            return
        self._start_measuring()

    def report(self) -> dict | int:
        """summary.json's `threads`: the count trained with last, how often it was measured, the latest
        measurements."""
        if not self.choices:  # training ended while measuring (the work between timed steps ran at 1)
            return 1
        return {"chosen": self.choices[-1]["threads"], "measurements": self.measurements, "latest": self.choices}


def cores_free() -> int | None:
    """Cores no other task wants right now: this process's cores less the tasks the kernel has running or
    ready (/proc/loadavg's fourth field, which counts the task reading it); None where there is no such file."""
    try:
        running = int(open("/proc/loadavg").read().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores - (running - 1)


def current_threads() -> int:
    """The CPU threads torch computes with right now (a checkpoint records them: resume goes on with them)."""
    return torch.get_num_threads()


def auto_measures(setting: int | str, model: nn.Module) -> bool:
    """Whether `threads: auto` is measured here: the CPU, more than one thread to choose from, and no
    OMP_NUM_THREADS (the user chose already)."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return setting == "auto" and on_cpu and not os.environ.get("OMP_NUM_THREADS") and torch.get_num_threads() > 1


@contextlib.contextmanager
def training_threads(setting: int | str, loop) -> Iterator:
    """Train `loop` with `setting` CPU threads (a number) or measured ones (auto: ThreadChooser), then give torch
    back its previous setting; yields what summary.json records (the number, or the measurements)."""
    previous = torch.get_num_threads()
    chooser = ThreadChooser(previous) if auto_measures(setting, loop.model) else None
    if setting != "auto":
        torch.set_num_threads(int(setting))
    replaced = "train_step" in vars(loop)  # a caller's own wrapper (a test's), kept as it was
    step = loop.train_step
    if chooser is not None:
        loop.train_step = chooser.wrap(step)
    try:
        yield chooser if chooser is not None else _Fixed(torch.get_num_threads())
    finally:
        if chooser is not None:
            if replaced:
                loop.train_step = step
            else:
                del loop.train_step  # the class's method again
        torch.set_num_threads(previous)


class _Fixed:
    def __init__(self, threads: int) -> None:
        self.threads = threads

    def report(self) -> int:
        return self.threads
