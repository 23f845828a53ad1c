"""tracking: [mlflow]: each run directory mirrored as one MLflow run (metrics.csv stays the source of truth).

Where: the store MLFLOW_TRACKING_URI names when it is set, else a SQLite file beside the run directory (or beside
the sweep directory): `runs/mlflow.db`, with the artifacts in `runs/mlartifacts/`; the experiment
MLFLOW_EXPERIMENT_NAME names, else `clftrain`. RUN_DIR/mlflow.json records the store, the MLflow run and the
epochs written, so that `fit --resume` goes on in the same MLflow run (and store) without writing an epoch twice.

What: one MLflow run per run directory, named after it (tags: its path, clftrain's version); the resolved config as
params (`train.lr`); every metrics.csv column of each evaluated epoch as a metric at step = epoch (a run with
seeds: one metric per seed, `test_acc/seed_3`, and their mean, `test_acc/mean`, at the epochs every seed
evaluated); once the run ends `final/*` and `best/*` (seeds: the means, and `final/test_acc/seed_3`, ...), then
config.yaml, metrics.csv, summary.json, report.html, plots/ and checkpoints/ as artifacts. A sweep is a parent
MLflow run (its sweep.csv and sweep.json as artifacts) with one child run per combination (`mlflow.parentRunId`).

Cost: mlflow is imported (about 1 s) and the store opened (about 2 s the first time, when MLflow creates its
tables) before training starts, outside its timing; metrics are written in batches (MlflowClient.log_batch)
every FLUSH_S seconds of training and when it ends, so an epoch pays nothing for them. A store that cannot be
written is refused before anything is (check_store), one MLflow cannot open fails the run before its first epoch
with the reason; a failure after that leaves the run training and says so in summary.json's notes.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from clftrain import __version__
from clftrain.errors import UserError
from clftrain.store import rundir
from clftrain.training import Callback, EpochLoop

RECORD = "mlflow.json"  # in a run directory (its MLflow run) and in a sweep directory (the parent run)
STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"
EXPERIMENT = "clftrain"
# MLflow's own limits on one log_batch call and on a param's value.
BATCH_METRICS, BATCH_PARAMS, PARAM_CHARS = 1000, 100, 6000
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "diverged": "FAILED", "failed": "FAILED"}
ARTIFACT_FILES = (rundir.CONFIG, rundir.METRICS, rundir.SUMMARY, "report.html")
ARTIFACT_FOLDERS = (rundir.PLOTS, rundir.CHECKPOINTS)

_clients: dict[tuple[str, str], Any] = {}  # (tracking URI, experiment) -> (MlflowClient, its id), once per process


# ---------------------------------------------------------------------- the store
def read_record(folder: Path) -> dict | None:
    path = folder / RECORD
    if not path.is_file():
        return None
    record = rundir.read_json(path)
    if not isinstance(record.get("run_id"), str) or not isinstance(record.get("tracking_uri"), str):
        raise UserError(f"{path} is damaged (no run_id and tracking_uri); delete it to start a new MLflow run")
    return record


def tracking_uri(run_dir: Path) -> str:
    """The store of a run directory, existing or to be: the one its mlflow.json (or its sweep's) recorded, else
    MLFLOW_TRACKING_URI, else sqlite beside it. A relative sqlite path is made absolute: resume works from
    anywhere."""
    record = read_record(run_dir) if run_dir.is_dir() else None
    if record is None and (run_dir.parent / RECORD).is_file():
        parent = read_record(run_dir.parent)
        record = parent if parent.get("kind") == "sweep" else None
    if record is not None:
        return record["tracking_uri"]
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        return sqlite_uri(run_dir.parent / STORE)
    path = sqlite_path(uri)
    return sqlite_uri(path) if path is not None and not path.is_absolute() else uri


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{Path(os.path.abspath(path)).as_posix()}"


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///path` URI (None for other stores and an in-memory database)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def check_store(run_dir: Path) -> None:
    """Before anything is written: a SQLite store's file (or the folder it will be created in) can be written.
    Other stores (a tracking server) are only reached when training starts."""
    uri = tracking_uri(run_dir)
    path = sqlite_path(uri)
    if path is None:
        return
    hint = ("make it writable, or point MLFLOW_TRACKING_URI at a store that is (e.g. "
            "MLFLOW_TRACKING_URI=sqlite:///$HOME/mlflow.db)")
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK):
            raise UserError(f"tracking: mlflow: the MLflow store {path} cannot be written; {hint}")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"tracking: mlflow: the MLflow store {path} cannot be created ({folder} is not a writable "
                        f"folder); {hint}")


def open_store(uri: str):
    """(MlflowClient, experiment id) of a store, the experiment created on first use; a UserError naming the
    store when MLflow cannot open it."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or EXPERIMENT
    if (uri, name) in _clients:
        return _clients[uri, name]
    from mlflow.tracking import MlflowClient

    for logger in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." is not the user's business
        logging.getLogger(logger).setLevel(logging.WARNING)

    path = sqlite_path(uri)
    try:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = (path.parent / ARTIFACTS).resolve().as_uri() if path is not None else None
            try:
                experiment_id = client.create_experiment(name, artifact_location=location)
            except Exception:  # noqa: BLE001 - another process created it first
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        elif experiment.lifecycle_stage != "active":
            raise UserError(f"tracking: mlflow: the experiment {name!r} in {uri} is deleted; restore it (mlflow "
                            "experiments restore --experiment-id "
                            f"{experiment.experiment_id}) or choose another with MLFLOW_EXPERIMENT_NAME")
        else:
            experiment_id = experiment.experiment_id
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow's and SQLAlchemy's errors, whatever their type
        raise UserError(f"tracking: mlflow: cannot open the MLflow store {uri}: {reason(exc)}; fix it, point "
                        "MLFLOW_TRACKING_URI at another store, or remove mlflow from tracking") from None
    _clients[uri, name] = client, experiment_id
    return _clients[uri, name]


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def start_run(client, experiment_id: str, name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
    from mlflow.entities import Param

    run = client.create_run(experiment_id, run_name=name, tags=tags)
    items = [Param(key, value) for key, value in params.items()]
    for first in range(0, len(items), BATCH_PARAMS):
        client.log_batch(run.info.run_id, params=items[first:first + BATCH_PARAMS])
    return run.info.run_id


def param_values(flat: dict[str, Any]) -> dict[str, str]:
    """Flattened config values as MLflow params: keys in the characters MLflow allows, values within its limit."""
    return {re.sub(r"[^\w.\- :/]", "_", key)[:250]: str(value)[:PARAM_CHARS] for key, value in flat.items()}


def base_tags(folder: Path) -> dict[str, str]:
    return {"clftrain.run_dir": str(folder.resolve()), "clftrain.version": __version__}


def log_folder(client, run_id: str, folder: Path) -> None:
    for name in ARTIFACT_FILES:
        if (folder / name).is_file():
            client.log_artifact(run_id, str(folder / name))
    for name in ARTIFACT_FOLDERS:
        if (folder / name).is_dir() and any((folder / name).iterdir()):
            client.log_artifacts(run_id, str(folder / name), artifact_path=name)


# ---------------------------------------------------------------------- one run directory
class MLflowTracker(Callback):
    """A run directory's MLflow run: opened (or, resumed, found again) when training starts, the recorder's new
    metrics.csv rows written every FLUSH_S seconds and when training ends, the rest by end() once the summary
    and the plots are written."""

    FLUSH_S = 30.0

    def __init__(self, recorder, params: dict[str, Any]) -> None:
        """`params`: the run's config flattened, `train.lr` style (tracking.flat_config)."""
        self.recorder, self.run_dir, self.params = recorder, recorder.run_dir, params
        self.client = self.run_id = None
        self.written, self.flushed_at, self.started_wall = 0, time.monotonic(), time.time()
        self.logged: dict[str, int] = {}  # seed ("" without seeds) -> the last epoch in the MLflow run
        self.notes: list[str] = []
        self.record: dict[str, Any] = {}

    # -- the loop's hooks
    def on_fit_start(self, trainer: EpochLoop) -> None:
        self.written = len(self.recorder.rows())  # a resumed run wrote the earlier ones
        self.started_wall = time.time() - trainer.seconds  # a row's timestamp: the start + its `seconds`
        uri = tracking_uri(self.run_dir)
        client, experiment_id = open_store(uri)
        try:
            self.open_run(client, experiment_id, uri, trainer)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"tracking: mlflow: cannot start the MLflow run of {self.run_dir} in {uri}: "
                            f"{reason(exc)}; fix the store, or remove mlflow from tracking and resume") from None
        self.client, self.flushed_at = client, time.monotonic()

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if self.client is not None and time.monotonic() - self.flushed_at >= self.FLUSH_S:
            self.flush()

    def on_fit_end(self, trainer: EpochLoop) -> None:
        if self.client is not None:
            self.flush()

    # -- the MLflow run
    def open_run(self, client, experiment_id: str, uri: str, trainer: EpochLoop) -> None:
        record = read_record(self.run_dir)
        if record is not None and record["tracking_uri"] == uri and self.found(client, record["run_id"]):
            client.update_run(record["run_id"], status="RUNNING")
            epochs = self.recorder.config.train.epochs
            client.set_tag(record["run_id"], "clftrain.resumed", f"at epoch {trainer.epoch}, to {epochs} epochs")
            self.run_id, self.record = record["run_id"], record
            self.logged = {str(k): int(v) for k, v in (record.get("logged") or {}).items()}
            return
        if record is not None:
            self.notes.append(f"mlflow: the MLflow run {record['run_id']} that {self.run_dir / RECORD} names is not "
                              f"in {uri}: this run is logged to a new one from epoch {trainer.epoch + 1}")
        config = self.recorder.config
        tags = base_tags(self.run_dir)
        if config.seeds is not None:
            tags["clftrain.seeds"] = " ".join(map(str, config.seeds))
        parent = read_record(self.run_dir.parent) if (self.run_dir.parent / RECORD).is_file() else None
        if parent is not None and parent.get("kind") == "sweep" and parent["tracking_uri"] == uri:
            tags["mlflow.parentRunId"] = parent["run_id"]
            experiment_id = parent.get("experiment_id", experiment_id)
        self.run_id = start_run(client, experiment_id, self.run_dir.name, tags, param_values(self.params))
        self.record = {"kind": "run", "tracking_uri": uri, "experiment_id": experiment_id, "run_id": self.run_id,
                       "logged": {}}
        self.save_record()

    @staticmethod
    def found(client, run_id: str) -> bool:
        try:
            return client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:  # noqa: BLE001 - MlflowException RESOURCE_DOES_NOT_EXIST
            return False

    def save_record(self) -> None:
        self.record["logged"] = dict(self.logged)
        rundir.write_json(self.run_dir / RECORD, self.record)

    def flush(self) -> None:
        """The new rows as one log_batch per BATCH_METRICS metrics; a failure stops the tracker, not training."""
        if self.client is None:
            return
        rows = self.recorder.rows()
        metrics = self.row_metrics(rows[self.written:])
        try:
            self.log_metrics(metrics)
            self.save_record()
        except Exception as exc:  # noqa: BLE001 - the run goes on: metrics.csv has every row
            self.stop(f"mlflow: stopped writing to {self.record.get('tracking_uri')} at epoch "
                      f"{max(self.logged.values(), default=0)}: {reason(exc)}; metrics.csv has every row")
            return
        self.written, self.flushed_at = len(rows), time.monotonic()

    def row_metrics(self, rows: list[dict[str, float]]) -> list:
        from mlflow.entities import Metric

        metrics, by_epoch = [], {}
        for row in rows:  # a run with seeds has one row per replica, each with its `seed`
            seed = str(int(row["seed"])) if "seed" in row else ""
            epoch = int(row["epoch"])
            if epoch <= self.logged.get(seed, 0):
                continue  # written before the run was stopped and resumed
            stamp = int((self.started_wall + row.get("seconds", 0.0)) * 1000)
            suffix = f"/seed_{seed}" if seed else ""
            metrics += [Metric(f"{key}{suffix}", float(value), stamp, epoch) for key, value in row.items()
                        if key not in ("epoch", "seed") and value is not None]
            self.logged[seed] = epoch
            if seed:
                by_epoch.setdefault(epoch, []).append((row, stamp))
        seeds = len(self.recorder.config.seeds or [])
        for epoch, replica_rows in by_epoch.items():
            if len(replica_rows) != seeds:
                continue  # a replica stopped early or diverged: no mean of the others
            stamp = replica_rows[0][1]
            for key in replica_rows[0][0]:
                values = [row[key] for row, _ in replica_rows if row.get(key) is not None]
                if key not in ("epoch", "seed") and values and all(math.isfinite(v) for v in values):
                    metrics.append(Metric(f"{key}/mean", sum(values) / len(values), stamp, epoch))
        return metrics

    def log_metrics(self, metrics: list) -> None:
        for first in range(0, len(metrics), BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[first:first + BATCH_METRICS])

    def stop(self, note: str) -> None:
        self.notes.append(note)
        self.client = None

    def end(self, summary: dict | None, failure: BaseException | None = None) -> None:
        """After the summary and the plots (or a failure): the last rows, the final and best metrics, the files
        as artifacts, and the MLflow run's status. A failure here is a note in the summary, not the run's."""
        if self.client is None:
            self.add_notes(summary)
            return
        self.flush()
        if self.client is None:
            self.add_notes(summary)
            return
        try:
            if summary is not None:
                self.log_metrics(self.end_metrics(summary))
            log_folder(self.client, self.run_id, self.run_dir)
            status = "KILLED" if isinstance(failure, KeyboardInterrupt) else "FAILED"
            if summary is not None:
                status = STATUS.get(summary.get("status"), "FINISHED")
            self.client.set_terminated(self.run_id, status=status)
        except Exception as exc:  # noqa: BLE001
            self.notes.append(f"mlflow: could not finish the MLflow run {self.run_id}: {reason(exc)}")
        self.add_notes(summary)

    def end_metrics(self, summary: dict) -> list:
        from mlflow.entities import Metric

        stamp, epoch = int(time.time() * 1000), int(summary.get("epochs_run") or 0)

        def metrics(prefix: str, row: dict | None, suffix: str = "") -> list:
            row = row or {}
            step = int(row["epoch"]) if isinstance(row.get("epoch"), (int, float)) else epoch
            return [Metric(f"{prefix}/{key}{suffix}", float(value), stamp, step) for key, value in row.items()
                    if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)]

        found = metrics("final", summary.get("final")) + metrics("best", summary.get("best"))
        for replica in summary.get("replicas") or []:
            suffix = f"/seed_{replica['seed']}"
            found += metrics("final", replica.get("final"), suffix) + metrics("best", replica.get("best"), suffix)
        return found

    def add_notes(self, summary: dict | None) -> None:
        if not self.notes or summary is None:
            return
        summary.setdefault("notes", []).extend(self.notes)
        self.notes = []
        try:
            rundir.write_json(self.run_dir / rundir.SUMMARY, summary)
        except OSError:
            pass  # the run is complete without this note


# ---------------------------------------------------------------------- a sweep
def start_sweep(config, sweep_dir: Path, grid: dict[str, list[str]]) -> None:
    """The sweep's parent MLflow run, recorded in SWEEP_DIR/mlflow.json for its runs' trackers to nest under."""
    uri = tracking_uri(sweep_dir)
    client, experiment_id = open_store(uri)
    params = {"sweep.config": config.name, **{f"grid.{key}": ", ".join(values) for key, values in grid.items()}}
    try:
        run_id = start_run(client, experiment_id, sweep_dir.name, {**base_tags(sweep_dir), "clftrain.sweep": "true"},
                           param_values(params))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"tracking: mlflow: cannot start the sweep's MLflow run in {uri}: {reason(exc)}") from None
    rundir.write_json(sweep_dir / RECORD, {"kind": "sweep", "tracking_uri": uri, "experiment_id": experiment_id,
                                           "run_id": run_id})


def end_sweep(sweep_dir: Path, files: tuple[str, ...], status: str) -> list[str]:
    """The parent run's artifacts (the ranked sweep.csv, ...) and status; notes on what failed."""
    record = read_record(sweep_dir)
    if record is None:
        return []
    try:
        client, _ = open_store(record["tracking_uri"])
        for name in (*files, "report.html"):
            if (sweep_dir / name).is_file():
                client.log_artifact(record["run_id"], str(sweep_dir / name))
        client.set_terminated(record["run_id"], status=STATUS.get(status, "FINISHED"))
    except Exception as exc:  # noqa: BLE001 - the sweep's runs are complete without it
        return [f"mlflow: could not finish the sweep's MLflow run {record['run_id']}: {reason(exc)}"]
    return []
