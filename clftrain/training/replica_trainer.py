"""Many seeds at once: one replica per seed, all trained together as one batched model (replicas.py).

`seeds: [0, 1, 2]` in a config (or `clftrain fit --seeds 0-2`) trains one replica per seed in
one run directory; a sweep (runs/sweep.py) trains several configs of one shape as one group,
each config a "member" with its own run directory, seeds, optimizer and records. Each replica
is the run its seed would make alone, to float rounding (tests/test_multiseed.py):
  - initialisation: seed_everything(seed), then model.build_model, as setup.build_trainer
    does; the solo models are then stacked (setup.setup_group);
  - data order: its own shuffling generator, seeded as the solo Trainer seeds its own;
  - dropout: its own generator, continuing the solo run's torch RNG from after initialisation
    (on the CPU: a GPU's fused dropout draws differently, so there replicas only match in law);
  - optimizer: elementwise updates over the stacked tensors; each replica's gradient is its own
    (the sum of the replicas' mean losses is differentiated) and clipped on its own.
What would make a replica act on its own metric (early stopping, a plateau schedule) is refused
by the config (config/schema.py).

The loop is loop.EpochLoop's, as trainer.Trainer's (fit -> run_epoch -> train_step, callbacks), with
every per-replica number kept on the device until an evaluated epoch reads them all at once.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from clftrain.components.tasks import Task
from clftrain.config import Config
from clftrain.training.callbacks import improves, monitor_mode
from clftrain.training.loop import Callback, EpochLoop, Split
from clftrain.training.model import forward_in_chunks
from clftrain.training.replicas import ReplicaLoss, StackedMLP, clip_grad_norms_

NOT_IN_ROWS = ("epoch", "seed", "lr", "seconds")  # row keys that are not metrics to average


# ---------------------------------------------------------------------- per-replica records
class ReplicaBest:
    """callbacks.BestTracker for each replica: its best row by `monitor` and its weights at that row."""

    def __init__(self, monitor: str, replicas: int) -> None:
        self.monitor, self.mode = monitor, monitor_mode(monitor)
        self.rows: list[dict | None] = [None] * replicas
        self.state: dict[str, torch.Tensor] | None = None  # stacked like StackedMLP.part_state
        self.version = 0  # moves on every improvement: the writer saves best.pt when it did

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


@dataclass
class Member:
    """One run of a group: its config, its replicas (a part of the stacked model) and their records."""

    config: Config
    part: int  # index of its parameters in StackedMLP.parts
    first: int  # position of its first replica in the group
    optimizer: torch.optim.Optimizer
    generators: list[torch.Generator]  # mini-batch shuffling, one per replica
    best: ReplicaBest
    scheduler: object | None = None
    scheduler_interval: str = "epoch"
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv rows, with `seed`
    diverged_at: list[int | None] = field(default_factory=list)  # epoch a replica's loss stopped being finite

    @property
    def seeds(self) -> list[int]:
        return self.config.seeds

    @property
    def span(self) -> range:
        return range(self.first, self.first + len(self.seeds))

    def last_rows(self) -> list[dict | None]:
        """Each replica's latest row (a diverged replica's: the epoch it diverged)."""
        latest: dict[int, dict] = {}
        for row in self.history:
            latest[int(row["seed"])] = row
        return [latest.get(seed) for seed in self.seeds]

    def status(self, trainer_status: str) -> str:
        return "diverged" if all(self.diverged_at) else trainer_status


# ---------------------------------------------------------------------- the loop
@dataclass
class ReplicaTrainer(EpochLoop):
    """trainer.Trainer for a group of replicas. Callbacks get the mean row of an evaluated epoch (and can read
    each replica's in `replica_rows`), so loop.Callback subclasses (console, signals) work unchanged."""

    model: StackedMLP
    members: list[Member]
    loss: ReplicaLoss
    task: Task
    cfg: object  # the group's TrainConfig for what all members share: epochs, batch_size, eval_every, log_every
    splits: dict[str, Split]
    outputs_are_probabilities: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    epoch: int = 0
    status: str = "running"
    seconds: float = 0.0
    stopped_early: bool = False  # never: early stopping is refused with seeds
    history: list[dict[str, float]] = field(default_factory=list)  # mean rows, for the console
    replica_rows: list[dict[str, float]] = field(default_factory=list)  # the last evaluated epoch, one per replica
    partial: dict | None = None  # an epoch stopped between mini-batches (EpochLoop._mini_batches)

    def __post_init__(self) -> None:
        self.generators = [g for member in self.members for g in member.generators]
        self._params = [p for m in self.members for group in m.optimizer.param_groups for p in group["params"]]

    def _end_epoch(self, evaluated: bool) -> None:
        for member in self.members:
            if member.scheduler is not None and member.scheduler_interval == "epoch":
                member.scheduler.step()

    def run_epoch(self, track: bool) -> list[torch.Tensor]:
        """One pass over the training data; [loss_sum [R], score_sum [R]] device tensors when tracked."""
        self.model.train()
        train = self.splits["train"]
        size = self.cfg.batch_size
        if size is None or size >= len(train):
            return self.train_step(train.X, train.y, track)
        # Each replica draws the permutation its solo Trainer draws: [R, N].
        return self._mini_batches(
            lambda: torch.stack([torch.randperm(len(train), device=train.X.device, generator=g) for g in self.generators]),
            size, self.model.has_batch_norm, track)

    def train_step(self, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        outputs = self.model(X)  # [R, B, O]
        losses = self.loss(outputs, y)  # [R], each replica's own mean loss
        for p in self._params:  # as Trainer.train_step: optimizer.zero_grad(set_to_none=True) without its bookkeeping
            p.grad = None
        # d(sum)/d(loss_r) = 1: replica r's gradient is exactly the one it would get alone.
        losses.sum().backward()
        for member in self.members:
            if member.config.train.grad_clip is not None:
                clip_grad_norms_(self.model.part_parameters(member.part), member.config.train.grad_clip)
            member.optimizer.step()
            if member.scheduler is not None and member.scheduler_interval == "step":
                member.scheduler.step()
        if not track:
            return []
        with torch.no_grad():
            rows = outputs.shape[1]
            return [losses.detach() * rows, self.task.replica_score_sums(outputs, y, self.outputs_are_probabilities)]

    @torch.inference_mode()
    def evaluate(self, split: Split) -> list[torch.Tensor]:
        """[mean loss [R], score sum [R]] over a split, in eval mode."""
        self.model.eval()
        outputs = forward_in_chunks(self.model, split.X)  # bounded memory on large splits
        values = [self.loss(outputs, split.y),
                  self.task.replica_score_sums(outputs, split.y, self.outputs_are_probabilities)]
        self.model.train()
        return values

    def _end_evaluated_epoch(self, train_sums: list[torch.Tensor]) -> None:
        self.replica_rows = self.make_rows(train_sums)
        for member in self.members:
            self._record(member, self.replica_rows[member.span.start : member.span.stop])
        live = [row for row in self.replica_rows if math.isfinite(row["train_loss"])] or self.replica_rows
        self.history.append(mean_row(live))
        if all(all(m.diverged_at) for m in self.members):
            self.stop("diverged")
        for cb in self.callbacks:
            cb.on_epoch_end(self, self.history[-1])

    def _record(self, member: Member, rows: list[dict]) -> None:
        """Append the rows of replicas still training; one whose loss stops being finite stops there, as alone."""
        kept: list[dict | None] = []
        for i, row in enumerate(rows):
            if member.diverged_at[i] is not None:
                kept.append(None)
                continue
            if not math.isfinite(row["train_loss"]):
                member.diverged_at[i] = self.epoch
            member.history.append(row)
            kept.append(row)
        member.best.update(kept, lambda: self.model.part_state(member.part, copy=False))

    def make_rows(self, train_sums: list[torch.Tensor]) -> list[dict[str, float]]:
        """One metrics.csv row per replica."""
        metrics = self._read_metrics(train_sums)  # column -> [value per replica]
        rows = []
        for member in self.members:
            lr = member.optimizer.param_groups[0]["lr"]
            for r, seed in zip(member.span, member.seeds):
                row = {"epoch": self.epoch, "seed": seed, **{n: values[r] for n, values in metrics.items()}}
                rows.append({**row, "lr": lr, "seconds": round(self.seconds, 4)})
        return rows

    # ------------------------------------------------------------------ resume
    def member_state(self, member: Member) -> dict:
        """Everything one member needs to continue exactly where it is (plain data and tensors only)."""
        generators = self.model.dropout_generators
        return {
            "model": self.model.part_state(member.part),
            "optimizer": member.optimizer.state_dict(),
            "scheduler": member.scheduler.state_dict() if member.scheduler is not None else None,
            "epoch": self.epoch,
            "seconds": self.seconds,
            "history": member.history,
            "rng": {"shuffle": [g.get_state() for g in member.generators],
                    "dropout": [generators[r].get_state() for r in member.span] if generators else None},
            "diverged_at": member.diverged_at,
            "partial": self._saved_partial(slice(member.span.start, member.span.stop)),
        }

    def restore_member(self, member: Member, state: dict, best: dict | None) -> None:
        member.optimizer.load_state_dict(state["optimizer"])
        if member.scheduler is not None:
            member.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.seconds = int(state["epoch"]), float(state["seconds"])
        member.history = [dict(row) for row in state["history"]]
        for g, saved in zip(member.generators, state["rng"]["shuffle"]):
            g.set_state(saved)
        if state["rng"]["dropout"] is not None:
            for r, saved in zip(member.span, state["rng"]["dropout"]):
                self.model.dropout_generators[r].set_state(saved)
        member.diverged_at = list(state["diverged_at"])
        self._restore_partial(state.get("partial"))  # resume trains one member: its rows are all the replicas
        by_epoch: dict[int, list[dict]] = {}
        for row in member.history:
            by_epoch.setdefault(int(row["epoch"]), []).append(row)
        self.history = [mean_row(rows) for rows in by_epoch.values()]
        if best is not None:
            device = self.splits["train"].X.device
            member.best.rows = list(best["metrics"])
            member.best.state = {k: v.to(device) for k, v in best["model"].items()}


def mean_row(rows: list[dict[str, float]]) -> dict[str, float]:
    """The replicas' rows averaged, key by key (epoch, lr and seconds are the same in each)."""
    keys = [k for k in rows[0] if k != "seed"]
    return {k: rows[0][k] if k in NOT_IN_ROWS else statistics.fmean(row[k] for row in rows) for k in keys}
