"""The epoch loop both trainers share (fit -> run_epoch -> train_step), its callbacks' hooks, and a split's tensors.

The loop knows nothing about files or the console: logging, checkpoints and early
stopping are callbacks. Its performance rules (README, Speed): tensors live on the device,
full-batch training uses no DataLoader, mini-batches slice a device-side randperm, and
per-step losses and correct counts stay on the device until an evaluated epoch reads them
all in one transfer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from clftrain.errors import UserError
from clftrain.training import distributed


@dataclass
class Split:
    """One split's tensors on the device: X [N, F] float32, y shaped as the task wants."""

    X: torch.Tensor
    y: torch.Tensor
    # Cross-validation (dataset.cv_folds): fold k's rows of X, which the replica of fold k trains on (the train
    # split: every fold but k) or is scored on (the val split: fold k). Replicas see as many rows each: the
    # smallest fold's count (`len`), so a larger fold's replica leaves a few rows out of each epoch, drawn anew.
    folds: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.X.shape[0] if self.folds is None else min(len(rows) for rows in self.folds)

    def sizes(self, replicas: list[int] | None) -> int | list[int]:
        """The rows each replica is scored on: one count, or a count per replica (`replicas`: each one's fold)."""
        if self.folds is None or replicas is None:
            return len(self)
        return [len(self.folds[fold]) for fold in replicas]

    @property
    def device(self) -> torch.device:
        return self.X.device


def _divided(values: float | list[float], by: int | list[int]) -> float | list[float]:
    """A sum (a list: one per replica) over the rows counted (one count, or one per replica)."""
    if not isinstance(values, list):
        return values / by
    return [v / d for v, d in zip(values, by if isinstance(by, list) else [by] * len(values))]


class Callback:
    """Hooks with empty defaults; override what you need."""

    def on_fit_start(self, trainer: EpochLoop) -> None: ...

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        """Called on each evaluated epoch with its metrics.csv row."""

    def on_fit_end(self, trainer: EpochLoop) -> None: ...


class EpochLoop:
    """What trainer.Trainer and replica_trainer.ReplicaTrainer share: the epoch loop (when to evaluate, when to stop,
    the callbacks' order, the wall-clock count), mini-batches with their stop/resume state, and the one
    device-to-host read of an evaluated epoch's metrics. Subclasses provide run_epoch, train_step,
    evaluate, _end_evaluated_epoch and _end_epoch, and the fields `cfg`, `splits`, `task`, `callbacks`,
    `epoch`, `seconds`, `status` and `partial`."""

    _stop: bool = False
    _stop_checks: int = 0  # data-parallel: calls of _stopping, the same count on every rank
    world = None  # a distributed.World under torchrun: stops are agreed over the ranks
    sums_over_ranks = True  # data-parallel (Trainer): each rank summed its shards of the batches
    replica_folds: list[int] | None = None  # cross-validation (ReplicaTrainer): the fold each replica holds out

    def stop(self, status: str = "completed") -> None:
        """Ask the loop to stop: after the current mini-batch, or epoch when full batch (early stopping and
        divergence ask at an epoch's end; a signal can arrive during one)."""
        self._stop = True
        self.status = status

    def fit(self):
        self.status, self._stop = "running", False
        for cb in self.callbacks:
            cb.on_fit_start(self)
        started = time.perf_counter() - self.seconds  # resumed runs keep counting
        while self.epoch < self.cfg.epochs and not self._stopping():
            epoch = self.epoch + 1
            evaluated = self.cfg.evaluates(epoch)
            train_sums = self.run_epoch(track=evaluated)
            if train_sums is None:  # stopped between two mini-batches: the epoch is not complete
                break
            self.epoch = epoch
            self.seconds = time.perf_counter() - started
            if evaluated:
                self._end_evaluated_epoch(train_sums)
            self._end_epoch(evaluated)
        self.seconds = time.perf_counter() - started
        if self.status == "running":
            self.status = "completed"
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self

    def _mini_batches(self, new_order, size: int, has_batch_norm: bool, track: bool) -> list[torch.Tensor] | None:
        """train_step over the training split in slices of `size` of an order ([N], or [R, N] for replicas):
        new_order() for a fresh epoch, or the one a stop left in `partial`. The step sums, added up; or None
        when a stop (Ctrl-C) came during the epoch: it takes effect after the current step, and the epoch's
        order, position and sums stay in `partial` (saved with the state, continued on resume)."""
        train = self.splits["train"]
        if self.partial is not None:  # resumed in the middle of this epoch
            order, first, sums = self.partial["order"], self.partial["next_step"], list(self.partial["sums"])
            self.partial = None
        else:
            order, first, sums = new_order(), 0, []
        for step, start in enumerate(range(0, len(train), size)):
            if step < first:
                continue
            if step > first and self._stopping():
                self._keep_partial(order, step, sums, track)
                return None
            idx = order[..., start : start + size]
            if idx.shape[-1] == 1 and len(train) > 1 and has_batch_norm:
                break  # BatchNorm cannot normalise a batch of one sample: skip that last sample
            step_sums = self.train_step(train.X[idx], train.y[idx], track)
            sums = step_sums if not sums else [a + b for a, b in zip(sums, step_sums)]
        return sums

    def _stopping(self) -> bool:
        """Whether to stop now. Data-parallel, the decisions of the loop (early stopping, divergence) are the same
        on every rank, but a signal reaches the ranks at different moments: the ranks agree on it every
        distributed.STOP_EVERY steps (an all-reduce each step would cost a third of a small model's step), so
        every rank stops after the same step, at most that many steps after the signal."""
        if self.world is None or (self._stop and self.status != "interrupted"):
            return self._stop
        self._stop_checks += 1
        if self._stop_checks % distributed.STOP_EVERY:
            return False
        stop = distributed.any_rank(self._stop, self.splits["train"].device)
        if stop and not self._stop:
            self.stop("interrupted")
        return stop

    def _read_metrics(self, train_sums: list[torch.Tensor]) -> dict[str, float | list[float]]:
        """This epoch's metrics by column name (a list per replica for stacked models): train sums and
        an evaluation of each held-out split, every device value read in a single transfer."""
        n_train = len(self.splits["train"])
        names = ["train_loss", f"train_{self.task.metric}"]
        if self.world is not None and self.sums_over_ranks:  # the epoch's sums are the ranks' shards together
            train_sums = distributed.all_reduce_sum(list(train_sums))
        values, divisors = list(train_sums), [n_train, n_train]
        for split_name in ("val", "test"):
            if split_name in self.splits:
                names += [f"{split_name}_loss", f"{split_name}_{self.task.metric}"]
                values += self.evaluate(self.splits[split_name])
                divisors += [1, self.splits[split_name].sizes(self.replica_folds)]
        # Counts are exact in float32 (below 2**24); dividing in Python keeps accuracies exact fractions.
        numbers = torch.stack([v.float() for v in values]).tolist()
        return {n: _divided(v, d) for n, v, d in zip(names, numbers, divisors)}

    def _keep_partial(self, order: torch.Tensor, next_step: int, sums: list[torch.Tensor], track: bool) -> None:
        """An epoch stopped before `next_step`, kept in `partial` to continue on resume. Data-parallel, a rank's
        running sums cover only its shards of the batches, and the checkpoint is rank 0's: so it keeps every
        rank's sums ("rank_sums", [world, ...]; every rank stops after the same step, so they can meet here),
        for each rank to continue its own on a resume with as many processes, the epoch's metrics the same bit
        for bit (float sums in another order round differently); and their total ("sums"), which rank 0
        continues on any other resume while _restore_partial gives the other ranks zeros. Either way the
        resumed epoch counts every row once."""
        self.partial = {"order": order, "next_step": next_step, "sums": sums, "track": track}
        if self.world is not None and self.sums_over_ranks and sums:
            by_rank = distributed.gather_stacked(list(sums))
            self.partial |= {"sums": [s.sum(0) for s in by_rank], "rank_sums": by_rank}

    def epoch_in_progress(self) -> dict:
        """summary.json's note of an epoch stopped between mini-batches ({} when none)."""
        if self.partial is None:
            return {}
        return {"epoch_in_progress": {"epoch": self.epoch + 1, "steps_done": self.partial["next_step"]}}

    def _restore_partial(self, partial: dict | None) -> None:
        """A saved `partial` epoch back on the training device."""
        self.partial = None
        if partial is None:
            return
        if self.cfg.evaluates(self.epoch + 1) and not partial["track"]:
            raise UserError(
                f"this run stopped in the middle of epoch {self.epoch + 1}, which was not going to be evaluated; "
                f"with train.epochs = {self.cfg.epochs} it would be: resume with train.epochs > {self.epoch + 1}")
        device = self.splits["train"].device
        pooled = self.world is not None and self.sums_over_ranks  # see _keep_partial
        by_rank = partial.get("rank_sums")
        if pooled and by_rank and by_rank[0].shape[0] == self.world.size:
            sums = [s[self.world.rank] for s in by_rank]
        else:
            sums = [torch.zeros_like(s) if pooled and not self.world.is_main else s for s in partial["sums"]]
        self.partial = {**{k: v for k, v in partial.items() if k != "rank_sums"},
                        "order": partial["order"].to(device), "sums": [s.to(device) for s in sums]}

    def _saved_partial(self, rows: slice | None = None) -> dict | None:
        """`partial` as a checkpoint keeps it: on the CPU; `rows`: the replicas of a stacked model to keep."""
        if self.partial is None:
            return None
        pick = (lambda t: t.cpu()) if rows is None else (lambda t: t[rows].cpu())  # noqa: E731
        saved = {**self.partial, "order": pick(self.partial["order"]), "sums": [pick(s) for s in self.partial["sums"]]}
        if "rank_sums" in self.partial:  # data-parallel only (sums_over_ranks), whose checkpoint is whole
            saved["rank_sums"] = [s.cpu() for s in self.partial["rank_sums"]]
        return saved
