"""The lifecycle every kind of run shares, one seed or a group of replica runs alike.

  create the run directory and write its config -> "running" summary -> train under signal
  handling and the chosen CPU threads, with the callbacks in their one order -> the guarded
  best-then-last save -> the final summary -> plots (outside the failure guard: a picture that
  cannot be drawn never relabels a finished run) ; any failure before the summary marks the run
  failed (or interrupted), naming why.

A kind of run (runs/single.py, runs/seeds.py) describes each of its run directories with a
`RunRecorder`: its checkpoints, rows, summary fields and the trained model its plots show.
Everything else - when to save, what a summary always holds, what resume checks - lives here,
so a writer or logger added later is added once and runs for single runs, seeds and sweeps.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from clftrain import __version__
from clftrain.config import Config, config_to_yaml
from clftrain.data import Dataset, positive_index
from clftrain.errors import UserError
from clftrain.inference.report import REPORT, draw_plots_and_report
from clftrain.store import rundir, snapshots
from clftrain.training import Callback, EpochLoop, current_threads, distributed, loss_weights, training_threads
from clftrain.views.drawing import Drawer, shared_drawer

# Exit codes of a run stopped by a signal, as shells report them (128 + signal number).
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
# The only keys `--set` may change on resume: the rest would make it a different run.
RESUMABLE_KEYS = {"train.epochs"}


@dataclass
class FitResult:
    run_dir: Path
    summary: dict[str, Any]
    signal: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped training


class RunRecorder(ABC):
    """One run directory's view of a training loop: what its files hold. Written by RunWriter and train()."""

    run_dir: Path
    config: Config

    @abstractmethod
    def checkpoint(self) -> dict[str, Any]:
        """last.pt: the loop's state plus what eval, predict and resume need to rebuild the run."""

    @abstractmethod
    def best_version(self) -> int:
        """Moves whenever the best weights change (0: none yet): best.pt is rewritten when it moved."""

    @abstractmethod
    def best_checkpoint(self) -> dict[str, Any]:
        """best.pt: the best epoch's weights and metrics (no epoch in progress)."""

    @abstractmethod
    def rows(self) -> list[dict[str, float]]:
        """metrics.csv."""

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """summary.json, from run_summary() and the kind's own fields (final, best, ...)."""

    @abstractmethod
    def trained_run(self):
        """The inference.TrainedRun the end-of-run plots draw."""

    def save_now(self, epoch: int, due: bool) -> bool:
        """Whether the writer saves at this evaluated epoch, `due` being its own pacing. A run whose state lives
        in several processes (seeds spread over ranks) saves when they gathered it, by the same pacing."""
        return due


def assemble_callbacks(deciders: Sequence[Callback], user: Sequence[Callback],
                       writers: Sequence[Callback]) -> list[Callback]:
    """The one order every run's callbacks run in: the deciders (best weights, then early stopping), so that
    what they decide at an epoch is what every later callback sees; the user's (console, loggers); the
    writers last, so that a checkpoint holds every decision of its epoch."""
    return [*deciders, *user, *writers]


class RunWriter(Callback):
    """Saves metrics.csv, best.pt and last.pt at a logged epoch (every `every` epochs) once `interval` seconds
    have passed since the previous save, and when training stops.

    What holds at each moment: last.pt is always a whole checkpoint (atomic replace) of the last save, best.pt
    never newer than it; metrics.csv holds every row up to last.pt's epoch. A kill -9 or power cut loses the
    epochs since the last save (at most about `interval` seconds, plus the way to the next logged epoch); one
    before the first save leaves no checkpoint, and `fit --resume` starts the run over in place. Ctrl-C and
    SIGTERM lose nothing: the loop stops after its current step and saves."""

    def __init__(self, recorder: RunRecorder, every: int, interval: float) -> None:
        self.recorder, self.every, self.interval = recorder, every, interval
        self._best_written = recorder.best_version()
        self._saved_at = time.monotonic()  # the start counts as a save: the first comes `interval` s into training
        self.seconds = 0.0  # spent saving (summary.json's timings)

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        due = trainer.epoch % self.every == 0 and time.monotonic() - self._saved_at >= self.interval
        if self.recorder.save_now(trainer.epoch, due):
            self.save(trainer.epoch)

    def on_fit_end(self, trainer: EpochLoop) -> None:
        self.save(trainer.epoch)

    def save(self, epoch: int) -> None:
        recorder, run_dir = self.recorder, self.recorder.run_dir
        started = time.perf_counter()
        try:
            # best.pt first: a crash between the two leaves last.pt one save behind, never ahead.
            version = recorder.best_version()
            if version != self._best_written:
                rundir.save_checkpoint(rundir.checkpoint_path(run_dir, rundir.BEST), recorder.best_checkpoint())
                self._best_written = version
            # The thread count too: where it changes how sums round, a resume must go on with the same.
            rundir.save_checkpoint(rundir.checkpoint_path(run_dir, rundir.LAST),
                                   {**recorder.checkpoint(), "threads": current_threads()})
            rundir.write_metrics(run_dir / rundir.METRICS, recorder.rows())
            self.seconds += time.perf_counter() - started
            self._saved_at = time.monotonic()
        except OSError as exc:
            raise UserError(
                f"cannot save to {run_dir} at epoch {epoch}: {exc.strerror or exc}; "
                "the previous checkpoint is intact: free space (or fix permissions) and resume with "
                f"clftrain fit --resume {run_dir}"
            ) from None


# ---------------------------------------------------------------------- one process per run directory
LOCK = ".lock"
_held: dict[Path, tuple[int, int]] = {}  # run directory -> (open lock file, times this process holds it)


@contextlib.contextmanager
def hold_run(run_dir: Path) -> Iterator[None]:
    """The run directory's lock, for as long as this process trains it (re-entrant within the process): a
    second fit --resume of it, or one during its fit, is refused instead of both writing its files."""
    if not distributed.main_process():  # under torchrun rank 0 holds it for the launch; the others write nothing
        yield
        return
    key = run_dir.resolve()
    if key in _held:
        fd, count = _held[key]
        _held[key] = (fd, count + 1)
    else:
        _held[key] = (_lock(run_dir), 1)
    try:
        yield
    finally:
        fd, count = _held.pop(key)
        if count > 1:
            _held[key] = (fd, count - 1)
        elif fd >= 0:
            os.close(fd)  # closing the file releases the lock


def _lock(run_dir: Path) -> int:
    try:
        import fcntl
    except ImportError:  # no advisory locks here (Windows): nothing to hold
        return -1
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror or exc}; check its permissions "
                        "(or free space) and try again") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise UserError(f"{run_dir} is being trained by another clftrain process right now"
                        f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to end (or stop it) "
                        "before resuming it") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


# ---------------------------------------------------------------------- start, train, finish
def create_run(config: Config, out: Path | None, runs_root: Path) -> Path:
    """A new run directory holding the resolved config."""
    run_dir = rundir.create_run_dir(config.name, out, runs_root)
    write_config(run_dir, config)
    return run_dir


def restart_run(run_dir: Path, config: Config) -> Path:
    """An existing run directory made ready to train its run again from the start: what an earlier start left
    (a summary saying running or failed, plots) is removed; the config is written again."""
    for stale in (run_dir / rundir.SUMMARY, run_dir / rundir.METRICS, run_dir / REPORT):
        stale.unlink(missing_ok=True)
    for folder in (run_dir / rundir.CHECKPOINTS, run_dir / rundir.PLOTS, run_dir / snapshots.SNAPSHOTS):
        for leftover in folder.glob("*") if folder.is_dir() else ():
            if leftover.is_file():
                leftover.unlink()
    write_config(run_dir, config)
    return run_dir


def write_config(run_dir: Path, config: Config) -> None:
    try:
        rundir.atomic_write_text(run_dir / rundir.CONFIG, config_to_yaml(config))
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None


def on_main(world: distributed.World | None, make):
    """make() on rank 0 alone (it creates a directory or writes a file), and its result on every rank; its
    UserError raised on every rank, so that all stop alike. Just make() without a world."""
    if world is None:
        return make()
    result = error = None
    if world.is_main:
        try:
            result = make()
        except UserError as exc:
            error = str(exc)
    result, error = distributed.broadcast((result, error), world)
    if error is not None:
        failure = UserError(error)
        failure.said_by_rank_zero = not world.is_main  # the console shows it once
        raise failure
    return result


def train(loop: EpochLoop, recorders: Sequence[RunRecorder], deciders: Sequence[Callback],
          callbacks: Sequence[Callback], threads: int | str) -> tuple[list[dict], str | None]:
    """Train `loop` into the recorders' run directories; their summaries, and the signal that stopped it.
    Data-parallel, rank 0 does all of that; the other ranks train alongside (follow) and get its summaries."""
    world = loop.world
    if world is not None and not world.is_main:
        return _follow(loop, deciders, threads)
    from clftrain.runs.tracking import ending_trackers, trackers

    writers = [RunWriter(recorder, recorder.config.train.log_every, recorder.config.train.checkpoint_seconds)
               for recorder in recorders]
    tracked = [t for recorder in recorders for t in trackers(recorder)]
    loop.callbacks = assemble_callbacks(deciders, callbacks, [*writers, *tracked])
    drawer = shared_drawer()  # its workers import matplotlib while this process trains
    with contextlib.ExitStack() as held:
        for recorder in recorders:
            held.enter_context(hold_run(recorder.run_dir))
        with ending_trackers(tracked, recorders) as ended:  # after the plots: MLflow takes them as artifacts
            summaries, received = _train_held(loop, recorders, writers, drawer, threads)
            ended.extend(summaries)
    return distributed.broadcast(summaries, world, patient=True), received  # after rank 0's plots and report


def _follow(loop: EpochLoop, deciders: Sequence[Callback], threads: int | str) -> tuple[list[dict], str | None]:
    """A rank other than 0: the same loop and decisions (best weights, early stopping), no files, no console."""
    loop.callbacks = assemble_callbacks(deciders, [], [])
    with training_session(loop, threads) as (received, _):
        loop.fit()
    with lost_ranks(loop):
        return distributed.broadcast(None, loop.world, patient=True), received[0] if received else None


class LostRankError(UserError):
    """Another rank of the launch died or went silent: this one stops with a clear error (exit code 2)."""


@contextlib.contextmanager
def lost_ranks(loop: EpochLoop) -> Iterator[None]:
    """A collective that failed because another rank died or went silent (COLLECTIVE_TIMEOUT_S) as a UserError
    saying so: the checkpoints on disk are whole (atomic saves), and the run resumes from the last."""
    if loop.world is None:
        yield
        return
    try:
        yield
    except RuntimeError as exc:  # torch.distributed's errors (DistBackendError, ...) are RuntimeErrors
        if not distributed.is_collective_failure(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". This is typically")[0][:300]
        raise LostRankError(f"another process of this {loop.world.size}-process launch stopped or stopped answering "
                            f"(after at most {distributed.collective_timeout_s():g} s): {first}; this process stops too. "
                            "The last checkpoint is intact: resume the run with fit --resume") from None


def _train_held(loop: EpochLoop, recorders: Sequence[RunRecorder], writers: list[RunWriter], drawer: Drawer,
                threads: int | str) -> tuple[list[dict], str | None]:
    for recorder in recorders:  # before the guard: a directory that cannot be written is not marked failed in it
        write_summary(recorder.run_dir, {"name": recorder.config.name, "status": "running", "epochs_run": loop.epoch})
    try:
        with training_session(loop, threads) as (received, used):
            loop.fit()
        summaries = [{**recorder.summary(), "threads": used.report(),
                      "timings": {"checkpoints": round(writer.seconds, 3)}} for recorder, writer in zip(recorders, writers)]
        for recorder, summary in zip(recorders, summaries):
            write_summary(recorder.run_dir, summary)
    except BaseException as exc:
        for recorder in recorders:
            mark_failed(recorder, loop.epoch, exc)
        raise
    with signals_stop_drawing():  # Ctrl-C or SIGTERM now: the run is complete; only its pictures are missing
        for recorder, summary in zip(recorders, summaries):
            late = draw_plots(recorder, summary, drawer)
            if late:
                received.append(late)
                break
    return summaries, received[0] if received else None


class DrawingStopped(Exception):
    """A signal arrived while the end-of-run plots were drawn."""


@contextlib.contextmanager
def signals_handled_by(handler, signals=(signal.SIGINT, signal.SIGTERM)) -> Iterator[dict | None]:
    """`signals` handled by `handler` inside the block, the handlers before restored after (yielded: a caller may
    change what is restored). Off the main thread, where no handler can be installed, the block runs as it is
    (yielding None)."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield previous
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def signals_stop_drawing() -> Iterator[None]:
    def handler(signum, frame):
        raise DrawingStopped(signal.Signals(signum).name)

    with signals_handled_by(handler):
        yield


def write_summary(run_dir: Path, summary: dict) -> None:
    try:
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror or exc}; free space (or fix "
                        f"permissions) and resume with clftrain fit --resume {run_dir}") from None


def draw_plots(recorder: RunRecorder, summary: dict, drawer: Drawer) -> str | None:
    """The run's plots, then summary.json again with their time; one that cannot be drawn leaves the run as it
    is, with a note in summary.json (`notes`, shown by the console) instead of a failure. The signal that
    stopped the drawing, if one did."""
    started, stopped = time.perf_counter(), None
    try:
        run = recorder.trained_run()
        if recorder.config.report:  # report.html too, its figures drawn with the plots
            draw_plots_and_report(run, recorder.run_dir, drawer, summary, stops=(DrawingStopped,))
        else:
            run.draw_plots(recorder.run_dir, drawer)
        summary.setdefault("notes", []).extend(run.notes)
        if not summary["notes"]:
            del summary["notes"]
    except DrawingStopped as exc:
        stopped = str(exc)
        summary.setdefault("notes", []).append(f"plots not drawn: interrupted by {stopped}; clftrain fit --resume "
                                               f"{recorder.run_dir} draws them")
    except Exception as exc:  # noqa: BLE001 - whatever broke a picture, the trained run stays valid
        reason = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        summary.setdefault("notes", []).append(f"plots not drawn: {reason}; redraw with clftrain plot "
                                               f"{recorder.run_dir}")
    summary["timings"]["plots"] = round(time.perf_counter() - started, 3)
    with contextlib.suppress(OSError):  # the run is complete without this figure
        rundir.write_json(recorder.run_dir / rundir.SUMMARY, summary)
    return stopped


def mark_failed(recorder: RunRecorder, epoch: int, exc: BaseException) -> None:
    """Leave a failed run recognisable: summary.json says so and why."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    note = {"name": recorder.config.name, "status": status, "epochs_run": epoch,
            **({"seeds": recorder.config.seeds} if recorder.config.seeds is not None else {}),
            "error": str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"}
    with contextlib.suppress(OSError):  # the original error matters more than this note
        rundir.write_json(recorder.run_dir / rundir.SUMMARY, note)


@contextlib.contextmanager
def stop_on_signals(loop: EpochLoop) -> Iterator[list[str]]:
    """Ctrl-C / SIGTERM: finish the current step, save, and stop; a second Ctrl-C aborts at once."""
    received: list[str] = []

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the user insists
        received.append(name)
        loop.stop("interrupted")

    with signals_handled_by(handler) as previous:
        try:
            yield received
        except LostRankError:
            # torchrun's agent saw the other rank die too and SIGTERMs this one next: the default action would
            # kill it before it writes the run's state and says why; it is on its way out anyway.
            if previous is not None:
                previous[signal.SIGTERM] = signal.SIG_IGN
            raise


def resumed_threads(config: Config, payload: dict) -> int | str:
    """`threads: auto` resumed: the count the run was training with when it saved (measuring again could round
    differently and break bit-for-bit resume); a number in the config stays."""
    saved = payload.get("threads")
    return saved if config.threads == "auto" and isinstance(saved, int) and saved >= 1 else config.threads


@contextlib.contextmanager
def training_session(loop: EpochLoop, threads: int | str) -> Iterator[tuple[list[str], Any]]:
    """What every rank trains under: signals that stop it after a step, its CPU threads (measured for auto),
    and a lost rank as a clear error; yields (the signals received, what summary.json says of the threads)."""
    with stop_on_signals(loop) as received, training_threads(threads, loop) as used, lost_ranks(loop):
        yield received, used


def train_in_memory(loop: EpochLoop, threads: int | str, seconds: float) -> list[str]:
    """Train `loop` to its end with nothing written (fit DATA's probe and stopping check): a watchdog stops it
    within its epoch after `seconds`, as a signal would; returns the signals received."""
    watchdog = threading.Timer(max(seconds, 0.0), loop.stop, ("interrupted",))
    watchdog.daemon = True
    watchdog.start()
    try:
        with training_session(loop, threads) as (received, _):
            loop.fit()
    finally:
        watchdog.cancel()
    return received


# ---------------------------------------------------------------------- what every summary and checkpoint holds
def run_summary(config: Config, dataset: Dataset, loop: EpochLoop, device, model_description: dict) -> dict:
    """The summary.json fields every kind of run shares; the kind adds final, best and its own."""
    return {
        "name": config.name,
        "status": loop.status,
        "task": dataset.task.name,
        "epochs_run": loop.epoch,
        "epochs_planned": config.train.epochs,
        **loop.epoch_in_progress(),  # interrupted between mini-batches
        "seconds": round(loop.seconds, 3),
        "device": str(device),
        **({"distributed": loop.world.describe()} if loop.world is not None else {}),
        "model": model_description,
        "data": {"train": dataset.rows("train"), "test": dataset.rows("test"), "val": dataset.rows("val"),
                 "features": dataset.feature_names, "classes": dataset.class_names,
                 **({"stream": dataset.stream.describe()} if dataset.stream is not None else {})},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        **({"positive_class": dataset.class_names[positive_index(config, dataset.task, dataset.class_names)]}
           if len(dataset.class_names) == 2 and dataset.task.target == "class" else {}),
        **({"notes": list(dataset.notes)} if dataset.notes else {}),
    }


def validation_facts(config: Config) -> dict:
    """summary.json's word on the validation split: how large, and whether it was carved for the run's decisions
    (val_size: auto)."""
    return {"validation": {"fraction": config.dataset.val_size, "carved": config._validation_carved}}


def versions() -> dict[str, str]:
    """The versions a run was made with (read from the installed metadata: importing scikit-learn only to ask
    would cost a second)."""
    return {"clftrain": __version__, "python": platform.python_version(),
            **{name: metadata.version(name) for name in ("torch", "numpy", "scikit-learn")}}


def checkpoint_facts(config: Config, dataset: Dataset, loss_fn) -> dict[str, Any]:
    """What every checkpoint carries besides the loop's state: enough for eval and predict to rebuild
    the model's inputs, outputs and loss without the training data."""
    return {"config": config.to_dict(), "task": dataset.task.name, "feature_names": dataset.feature_names,
            "class_names": dataset.class_names, "preprocessor": dataset.preprocessor.to_dict(),
            "loss_weights": loss_weights(loss_fn)}


# ---------------------------------------------------------------------- resume
def is_finished(epoch: int, config: Config, payload: dict) -> bool:
    """Whether a checkpoint's run has nothing left to train: every epoch ran, it stopped early, or it diverged."""
    planned = ((payload.get("config") or {}).get("train") or {}).get("epochs", config.train.epochs)
    stopped_early = payload.get("status") == "completed" and epoch < planned
    return stopped_early or payload.get("status") in ("diverged", "pruned") or epoch >= config.train.epochs


def missing_end_steps(recorder: RunRecorder, status: str) -> list[str]:
    """What a finished run lacks of its end: a summary.json with its final status, its plots (a run killed
    while drawing them)."""
    missing = []
    try:
        summary = rundir.read_json(recorder.run_dir / rundir.SUMMARY)
    except (OSError, ValueError):
        summary = {}
    if not isinstance(summary, dict) or summary.get("status") != status or "final" not in summary:
        missing.append(rundir.SUMMARY)
    jobs = recorder.trained_run().figure_jobs(recorder.run_dir / rundir.PLOTS)
    missing += [f"{rundir.PLOTS}/{job.path.name}" for job in jobs if not job.path.is_file()]
    if recorder.config.report and not (recorder.run_dir / REPORT).is_file():
        missing.append(REPORT)
    return missing


def finish(recorder: RunRecorder, loop: EpochLoop, missing: list[str]) -> dict:
    """A finished run's end-of-run steps done again (summary.json, plots), as train() does them; the summary."""
    summary = {**recorder.summary(), "notes": [f"finished the end of a run that had stopped before it: wrote "
                                               f"{', '.join(missing)}"]}
    summary["timings"] = {}
    write_summary(recorder.run_dir, summary)
    draw_plots(recorder, summary, Drawer())  # here: a one-off, not worth starting a worker for
    return summary


def check_epochs_left(run_dir: Path, epoch: int, config: Config, payload: dict) -> None:
    """A run that has nothing left to train is refused: it ran every epoch, or stopped early (it completed
    before the epochs it was planned with)."""
    planned = ((payload.get("config") or {}).get("train") or {}).get("epochs", config.train.epochs)
    if payload.get("status") == "pruned":
        raise UserError(f"{run_dir} was pruned at epoch {epoch} by successive halving (sweep --halving): it is "
                        "complete; to train it on, start a new run from its config.yaml")
    if payload.get("status") == "completed" and epoch < planned:
        raise UserError(f"{run_dir} stopped early at epoch {epoch} (train.early_stopping): it is complete; "
                        "start a new run to train it differently")
    if epoch >= config.train.epochs:
        raise UserError(f"{run_dir} already ran {epoch} of {config.train.epochs} epochs; "
                        f"to train longer: clftrain fit --resume {run_dir} --set train.epochs=N")
