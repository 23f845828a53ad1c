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
  - early stopping and a plateau schedule act on each replica's own metric: a replica that stops
    early is held (its weights, optimizer state and batch-norm statistics frozen, no more rows)
    while the others go on; each replica's plateau schedule lowers its own learning rate
    (ReplicaRates: the optimizer's update is linear in the learning rate, so the step of a
    replica is scaled by its rate over the configured one).

The loop is loop.EpochLoop's, as trainer.Trainer's (fit -> run_epoch -> train_step, callbacks), with
every per-replica number kept on the device until an evaluated epoch reads them all at once.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import torch

from clftrain.components.tasks import Task
from clftrain.config import Config
from clftrain.training.loop import Callback, EpochLoop, Split
from clftrain.training.model import forward_in_chunks
from clftrain.training.replica_decisions import ReplicaBest, ReplicaStopping
from clftrain.training.replicas import ReplicaLoss, StackedMLP, clip_grad_norms_

NOT_IN_ROWS = ("epoch", "seed", "lr", "seconds")  # row keys that are not metrics to average


def _per_replica(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[R] values shaped to broadcast over a tensor with a leading replica dimension."""
    return values.view(-1, *[1] * (like.dim() - 1))


# ---------------------------------------------------------------------- replicas that train on their own
class FrozenReplicas:
    """A member's replicas that stopped (early stopping, divergence): their weights, optimizer state and
    batch-norm statistics are held where they stopped while the member's other replicas train on. The
    optimizer still steps them with the others (one update over the stacked tensors); `hold` puts them
    back after every step."""

    def __init__(self, model: StackedMLP, part: int, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.part, self.optimizer = model, part, optimizer
        self.mask: torch.Tensor | None = None  # bool [replicas of the member]: True = held
        self.saved: list[torch.Tensor] = []

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor with one row per replica of the member: parameters, their optimizer state, buffers."""
        params = self.model.part_parameters(self.part)
        state = [value for p in params for value in self.optimizer.state.get(p, {}).values()
                 if torch.is_tensor(value) and value.shape == p.shape]
        return [*params, *state, *self.model.part_buffers(self.part)]

    @torch.no_grad()
    def freeze(self, indices: list[int], replicas: int) -> None:
        tensors = self.tensors()
        device = tensors[0].device
        new = torch.zeros(replicas, dtype=torch.bool, device=device)
        new[indices] = True
        if self.mask is None:
            self.saved = [t.detach().clone() for t in tensors]
            self.mask = new
            return
        new &= ~self.mask
        self.saved = [torch.where(_per_replica(new, t), t, s) for t, s in zip(tensors, self.saved)]
        self.mask |= new

    @torch.no_grad()
    def hold(self) -> None:
        if self.mask is None:
            return
        for tensor, saved in zip(self.tensors(), self.saved, strict=True):
            tensor.copy_(torch.where(_per_replica(self.mask, tensor), saved, tensor))


class ReplicaRates:
    """Each replica's own learning rate under a schedule that watches a metric (plateau): one scheduler per
    replica, stepping a stand-in optimizer that holds only that replica's rate, exactly as a solo run's
    scheduler steps its optimizer. The member's optimizer keeps the configured rate; after each of its
    updates a replica's step is scaled by its rate / the configured rate (`scale`), which for an elementwise
    optimizer (linear in the learning rate, components/optimizers.py) is the update at its own rate."""

    def __init__(self, make_scheduler, lr: float, replicas: int) -> None:
        from clftrain.components.startup import skip_dynamo_import

        skip_dynamo_import()  # building an optimizer would otherwise import torch._dynamo (see startup.py)
        self.lr = lr
        self.optimizers = [torch.optim.SGD([torch.zeros(1)], lr=lr) for _ in range(replicas)]
        self.schedulers = [make_scheduler(optimizer) for optimizer in self.optimizers]
        self.factors: torch.Tensor | None = None  # [replicas] on the device once any rate moved

    def rate(self, index: int) -> float:
        return self.optimizers[index].param_groups[0]["lr"]

    def step(self, index: int, value: float, device: torch.device) -> None:
        self.schedulers[index].step(value)
        rates = [self.rate(i) for i in range(len(self.optimizers))]
        if any(rate != self.lr for rate in rates):
            self.factors = torch.tensor([rate / self.lr for rate in rates], device=device)

    def scale(self, params: list[torch.Tensor], before: list[torch.Tensor]) -> None:
        """Each replica's update from `before` scaled by its factor (replicas at the configured rate: untouched)."""
        moved = self.factors != 1
        with torch.no_grad():
            for p, old in zip(params, before):
                factor = _per_replica(self.factors, p)
                p.copy_(torch.where(_per_replica(moved, p), old + factor * (p - old), p))

    def state(self) -> dict:
        return {"rates": [self.rate(i) for i in range(len(self.optimizers))],
                "schedulers": [s.state_dict() for s in self.schedulers]}

    def restore(self, state: dict, device: torch.device) -> None:
        for optimizer, scheduler, rate, saved in zip(self.optimizers, self.schedulers, state["rates"],
                                                     state["schedulers"]):
            optimizer.param_groups[0]["lr"] = rate
            scheduler.load_state_dict(saved)
        rates = list(state["rates"])
        if any(rate != self.lr for rate in rates):
            self.factors = torch.tensor([rate / self.lr for rate in rates], device=device)


# ---------------------------------------------------------------------- one run of a group
@dataclass
class Member:
    """One run of a group: its config, its replicas (a part of the stacked model) and their records."""

    config: Config
    part: int  # index of its parameters in StackedMLP.parts
    first: int  # position of its first replica in the group
    optimizer: torch.optim.Optimizer
    generators: list[torch.Generator]  # mini-batch shuffling, one per replica
    frozen: FrozenReplicas
    best: ReplicaBest | None = None  # set once the member exists (it reads the member's rows)
    stopping: ReplicaStopping | None = None  # train.early_stopping, per replica
    scheduler: object | None = None  # an epoch or step schedule, shared by the member's replicas
    scheduler_interval: str = "epoch"
    rates: ReplicaRates | None = None  # a metric (plateau) schedule, per replica
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv rows, with `seed`
    diverged_at: list[int | None] = field(default_factory=list)  # epoch a replica's loss stopped being finite
    stopped_at: list[int | None] = field(default_factory=list)  # epoch a replica stopped early
    latest: list[dict | None] = field(default_factory=list)  # this evaluated epoch's rows (None: stopped)
    pruned_at: int | None = None  # the epoch successive halving stopped the run (training/halving.py)

    def __post_init__(self) -> None:
        replicas = len(self.seeds)
        self.diverged_at = self.diverged_at or [None] * replicas
        self.stopped_at = self.stopped_at or [None] * replicas

    @property
    def seeds(self) -> list[int]:
        return self.config.seeds

    @property
    def span(self) -> range:
        return range(self.first, self.first + len(self.seeds))

    def active(self, index: int) -> bool:
        return self.diverged_at[index] is None and self.stopped_at[index] is None

    def lr(self, index: int) -> float:
        return self.rates.rate(index) if self.rates is not None else self.optimizer.param_groups[0]["lr"]

    def last_rows(self) -> list[dict | None]:
        """Each replica's latest row (a stopped replica's: the epoch it stopped or diverged)."""
        latest: dict[int, dict] = {}
        for row in self.history:
            latest[int(row["seed"])] = row
        return [latest.get(seed) for seed in self.seeds]

    def status(self, trainer_status: str) -> str:
        if all(self.diverged_at):
            return "diverged"
        return "pruned" if self.pruned_at is not None else trainer_status

    def epochs_run(self, trainer_epoch: int) -> int:
        """The loop's epoch while a replica trains; once all have stopped, the last one's stopping epoch."""
        if any(self.active(i) for i in range(len(self.seeds))):
            return trainer_epoch
        return max(int(row["epoch"]) for row in self.last_rows() if row) if self.history else trainer_epoch

    def step(self, params: list[torch.Tensor]) -> None:
        """The optimizer's update, each replica at its own rate, stopped replicas held."""
        before = [p.detach().clone() for p in params] if self.rates is not None and self.rates.factors is not None \
            else None
        self.optimizer.step()
        if before is not None:
            self.rates.scale(params, before)
        self.frozen.hold()


# ---------------------------------------------------------------------- the loop
@dataclass
class ReplicaTrainer(EpochLoop):
    """trainer.Trainer for a group of replicas. Callbacks get the mean row of an evaluated epoch (and can read
    each recorded replica's in `replica_rows`), so loop.Callback subclasses (console, signals) work unchanged."""

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
    stopped_early: bool = False  # every replica stopped early (or diverged) before the last epoch
    history: list[dict[str, float]] = field(default_factory=list)  # mean rows, for the console
    replica_rows: list[dict[str, float]] = field(default_factory=list)  # the replicas recorded at the last evaluation
    partial: dict | None = None  # an epoch stopped between mini-batches (EpochLoop._mini_batches)
    # Seeds spread over a launch's ranks (seed_spread.py): this rank trains a slice of the run's replicas;
    # `elsewhere` (replicas still training on other ranks, all of theirs diverged) is what the last exchange said.
    world: object = None
    elsewhere: tuple[bool, bool] = (False, True)
    sums_over_ranks = False  # every rank trains whole batches for its own replicas: no sums to add up
    replica_folds: list[int] | None = None  # cross-validation: the fold each replica holds out (Split.folds)

    def __post_init__(self) -> None:
        self._active: torch.Tensor | None = None  # the replicas forward computes (None: all), _refresh_active
        self.generators = [g for member in self.members for g in member.generators]
        self._params = [p for m in self.members for group in m.optimizer.param_groups for p in group["params"]]
        self._device = self.splits["train"].X.device

    def _end_epoch(self, evaluated: bool) -> None:
        for member in self.members:
            if member.scheduler is not None and member.scheduler_interval == "epoch":
                member.scheduler.step()
            if member.rates is not None and evaluated:  # a plateau schedule: each replica on its own metric
                for i, row in enumerate(member.latest):
                    if row is not None and member.active(i):
                        member.rates.step(i, row[member.best.monitor], self._device)

    def fit(self):
        try:
            return super().fit()
        finally:  # whoever uses the model next (the end-of-run figures) sees every replica
            self.model.set_active(list(range(len(self.model.parts))))
            self._active = None

    def _refresh_active(self) -> None:
        """Leave the runs whose every replica has stopped out of the batched work (StackedMLP.set_active)."""
        parts = [m.part for m in self.members if any(m.active(i) for i in range(len(m.seeds)))]
        self.model.set_active(parts or [m.part for m in self.members])  # none left here: a spread run's others train
        active = self.model.active_replicas()
        self._active = None if active is None else torch.tensor(active, device=self._device)

    def _all_replicas(self, values: torch.Tensor) -> torch.Tensor:
        """[active replicas] values as [R], zeros for the replicas left out (their rows are not recorded)."""
        if self._active is None:
            return values
        every = torch.zeros(self.model.replicas, dtype=values.dtype, device=values.device)
        return every.index_copy(0, self._active, values)

    def run_epoch(self, track: bool) -> list[torch.Tensor]:
        """One pass over the training data; [loss_sum [R], score_sum [R]] device tensors when tracked."""
        self._refresh_active()
        self.model.train()
        train = self.splits["train"]
        size = self.cfg.batch_size
        if train.folds is not None:  # each replica's own rows (its training folds), as many for each: [R, N]
            return self._mini_batches(self._fold_orders, min(size or len(train), len(train)),
                                      self.model.has_batch_norm, track)
        if size is None or size >= len(train):
            return self.train_step(train.X, train.y, track)
        # Each replica draws the permutation its solo Trainer draws: [R, N].
        return self._mini_batches(
            lambda: torch.stack([torch.randperm(len(train), device=train.X.device, generator=g) for g in self.generators]),
            size, self.model.has_batch_norm, track)

    def _fold_orders(self) -> torch.Tensor:
        """[R, N]: each replica's training rows in its own shuffled order, cut to the smallest fold's N."""
        train = self.splits["train"]
        count = len(train)
        orders = []
        for fold, generator in zip(self.replica_folds, self.generators):
            rows = train.folds[fold]
            orders.append(rows[torch.randperm(len(rows), device=rows.device, generator=generator)[:count]])
        return torch.stack(orders)

    def train_step(self, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        if self._active is not None and X.dim() == 3:  # each replica's own rows: the active ones'
            X, y = X[self._active], y[self._active]
        outputs = self.model(X)  # [R, B, O]
        losses = self.loss(outputs, y)  # [R], each replica's own mean loss
        for p in self._params:  # as Trainer.train_step: optimizer.zero_grad(set_to_none=True) without its bookkeeping
            p.grad = None
        # d(sum)/d(loss_r) = 1: replica r's gradient is exactly the one it would get alone.
        losses.sum().backward()
        for member in self.members:
            if self.model.active is not None and member.part not in self.model.active:
                continue  # stopped: no gradient, nothing to step
            params = self.model.part_parameters(member.part)
            if member.config.train.grad_clip is not None:
                clip_grad_norms_(params, member.config.train.grad_clip)
            member.step(params)
            if member.scheduler is not None and member.scheduler_interval == "step":
                member.scheduler.step()
        if not track:
            return []
        with torch.no_grad():
            rows = outputs.shape[1]
            return [self._all_replicas(losses.detach() * rows),
                    self._all_replicas(self.task.replica_score_sums(outputs, y, self.outputs_are_probabilities))]

    @torch.inference_mode()
    def evaluate(self, split: Split) -> list[torch.Tensor]:
        """[mean loss [R], score sum [R]] over a split, in eval mode."""
        self.model.eval()
        if split.folds is not None:
            values = self._evaluate_folds(split)
        else:
            outputs = forward_in_chunks(self.model, split.X)  # bounded memory on large splits
            values = [self._all_replicas(self.loss(outputs, split.y)), self._all_replicas(
                self.task.replica_score_sums(outputs, split.y, self.outputs_are_probabilities))]
        self.model.train()
        return values

    def _evaluate_folds(self, split: Split) -> list[torch.Tensor]:
        """Cross-validation: each replica scored on its own fold's rows. Every replica runs on every fold (one
        batched forward per fold: as much work as one pass over the rows) and keeps its own fold's numbers."""
        losses = torch.zeros(len(self.replica_folds), device=self._device)
        scores = torch.zeros_like(losses)
        computed = self.model.active_replicas() or list(range(self.model.replicas))  # forward's output order
        for fold, rows in enumerate(split.folds):
            mine = [(r, at) for at, r in enumerate(computed) if self.replica_folds[r] == fold]
            if not mine:
                continue
            replicas, positions = (torch.tensor(v, device=self._device) for v in zip(*mine))
            outputs = forward_in_chunks(self.model, split.X[rows])[positions]
            y = split.y[rows]
            losses[replicas] = self.loss(outputs, y).to(losses.dtype)
            scores[replicas] = self.task.replica_score_sums(outputs, y, self.outputs_are_probabilities).to(scores.dtype)
        return [losses, scores]

    def _end_evaluated_epoch(self, train_sums: list[torch.Tensor]) -> None:
        rows = self.make_rows(train_sums)
        for member in self.members:
            self._record(member, rows[member.span.start : member.span.stop])
        recorded = [row for member in self.members for row in member.latest if row is not None]
        self.replica_rows = recorded
        live = [row for row in recorded if math.isfinite(row["train_loss"])] or recorded or rows
        self.history.append(mean_row(live))
        for cb in self.callbacks:
            cb.on_epoch_end(self, self.history[-1])
        self._stop_when_every_replica_has()

    def _record(self, member: Member, rows: list[dict]) -> None:
        """Append the rows of replicas still training; one whose loss stops being finite stops there, as alone."""
        member.latest = [row if member.active(i) else None for i, row in enumerate(rows)]
        diverged = []
        for i, row in enumerate(member.latest):
            if row is None:
                continue
            member.history.append(row)
            if not math.isfinite(row["train_loss"]):
                member.diverged_at[i] = self.epoch
                diverged.append(i)
        if diverged:
            member.frozen.freeze(diverged, len(member.seeds))

    def stop_replicas(self, member: Member, indices: list[int], early: bool) -> None:
        """Stop some of a member's replicas at this epoch: they record no more rows and are held as they are."""
        for i in indices:
            member.stopped_at[i] = self.epoch
        member.frozen.freeze(indices, len(member.seeds))

    def _stop_when_every_replica_has(self) -> None:
        active_elsewhere, all_diverged_elsewhere = self.elsewhere
        if active_elsewhere or any(m.active(i) for m in self.members for i in range(len(m.seeds))):
            return
        if all_diverged_elsewhere and all(all(m.diverged_at) for m in self.members):
            self.stop("diverged")
        else:
            self.stop("completed")
            self.stopped_early = self.epoch < self.cfg.epochs

    def make_rows(self, train_sums: list[torch.Tensor]) -> list[dict[str, float]]:
        """One metrics.csv row per replica."""
        metrics = self._read_metrics(train_sums)  # column -> [value per replica]
        rows = []
        for member in self.members:
            for i, (r, seed) in enumerate(zip(member.span, member.seeds)):
                row = {"epoch": self.epoch, "seed": seed, **{n: values[r] for n, values in metrics.items()}}
                rows.append({**row, "lr": member.lr(i), "seconds": round(self.seconds, 4)})
        return rows

    # ------------------------------------------------------------------ resume
    def member_state(self, member: Member) -> dict:
        """Everything one member needs to continue exactly where it is (plain data and tensors only)."""
        generators = self.model.dropout_generators
        return {
            "model": self.model.part_state(member.part),
            "optimizer": member.optimizer.state_dict(),
            "scheduler": member.scheduler.state_dict() if member.scheduler is not None else None,
            "rates": member.rates.state() if member.rates is not None else None,
            "early_stopping": member.stopping.state() if member.stopping is not None else None,
            "epoch": self.epoch,
            "seconds": self.seconds,
            "history": member.history,
            "rng": {"shuffle": [g.get_state() for g in member.generators],
                    "dropout": [generators[r].get_state() for r in member.span] if generators else None},
            "diverged_at": member.diverged_at,
            "stopped_at": member.stopped_at,
            "pruned_at": member.pruned_at,
            "partial": self._saved_partial(slice(member.span.start, member.span.stop)),
        }

    def restore_member(self, member: Member, state: dict, best: dict | None) -> None:
        member.optimizer.load_state_dict(state["optimizer"])
        if member.scheduler is not None:
            member.scheduler.load_state_dict(state["scheduler"])
        if member.rates is not None:
            member.rates.restore(state["rates"], self._device)
        if member.stopping is not None and state.get("early_stopping"):
            member.stopping.restore(state["early_stopping"])
        self.epoch, self.seconds = int(state["epoch"]), float(state["seconds"])
        member.history = [dict(row) for row in state["history"]]
        for g, saved in zip(member.generators, state["rng"]["shuffle"]):
            g.set_state(saved)
        if state["rng"]["dropout"] is not None:
            for r, saved in zip(member.span, state["rng"]["dropout"]):
                self.model.dropout_generators[r].set_state(saved)
        member.diverged_at = list(state["diverged_at"])
        member.stopped_at = list(state.get("stopped_at") or [None] * len(member.seeds))
        member.pruned_at = state.get("pruned_at")
        held = [i for i in range(len(member.seeds)) if not member.active(i)]
        if held:  # the weights and optimizer state just loaded are where they stopped
            member.frozen.freeze(held, len(member.seeds))
        self._restore_partial(state.get("partial"))  # resume trains one member: its rows are all the replicas
        self.history = mean_history(member.history)
        if best is not None:
            member.best.rows = list(best["metrics"])
            member.best.state = {k: v.to(self._device) for k, v in best["model"].items()}


def mean_history(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """The mean row of each evaluated epoch of a run's rows (the console's history)."""
    by_epoch: dict[int, list[dict]] = {}
    for row in rows:
        by_epoch.setdefault(int(row["epoch"]), []).append(row)
    return [mean_row(epoch_rows) for epoch_rows in by_epoch.values()]


def mean_row(rows: list[dict[str, float]]) -> dict[str, float]:
    """The replicas' rows averaged, key by key (epoch and seconds are the same in each; lr: the first's)."""
    keys = [k for k in rows[0] if k != "seed"]
    return {k: rows[0][k] if k in NOT_IN_ROWS else statistics.fmean(row[k] for row in rows) for k in keys}
