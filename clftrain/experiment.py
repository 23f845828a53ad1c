"""`clftrain fit` end to end: seed, build data/model/loop from the config, train, write the run directory.

Everything that can fail on the user's input (data, device, model) is built
before the run directory is created, so a bad config leaves nothing behind.
A run can be resumed from its directory alone (`resume_experiment`).
"""

from __future__ import annotations

import contextlib
import platform
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clftrain import __version__, rundir
from clftrain.config import Config, config_to_yaml, load_config, validate_config
from clftrain.data import Dataset, build_dataset
from clftrain.device import resolve_device, training_threads
from clftrain.errors import UserError, did_you_mean
from clftrain.losses import EXPECTS_PROBABILITIES, build_loss, loss_weights
from clftrain.model import build_model, count_parameters, describe_model, load_weights
from clftrain.optimizers import build_optimizer
from clftrain.trained import TrainedRun
from clftrain.train import BestTracker, Callback, EarlyStopping, Split, Trainer

# Exit codes of a run stopped by a signal, as shells report them (128 + signal number).
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
# The only keys `--set` may change on resume: the rest would make it a different run.
RESUMABLE_KEYS = {"train.epochs"}


@dataclass
class FitResult:
    run_dir: Path
    summary: dict[str, Any]
    signal: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_trainer(config: Config, dataset: Dataset, device: torch.device) -> Trainer:
    """Model, loss, optimizer and device tensors, all from the registries the config names."""
    task = dataset.task
    seed_everything(config.seed)  # initialisation depends on `seed` only
    model = build_model(config.model, dataset.n_features, task.out_features(dataset.n_classes), config.train.loss)
    model.to(device)
    loss_fn = build_loss(config.train, dataset, device)
    optimizer = build_optimizer(model.parameters(), config.train)
    return Trainer(
        model=model, optimizer=optimizer, loss_fn=loss_fn, task=task, cfg=config.train,
        splits=device_splits(dataset, device),
        outputs_are_probabilities=config.train.loss in EXPECTS_PROBABILITIES, seed=config.seed,
    )


def device_splits(dataset: Dataset, device: torch.device) -> dict[str, Split]:
    """The dataset's splits as tensors, moved to the device once, here: train, test and val if any."""
    def split(X, y):
        return Split(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device))

    splits = {"train": split(dataset.X_train, dataset.y_train), "test": split(dataset.X_test, dataset.y_test)}
    if dataset.X_val is not None:
        splits["val"] = split(dataset.X_val, dataset.y_val)
    return splits


def build_scheduler(optimizer: torch.optim.Optimizer, config: Config, n_train: int, mode: str):
    """(scheduler, when it steps) for config.train.scheduler, or (None, "epoch") without one."""
    from clftrain.schedulers import SCHEDULERS

    cfg = config.train.scheduler
    if cfg is None:
        return None, "epoch"
    steps = -(-n_train // (config.train.batch_size or n_train))  # steps per epoch: ceil
    return SCHEDULERS.get(cfg.name)(optimizer, cfg, config.train.epochs, steps, mode)


def attach_scheduler(trainer: Trainer, config: Config, monitor: str, mode: str) -> None:
    trainer.scheduler, trainer.scheduler_interval = build_scheduler(
        trainer.optimizer, config, len(trainer.splits["train"]), mode)
    trainer.scheduler_monitor = monitor


def resolve_task(config: Config, dataset: Dataset) -> Config:
    """`task: auto` on data only the file could tell (CSV): the config with task and loss resolved."""
    if config.task != "auto":
        return config
    return validate_config({**config.to_dict(), "task": dataset.task.name}, source="config")


def check_batch_size(config: Config, dataset: Dataset) -> None:
    size = config.train.batch_size
    if size is not None and size > len(dataset.X_train):
        raise UserError(
            f"train.batch_size = {size} is larger than the {len(dataset.X_train)} training rows; "
            "use batch_size: null for full-batch training, or a smaller size"
        )


def checkpoint_facts(config: Config, dataset: Dataset, loss_fn: torch.nn.Module) -> dict[str, Any]:
    """What every checkpoint carries besides the loop's state: enough for eval and predict to rebuild
    the model's inputs, outputs and loss without the training data."""
    return {"config": config.to_dict(), "task": dataset.task.name, "feature_names": dataset.feature_names,
            "class_names": dataset.class_names, "preprocessor": dataset.preprocessor.to_dict(),
            "loss_weights": loss_weights(loss_fn)}


def metric_columns(task_metric: str, has_val: bool) -> list[str]:
    splits = ["train", "val", "test"] if has_val else ["train", "test"]
    return [f"{split}_{quantity}" for split in splits for quantity in ("loss", task_metric)]


@dataclass
class Session:
    """One training session of a run: its config, data, trainer and the callbacks that hold state."""

    config: Config
    dataset: Dataset
    trainer: Trainer
    device: torch.device
    best: BestTracker
    stopper: EarlyStopping | None

    @classmethod
    def prepare(cls, config: Config) -> Session:
        device = resolve_device(config.device)
        dataset = build_dataset(config)
        config = resolve_task(config, dataset)
        trainer = build_trainer(config, dataset, device)
        has_val = dataset.X_val is not None
        columns = metric_columns(dataset.task.metric, has_val)
        es = config.train.early_stopping
        # With a validation split the test split is only for the final report.
        monitor = es.monitor if es else ("val_loss" if has_val else "test_loss")
        if monitor not in columns:
            raise UserError(
                f"train.early_stopping.monitor = '{monitor}' is not a recorded metric"
                f"{did_you_mean(monitor, columns)}; choose one of: {', '.join(columns)}"
            )
        check_batch_size(config, dataset)
        stopper = EarlyStopping(monitor, es.patience, es.min_delta, es.mode) if es else None
        best = BestTracker(monitor, es.mode if es else "auto")
        attach_scheduler(trainer, config, monitor, best.mode)
        return cls(config, dataset, trainer, device, best, stopper)

    def checkpoint(self, state: dict | None = None, row: dict | None = None) -> dict[str, Any]:
        """A checkpoint: the loop's state plus what eval, predict and resume need to rebuild the run."""
        payload = self.trainer.state()
        payload["metrics"] = self.trainer.history[-1] if self.trainer.history else {}
        if state is not None:  # best.pt: the best epoch's weights and metrics (no epoch in progress)
            payload.update(model=state, epoch=int(row["epoch"]), metrics=row, partial=None)
        payload.update(
            **checkpoint_facts(self.config, self.dataset, self.trainer.loss_fn),
            callbacks={"best": self.best.state(), "early_stopping": self.stopper.state() if self.stopper else None},
            status=self.trainer.status,
        )
        return payload

    def restore(self, payload: dict, best_payload: dict | None) -> None:
        self.trainer.restore(payload)
        states = payload["callbacks"]
        self.best.restore(states["best"], best_payload["model"] if best_payload else None)
        if self.stopper and states["early_stopping"]:
            self.stopper.restore(states["early_stopping"])


class RunWriter(Callback):
    """Saves metrics.csv, last.pt and best.pt every `every` evaluated epochs and when training stops."""

    def __init__(self, session: Session, run_dir: Path, every: int) -> None:
        self.session, self.run_dir, self.every = session, run_dir, every
        self._best_written = session.best.best_row

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.epoch % self.every == 0:
            self.save()

    def on_fit_end(self, trainer: Trainer) -> None:
        self.save()

    def save(self) -> None:
        best = self.session.best
        try:
            # best.pt first: a crash between the two leaves last.pt one save behind, never ahead.
            if best.best_row is not None and best.best_row is not self._best_written:
                rundir.save_checkpoint(rundir.checkpoint_path(self.run_dir, rundir.BEST),
                                       self.session.checkpoint(state=best.best_state, row=best.best_row))
                self._best_written = best.best_row
            rundir.save_checkpoint(rundir.checkpoint_path(self.run_dir, rundir.LAST), self.session.checkpoint())
            rundir.write_metrics(self.run_dir / rundir.METRICS, self.session.trainer.history)
        except OSError as exc:
            raise UserError(
                f"cannot save to {self.run_dir} at epoch {self.session.trainer.epoch}: {exc.strerror or exc}; "
                "the previous checkpoint is intact: free space (or fix permissions) and resume with "
                f"clftrain fit --resume {self.run_dir}"
            ) from None


def fit_experiment(config: Config, out: Path | None = None, runs_root: Path = Path("runs"),
                   callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Train one config into a new run directory; return it and the summary written there."""
    if config.seeds is not None:  # one replica per seed, trained as one batched model
        from clftrain.replica_experiment import fit_seeds

        return fit_seeds(config, out, runs_root, callbacks, on_model)
    session = Session.prepare(config)
    run_dir = rundir.create_run_dir(config.name, out, runs_root)
    if on_model is not None:
        on_model(describe_model(session.trainer.model), count_parameters(session.trainer.model), session.device)
    try:
        rundir.atomic_write_text(run_dir / rundir.CONFIG, config_to_yaml(session.config))
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None
    return _train(session, run_dir, callbacks)


def resume_experiment(run_dir: Path, overrides: list[str] | None = None,
                      callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Continue a run from its directory alone: config.yaml and checkpoints/last.pt."""
    config_file = rundir.config_of(run_dir)
    overrides = overrides or []
    changed = {item.partition("=")[0].strip() for item in overrides} - RESUMABLE_KEYS
    if changed:
        raise UserError(f"--set {', '.join(sorted(changed))}: only {', '.join(sorted(RESUMABLE_KEYS))} "
                        "can change when resuming; start a new run to change anything else")
    config = load_config(config_file, overrides)
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    if not last.is_file():
        raise UserError(f"{run_dir} has no {rundir.CHECKPOINTS}/last.pt: it stopped before its first checkpoint; "
                        f"start it again with clftrain fit {config_file}")
    payload = rundir.load_checkpoint(last)
    scheduler = config.train.scheduler
    if scheduler and scheduler.name == "onecycle" and any(item.startswith("train.epochs") for item in overrides):
        raise UserError("a onecycle schedule is planned over the original epochs and cannot be extended; "
                        "start a new run with more epochs")
    if config.seeds is not None:
        from clftrain.replica_experiment import resume_seeds

        return resume_seeds(run_dir, config, payload, overrides, callbacks, on_model)
    session = Session.prepare(config)
    _check_same_run(payload, config, last)
    best_file = rundir.checkpoint_path(run_dir, rundir.BEST)
    best_payload = rundir.load_checkpoint(best_file) if best_file.is_file() else None
    load_weights(session.trainer.model, payload["model"], last)  # names the first mismatching layer
    session.restore(payload, best_payload)
    if session.trainer.epoch >= config.train.epochs:
        raise UserError(f"{run_dir} already ran {session.trainer.epoch} of {config.train.epochs} epochs; "
                        f"to train longer: clftrain fit --resume {run_dir} --set train.epochs=N")
    if on_model is not None:
        on_model(describe_model(session.trainer.model), count_parameters(session.trainer.model), session.device)
    if overrides:
        rundir.atomic_write_text(config_file, config_to_yaml(config))
    return _train(session, run_dir, callbacks)


def _check_same_run(payload: dict, config: Config, path: Path) -> None:
    """A checkpoint copied from another run must not silently continue this one."""
    mine, theirs = config.to_dict(), dict(payload.get("config") or {})
    try:  # keys added since the checkpoint was written take their defaults, as in config.yaml
        theirs = validate_config(theirs, source=str(path), check_files=False).to_dict()
    except UserError:
        pass  # not a config at all: the comparison below names where it differs
    for section in ("train",):
        theirs[section] = {**theirs.get(section, {}), "epochs": mine[section]["epochs"]}
    if mine != theirs:
        differing = _first_difference(mine, theirs)
        raise UserError(f"{path} belongs to another run: its config differs from config.yaml at {differing}")


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')} ({b!r} in the checkpoint, {a!r} in config.yaml)"


def _train(session: Session, run_dir: Path, callbacks: list[Callback]) -> FitResult:
    trainer = session.trainer
    writer = RunWriter(session, run_dir, every=session.config.train.log_every)
    trainer.callbacks = [session.best, *([session.stopper] if session.stopper else []), *callbacks, writer]
    try:
        rundir.write_json(run_dir / rundir.SUMMARY, {"name": session.config.name, "status": "running",
                                                     "epochs_run": trainer.epoch})
        with _stop_on_signals(trainer) as received, training_threads_of(trainer, session.config) as threads:
            trainer.fit()
        summary = {**_summary(session), "threads": threads}
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
        TrainedRun(session.config, session.dataset, trainer.model, session.device, trainer.history).draw_plots(run_dir)
    except BaseException as exc:
        _mark_failed(run_dir, session, exc)
        raise
    return FitResult(run_dir, summary, received[0] if received else None)


def training_threads_of(trainer, config: Config):
    """device.training_threads for a Trainer or a multiseed.ReplicaTrainer: its model and step size."""
    n_train = len(trainer.splits["train"])
    return training_threads(config.threads, trainer.model, min(trainer.cfg.batch_size or n_train, n_train))


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer):
    """Ctrl-C / SIGTERM: finish the current step (train.Trainer.run_epoch), save, and stop; a second Ctrl-C
    aborts at once."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the user insists
        received.append(name)
        trainer.stop("interrupted")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _summary(session: Session) -> dict:

    trainer, best, dataset = session.trainer, session.best, session.dataset

    def metrics(row):
        return {k: v for k, v in (row or {}).items() if k not in ("lr", "seconds")}

    return {
        "name": session.config.name,
        "status": trainer.status,
        "task": dataset.task.name,
        "epochs_run": trainer.epoch,
        "epochs_planned": session.config.train.epochs,
        **trainer.epoch_in_progress(),  # interrupted between mini-batches
        "stopped_early": trainer.stopped_early,
        "monitor": best.monitor,
        "final": metrics(trainer.history[-1] if trainer.history else None),
        "best": metrics(best.best_row),
        "seconds": round(trainer.seconds, 3),
        "device": str(session.device),
        "model": {"layers": [layer.kind for layer in describe_model(trainer.model)],
                  "parameters": count_parameters(trainer.model)},
        **run_facts(dataset),
    }


def run_facts(dataset: Dataset) -> dict:
    """The summary.json fields every run shares: data sizes and names, finish time, library versions."""
    import sklearn

    return {
        "data": {"train": len(dataset.X_train), "test": len(dataset.X_test),
                 "val": 0 if dataset.X_val is None else len(dataset.X_val),
                 "features": dataset.feature_names, "classes": dataset.class_names},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"clftrain": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "scikit-learn": sklearn.__version__},
    }


def _mark_failed(run_dir: Path, session: Session, exc: BaseException) -> None:
    """Leave a failed run recognisable: summary.json says so and why."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        rundir.write_json(run_dir / rundir.SUMMARY, {
            "name": session.config.name, "status": status, "epochs_run": session.trainer.epoch,
            "error": str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"})
    except OSError:
        pass  # the original error matters more than this note
