"""`clftrain fit` end to end: seed, build data/model/loop from the config, train, write the run directory.

Everything that can fail on the user's input (data, device, model) is built
before the run directory is created, so a bad config leaves nothing behind.
"""

from __future__ import annotations

import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clftrain import __version__, rundir
from clftrain.config import Config, config_to_yaml
from clftrain.data import Dataset, build_dataset
from clftrain.device import resolve_device
from clftrain.errors import UserError, did_you_mean
from clftrain.losses import EXPECTS_PROBABILITIES, LOSSES
from clftrain.model import build_model, count_parameters, describe_model
from clftrain.optimizers import OPTIMIZERS
from clftrain.trained import TrainedRun
from clftrain.train import BestTracker, Callback, EarlyStopping, Split, Trainer


@dataclass
class FitResult:
    run_dir: Path
    summary: dict[str, Any]


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
    loss_fn = LOSSES.get(config.train.loss)()
    optimizer = OPTIMIZERS.get(config.train.optimizer)(model.parameters(), config.train)

    def split(X, y):  # moved to the device once, here
        return Split(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device))

    splits = {"train": split(dataset.X_train, dataset.y_train), "test": split(dataset.X_test, dataset.y_test)}
    if dataset.X_val is not None:
        splits["val"] = split(dataset.X_val, dataset.y_val)
    return Trainer(
        model=model, optimizer=optimizer, loss_fn=loss_fn, task=task, cfg=config.train, splits=splits,
        outputs_are_probabilities=config.train.loss in EXPECTS_PROBABILITIES, seed=config.seed,
    )


def metric_columns(task_metric: str, has_val: bool) -> list[str]:
    splits = ["train", "val", "test"] if has_val else ["train", "test"]
    return [f"{split}_{quantity}" for split in splits for quantity in ("loss", task_metric)]


def default_monitor(has_val: bool) -> str:
    # With a validation split the test split is only for the final report.
    return "val_loss" if has_val else "test_loss"


class RunWriter(Callback):
    """Saves metrics.csv, last.pt and best.pt every `every` evaluated epochs and at the end."""

    def __init__(self, run: RunFiles, best: BestTracker, every: int) -> None:
        self.run, self.best, self.every = run, best, every
        self._best_written: dict | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.epoch % self.every == 0:
            self.save(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.save(trainer)

    def save(self, trainer: Trainer) -> None:
        rundir.write_metrics(self.run.dir / rundir.METRICS, trainer.history)
        rundir.save_checkpoint(rundir.checkpoint_path(self.run.dir, rundir.LAST), self.run.payload(trainer))
        if self.best.best_row is not None and self.best.best_row is not self._best_written:
            payload = self.run.payload(trainer, state=self.best.best_state, row=self.best.best_row)
            rundir.save_checkpoint(rundir.checkpoint_path(self.run.dir, rundir.BEST), payload)
            self._best_written = self.best.best_row


@dataclass
class RunFiles:
    """What every checkpoint of this run carries besides the weights."""

    dir: Path
    config: Config
    dataset: Dataset

    def payload(self, trainer: Trainer, state: dict | None = None, row: dict | None = None) -> dict[str, Any]:
        data = self.dataset
        return {
            "model": state if state is not None else trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "epoch": int(row["epoch"]) if row else trainer.epoch,
            "metrics": row or (trainer.history[-1] if trainer.history else {}),
            "config": self.config.to_dict(),
            "task": data.task.name,
            "feature_names": data.feature_names,
            "class_names": data.class_names,
            "scaler": data.scaler.to_dict() if data.scaler else None,
            "rng": {"torch": torch.get_rng_state(), "shuffle": trainer.generator.get_state()},
        }


def fit_experiment(config: Config, out: Path | None = None, runs_root: Path = Path("runs"),
                   callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Train one config; return the run directory and the summary written there."""
    device = resolve_device(config.device)
    dataset = build_dataset(config)
    trainer = build_trainer(config, dataset, device)
    monitor, stopper = _monitors(config, has_val=dataset.X_val is not None, metric=dataset.task.metric)
    if on_model is not None:
        on_model(describe_model(trainer.model), count_parameters(trainer.model), device)

    run_dir = rundir.create_run_dir(config.name, out, runs_root)
    run = RunFiles(run_dir, config, dataset)
    best = BestTracker(monitor, stopper.tracker.mode if stopper else "auto")
    trainer.callbacks = [best, *( [stopper] if stopper else []), *callbacks,
                         RunWriter(run, best, every=config.train.log_every)]
    try:
        rundir.atomic_write_text(run_dir / rundir.CONFIG, config_to_yaml(config))
        trainer.fit()
        summary = _summary(config, trainer, best, device, dataset)
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
        TrainedRun(config, dataset, trainer.model, device, trainer.history).draw_plots(run_dir)
    except BaseException as exc:
        _mark_failed(run_dir, config, exc)
        raise
    return FitResult(run_dir, summary)


def _monitors(config: Config, has_val: bool, metric: str) -> tuple[str, EarlyStopping | None]:
    columns = metric_columns(metric, has_val)
    es = config.train.early_stopping
    monitor = es.monitor if es else default_monitor(has_val)
    if monitor not in columns:
        raise UserError(
            f"train.early_stopping.monitor = '{monitor}' is not a recorded metric{did_you_mean(monitor, columns)}; "
            f"choose one of: {', '.join(columns)}"
        )
    stopper = EarlyStopping(monitor, es.patience, es.min_delta, es.mode) if es else None
    return monitor, stopper


def _summary(config: Config, trainer: Trainer, best: BestTracker, device: torch.device, dataset: Dataset) -> dict:
    import sklearn

    final = {k: v for k, v in (trainer.history[-1] if trainer.history else {}).items() if k not in ("lr", "seconds")}
    best_row = {k: v for k, v in (best.best_row or {}).items() if k not in ("lr", "seconds")}
    return {
        "name": config.name,
        "status": trainer.status,
        "task": dataset.task.name,
        "epochs_run": trainer.epoch,
        "epochs_planned": config.train.epochs,
        "stopped_early": trainer.stopped_early,
        "monitor": best.monitor,
        "final": final,
        "best": best_row,
        "seconds": round(trainer.seconds, 3),
        "device": str(device),
        "model": {"layers": [f"{layer.kind}" for layer in describe_model(trainer.model)],
                  "parameters": count_parameters(trainer.model)},
        "data": {"train": len(dataset.X_train), "test": len(dataset.X_test),
                 "val": 0 if dataset.X_val is None else len(dataset.X_val),
                 "features": dataset.feature_names, "classes": dataset.class_names},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"clftrain": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "scikit-learn": sklearn.__version__},
    }


def _mark_failed(run_dir: Path, config: Config, exc: BaseException) -> None:
    """Leave a failed run recognisable: summary.json says so and why (no half-written state hidden)."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        rundir.write_json(run_dir / rundir.SUMMARY, {"name": config.name, "status": status,
                                                      "error": f"{type(exc).__name__}: {exc}"})
    except OSError:
        pass  # the original error matters more than this note
