"""The callbacks that decide: which weights are best, and when to stop early."""

from __future__ import annotations

import math

import torch
from torch import nn

from clftrain.components.tasks import metric_higher_is_better
from clftrain.training.loop import Callback, EpochLoop


def monitor_mode(monitor: str | None, mode: str = "auto") -> str:
    """'max' for accuracies, 'min' for losses and errors, unless given."""
    if mode != "auto":
        return mode
    return "max" if monitor is not None and metric_higher_is_better(monitor) else "min"


def improves(value: float, best_row: dict | None, monitor: str, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` of `monitor` beats the best row so far (any finite value beats none)."""
    if not math.isfinite(value):
        return False
    if best_row is None:
        return True
    best = best_row[monitor]
    return value < best - min_delta if mode == "min" else value > best + min_delta


class BestTracker(Callback):
    """Keeps a copy of the weights at the best value of `monitor` (in memory: disk writes are the caller's)."""

    def __init__(self, monitor: str | None, mode: str = "auto", restore: bool = False) -> None:
        self.monitor = monitor  # None: no best epoch is chosen (there is no validation split)
        self.restore_at_end = restore  # a completed run ends with the best epoch's weights (train.restore_best)
        self.mode = monitor_mode(monitor, mode)
        self.best_row: dict[str, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.version = 0  # moves on every improvement: a writer saves best.pt when it did
        self._live: dict[str, torch.Tensor] | None = None  # the model's own tensors, updated in place

    def improved(self, value: float, min_delta: float = 0.0) -> bool:
        return improves(value, self.best_row, self.monitor, self.mode, min_delta)

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if self.monitor is None:  # no validation split: nothing chooses a best epoch
            return
        if self.improved(row[self.monitor]):
            self.best_row = dict(row)
            self._copy_weights(trainer.model)
            self.version += 1

    def _copy_weights(self, model: nn.Module) -> None:
        # Early in training nearly every epoch improves: copy into the same buffers with one
        # foreach call instead of building a state_dict and cloning it each time.
        if self._live is None:
            self._live = model.state_dict()  # detached views of the parameters and buffers
        if (self.best_state is None or self.best_state.keys() != self._live.keys()
                or any(a.device != b.device for a, b in zip(self.best_state.values(), self._live.values()))):
            self.best_state = {k: v.clone() for k, v in self._live.items()}
        else:
            torch._foreach_copy_(list(self.best_state.values()), list(self._live.values()))

    def on_fit_end(self, trainer: EpochLoop) -> None:
        """Keras' restore_best_weights: the run the user gets is the one its decisions chose."""
        if self.restore_at_end and trainer.status == "completed" and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
            trainer.restored_from = int(self.best_row["epoch"])

    def state(self) -> dict:
        return {"best_row": self.best_row}

    def restore(self, state: dict, best_weights: dict[str, torch.Tensor] | None) -> None:
        self.best_row = state["best_row"]
        self.best_state = best_weights


class EarlyStopping(Callback):
    """Stops when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0, mode: str = "auto") -> None:
        self.tracker = BestTracker(monitor, mode)
        self.patience = patience
        self.min_delta = min_delta
        self.best_epoch = 0

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        value = row[self.tracker.monitor]
        if self.tracker.improved(value, self.min_delta):
            self.tracker.best_row = dict(row)
            self.best_epoch = trainer.epoch
        elif trainer.epoch - self.best_epoch >= self.patience:
            trainer.stop("completed")
            trainer.stopped_early = True

    def state(self) -> dict:
        return {"best_row": self.tracker.best_row, "best_epoch": self.best_epoch}

    def restore(self, state: dict) -> None:
        self.tracker.best_row = state["best_row"]
        self.best_epoch = int(state["best_epoch"])
