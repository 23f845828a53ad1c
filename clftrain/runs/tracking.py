"""Experiment trackers a run writes to besides metrics.csv (which stays the source of truth): `tracking:` in the
config, or `fit --track NAME`.

tensorboard: event files under RUN_DIR/tensorboard/ through torch's own SummaryWriter: every metrics.csv
column of each evaluated epoch as a scalar at that epoch (a run with seeds: one scalar per seed,
`test_acc/seed_3`), written in batches (every 30 s of training and at its end), and once the run ends its
hyperparameters with the final metrics (TensorBoard's HPARAMS tab).

mlflow: one MLflow run per run directory in a local SQLite store (runs/mlflow.db) or MLFLOW_TRACKING_URI's; a
sweep as a parent run with a child per combination (runs/mlflow_tracking.py).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from clftrain.config import Config
from clftrain.errors import UserError
from clftrain.training import Callback, EpochLoop

# tracker -> (the packages it needs, separated by spaces; how to install them)
EXTRAS = {"tensorboard": ("tensorboard", "pip install 'clftrain[tracking]'"),
          "mlflow": ("mlflow sqlalchemy alembic", "pip install 'clftrain[tracking]'")}
FOLDER = "tensorboard"


def check_trackers(config: Config, run_dir: Path | None = None) -> None:
    """Each tracker the config names can be used here (its packages are installed; MLflow's store can be written
    where `run_dir`, the run or sweep directory to be or the one resumed, puts it); before anything is written."""
    import importlib.util

    for name in config.tracking:
        packages, install = EXTRAS[name]
        for package in packages.split():
            if importlib.util.find_spec(package) is None:
                raise UserError(f"tracking: {name} needs the {package} package, which is not installed: {install} "
                                f"(or remove {name} from tracking)")
    if "mlflow" in config.tracking and run_dir is not None:
        from clftrain.runs.mlflow_tracking import check_store

        check_store(run_dir)


def trackers(recorder) -> list[Callback]:
    """The callbacks writing a run directory's trackers (lifecycle.RunRecorder: its config, rows, summary)."""
    from clftrain.runs.mlflow_tracking import MLflowTracker

    made = {"tensorboard": lambda: TensorBoardTracker(recorder),
            "mlflow": lambda: MLflowTracker(recorder, flat_config(recorder.config.to_dict()))}
    return [made[name]() for name in dict.fromkeys(recorder.config.tracking)]  # each once


@contextlib.contextmanager
def ending_trackers(tracked: Sequence[Callback], recorders: Sequence) -> Iterator[list[dict]]:
    """Around a run's training, summaries and plots: yields the list to put the recorders' summaries in; then
    each tracker with an `end` writes what needs them (MLflow: final metrics, artifacts, the run's status), or
    marks its run failed when training raised."""
    summaries: list[dict] = []
    ends = [t for t in tracked if hasattr(t, "end")]
    try:
        yield summaries
    except BaseException as exc:
        for tracker in ends:
            with contextlib.suppress(Exception):  # the failure itself is what the user must see
                tracker.end(None, exc)
        raise
    by_recorder = {id(recorder): summary for recorder, summary in zip(recorders, summaries)}
    for tracker in ends:
        tracker.end(by_recorder.get(id(tracker.recorder)))


def start_sweep_tracking(config: Config, sweep_dir: Path, grid: dict[str, list[str]]) -> None:
    """A sweep's own entry in its trackers (MLflow: the parent run its runs nest under)."""
    if "mlflow" in config.tracking:
        from clftrain.runs.mlflow_tracking import start_sweep

        start_sweep(config, sweep_dir, grid)


@contextlib.contextmanager
def ending_sweep(config: Config, sweep_dir: Path, files: tuple[str, ...], main: bool) -> Iterator[list[str]]:
    """Around a sweep's batches: yields the list to put its status in; then its files (sweep.csv, ranked) go to
    its trackers with that status (MLflow: the parent run's artifacts), or it is marked failed. `main`: this
    process ends it (under torchrun, rank 0)."""
    status: list[str] = []
    if "mlflow" not in config.tracking or not main:
        yield status
        return
    from clftrain.runs.mlflow_tracking import end_sweep

    try:
        yield status
    except BaseException as exc:
        end_sweep(sweep_dir, (), "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    for note in end_sweep(sweep_dir, files, status[-1] if status else "completed"):
        print(f"note: {note}", file=sys.stderr)


class TensorBoardTracker(Callback):
    """Writes the recorder's new metrics.csv rows every FLUSH_S seconds of training and when it ends (an
    add_scalar costs ~0.1 ms and importing the writer ~0.1 s: paid in batches, not in every evaluated epoch),
    then the hparams."""

    FLUSH_S = 30.0

    def __init__(self, recorder) -> None:
        self.recorder, self.writer, self.written, self.flushed_at = recorder, None, None, time.monotonic()

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if time.monotonic() - self.flushed_at >= self.FLUSH_S:
            self._write_new_rows()

    def on_fit_end(self, trainer: EpochLoop) -> None:
        self._write_new_rows()
        summary = self.recorder.summary()
        final = {f"final/{k}": v for k, v in (summary.get("final") or {}).items()
                 if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v)}
        self.writer.add_hparams(flat_config(self.recorder.config.to_dict()), final, run_name="hparams")
        self.writer.close()

    def on_fit_start(self, trainer: EpochLoop) -> None:
        self.written = len(self.recorder.rows())  # a resumed run wrote the earlier ones

    def _write_new_rows(self) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.recorder.run_dir / FOLDER), flush_secs=self.FLUSH_S)
        rows = self.recorder.rows()
        for one in rows[self.written:]:  # a run with seeds adds one row per replica, each with its `seed`
            suffix = f"/seed_{int(one['seed'])}" if "seed" in one else ""
            for key, value in one.items():
                if key not in ("epoch", "seed") and value is not None and math.isfinite(value):
                    self.writer.add_scalar(f"{key}{suffix}", value, global_step=int(one["epoch"]))
        self.written, self.flushed_at = len(rows), time.monotonic()


def flat_config(config: dict, prefix: str = "") -> dict:
    """`train.lr`-style keys to numbers, strings and booleans (what the HPARAMS tab shows)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)
    return flat
