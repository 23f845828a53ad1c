"""The deciding callbacks of callbacks.py for every replica of a run with seeds, each replica on its own rows:
its best weights (ReplicaBest) and when it stops early (ReplicaStopping).

Both read `member.latest`, the rows the replica trainer recorded at this evaluated epoch (None for a
replica that has stopped), and decide exactly as BestTracker and EarlyStopping decide for a solo run
of that seed, so a replica ends with the solo run's best epoch and stops at its epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from clftrain.training.callbacks import improves, monitor_mode
from clftrain.training.loop import Callback, EpochLoop


class ReplicaBest(Callback):
    """callbacks.BestTracker for each replica of a member: its best row by `monitor` and its weights at that row."""

    def __init__(self, member, monitor: str | None, mode: str = "auto", restore: bool = False) -> None:
        self.member, self.monitor, self.mode = member, monitor, monitor_mode(monitor, mode)
        self.restore_at_end = restore  # a completed run's replicas end with their best epochs' weights
        self.restored = False
        replicas = len(member.seeds)
        self.rows: list[dict | None] = [None] * replicas
        self.state: dict[str, torch.Tensor] | None = None  # stacked like StackedMLP.part_state
        self.version = 0  # moves on every improvement: the writer saves best.pt when it did

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if self.monitor is not None:  # None: no validation split, no best epoch
            self.update(self.member.latest, lambda: trainer.model.part_state(self.member.part, copy=False))

    def on_fit_end(self, trainer: EpochLoop) -> None:
        """callbacks.BestTracker.on_fit_end for every replica: each ends with its own best epoch's weights."""
        if self.restore_at_end and trainer.status == "completed" and self.state is not None and all(self.rows):
            trainer.model.load_part_state(self.member.part, self.state, "the best weights")
            self.restored = True

    def improved(self, index: int, row: dict | None) -> bool:
        return row is not None and improves(row[self.monitor], self.rows[index], self.monitor, self.mode)

    def update(self, rows: list[dict | None], current: Callable[[], dict[str, torch.Tensor]]) -> None:
        improved = [self.improved(i, row) for i, row in enumerate(rows)]
        if not any(improved):
            return
        state = current()  # the live tensors: copied here, by clone or by `where`
        if self.state is None or all(improved):
            self.state = {k: v.clone() for k, v in state.items()}
        else:  # keep the others' weights: one `where` per tensor, no per-replica copies
            mask = torch.tensor(improved, device=next(iter(state.values())).device)
            self.state = {k: torch.where(mask.view(-1, *[1] * (v.dim() - 1)), v, self.state[k])
                          for k, v in state.items()}
        self.rows = [dict(row) if up else old for up, row, old in zip(improved, rows, self.rows)]
        self.version += 1


class ReplicaStopping(Callback):
    """callbacks.EarlyStopping for each replica of a member: a replica whose `monitor` has not improved by
    `min_delta` for `patience` epochs stops (the trainer holds its weights and optimizer state from then on)."""

    def __init__(self, member, monitor: str, patience: int, min_delta: float = 0.0, mode: str = "auto") -> None:
        self.member, self.monitor, self.mode = member, monitor, monitor_mode(monitor, mode)
        self.patience, self.min_delta = patience, min_delta
        replicas = len(member.seeds)
        self.best_rows: list[dict | None] = [None] * replicas
        self.best_epochs = [0] * replicas

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        stopping = []
        for i, latest in enumerate(self.member.latest):
            if latest is None:
                continue
            if improves(latest[self.monitor], self.best_rows[i], self.monitor, self.mode, self.min_delta):
                self.best_rows[i], self.best_epochs[i] = dict(latest), trainer.epoch
            elif trainer.epoch - self.best_epochs[i] >= self.patience:
                stopping.append(i)
        if stopping:
            trainer.stop_replicas(self.member, stopping, early=True)

    def state(self) -> dict:
        return {"best_rows": self.best_rows, "best_epochs": self.best_epochs}

    def restore(self, state: dict) -> None:
        self.best_rows = list(state["best_rows"])
        self.best_epochs = [int(e) for e in state["best_epochs"]]
