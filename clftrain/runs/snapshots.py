"""Snapshots of the decision boundary during fit, for the report's "boundary over training" strip and animation.

Two input features and classes only (binary, multiclass): the model's predicted class over a small grid
of the feature plane (SNAPSHOT_STEPS per axis, the extent of the final figure's) before the first step
and at about SNAPSHOT_COUNT evaluated epochs spaced geometrically over the planned epochs (the boundary
moves most early on), the last included. They are kept in memory and written once, at the end of
training, to snapshots/boundary.npz (store/snapshots.py), a few kB.

Cost, measured on circles (a [10, 10] MLP, one thread of a 2-core CPU): one snapshot is one forward pass
over 10,201 grid rows, about 1 ms; the nine of a run and the file about 12 ms of its 0.45 s of training.
A run resumed goes on with the snapshots its directory holds (those at or before its epoch); a run
killed (kill -9) before its end keeps none of that session's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clftrain.config import TrainConfig
from clftrain.errors import UserError
from clftrain.inference.scoring import predict
from clftrain.store import snapshots as store
from clftrain.training import Callback, EpochLoop
from clftrain.views.plane import Plane

SNAPSHOT_COUNT = 8  # after training starts, the last epoch included (plus one before the first step)
SNAPSHOT_STEPS = 101  # grid points per axis


def wanted(dataset) -> bool:
    """Whether a run of this data takes snapshots: two features, one class per row."""
    return dataset.X_train.shape[1] == 2 and dataset.task.target == "class"


def snapshot_epochs(train: TrainConfig, count: int = SNAPSHOT_COUNT) -> list[int]:
    """`count` of the evaluated epochs (the loop's callbacks see only those), spaced geometrically by their
    position among the evaluated epochs, the last epoch always included; all of them when there are fewer."""
    epochs = train.epochs
    evaluated = np.union1d(np.arange(train.eval_every, epochs + 1, train.eval_every),
                           np.arange(train.log_every, epochs + 1, train.log_every))
    evaluated = np.union1d(evaluated, [epochs]).astype(np.int64)
    if len(evaluated) <= count:
        return evaluated.tolist()
    positions = np.unique(np.rint(np.geomspace(1, len(evaluated), count)).astype(np.int64)) - 1
    return evaluated[positions].tolist()


class BoundarySnapshots(Callback):
    """Takes the snapshots while a Trainer fits (the model's class over the grid) and writes them at its end."""

    def __init__(self, run_dir: Path, dataset, train: TrainConfig) -> None:
        self.run_dir, self.path = run_dir, store.boundary_path(run_dir)
        self.plan = set(snapshot_epochs(train))
        self.class_names = list(dataset.class_names)
        extent, self.grid = Plane.fit(dataset.X_train).grid(np.concatenate([dataset.X_train, dataset.X_test]),
                                                            SNAPSHOT_STEPS)
        self.extent = tuple(float(v) for v in extent)
        self.epochs: list[int] = []
        self.regions: list[np.ndarray] = []

    def on_fit_start(self, trainer: EpochLoop) -> None:
        if trainer.epoch > 0:  # resumed: go on with what the directory holds
            try:
                kept = store.read_boundary(self.run_dir)
            except UserError:
                kept = None
            if kept is not None and kept.extent == self.extent and kept.regions.shape[1:] == (SNAPSHOT_STEPS,) * 2:
                kept = kept.up_to(trainer.epoch)
                self.epochs, self.regions = list(kept.epochs), list(kept.regions)
            return
        self.take(trainer, 0)

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if trainer.epoch in self.plan:
            self.take(trainer, trainer.epoch)

    def on_fit_end(self, trainer: EpochLoop) -> None:
        last = trainer.epoch
        if trainer.restored_from is None and trainer.partial is None and (not self.epochs or self.epochs[-1] < last):
            self.take(trainer, last)  # stopped early or diverged: the weights it stopped with
        if not self.epochs:
            return
        try:
            store.write_boundary(self.path, store.BoundarySnapshots(self.epochs, np.stack(self.regions),
                                                                    self.extent, self.class_names))
        except OSError:
            pass  # the report draws the boundary without its history; the run is not worse for it

    def take(self, trainer: EpochLoop, epoch: int) -> None:
        model = trainer.model
        was_training = model.training
        device = trainer.splits["train"].device
        _, labels = predict(model, trainer.task, self.grid, trainer.outputs_are_probabilities, device)
        model.train(was_training)
        self.epochs.append(epoch)
        self.regions.append(labels.reshape(SNAPSHOT_STEPS, SNAPSHOT_STEPS).astype(
            np.uint8 if len(self.class_names) <= 256 else np.uint16))
