"""The training loop: fit -> run_epoch -> train_step, with small callbacks for side effects.

The loop knows nothing about files or the console: logging, checkpoints and early
stopping are callbacks. It follows the performance rules of DESIGN.md: tensors
live on the device, full-batch training uses no DataLoader, mini-batches slice a
device-side randperm, and per-step losses and correct counts stay on the device
until an evaluated epoch reads them all in one transfer.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from clftrain.config import TrainConfig
from clftrain.errors import UserError
from clftrain.model import forward_in_chunks
from clftrain.tasks import Task


@dataclass
class Split:
    """One split's tensors on the device: X [N, F] float32, y shaped as the task wants."""

    X: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return self.X.shape[0]


class Callback:
    """Hooks with empty defaults; override what you need."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        """Called on each evaluated epoch with its metrics.csv row."""

    def on_fit_end(self, trainer: Trainer) -> None: ...


class EpochLoop:
    """What Trainer and multiseed.ReplicaTrainer share: the epoch loop (when to evaluate, when to stop,
    the callbacks' order, the wall-clock count), mini-batches with their stop/resume state, and the one
    device-to-host read of an evaluated epoch's metrics. Subclasses provide run_epoch, train_step,
    evaluate, _end_evaluated_epoch and _end_epoch, and the fields `cfg`, `splits`, `task`, `callbacks`,
    `epoch`, `seconds`, `status` and `partial`."""

    _stop: bool = False

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
        while self.epoch < self.cfg.epochs and not self._stop:
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
            if self._stop and step > first:
                self.partial = {"order": order, "next_step": step, "sums": sums, "track": track}
                return None
            idx = order[..., start : start + size]
            if idx.shape[-1] == 1 and len(train) > 1 and has_batch_norm:
                break  # BatchNorm cannot normalise a batch of one sample: skip that last sample
            step_sums = self.train_step(train.X[idx], train.y[idx], track)
            sums = step_sums if not sums else [a + b for a, b in zip(sums, step_sums)]
        return sums

    def _read_metrics(self, train_sums: list[torch.Tensor]) -> dict[str, float | list[float]]:
        """This epoch's metrics by column name (a list per replica for stacked models): train sums and
        an evaluation of each held-out split, every device value read in a single transfer."""
        n_train = len(self.splits["train"])
        names = ["train_loss", f"train_{self.task.metric}"]
        values, divisors = list(train_sums), [n_train, n_train]
        for split_name in ("val", "test"):
            if split_name in self.splits:
                names += [f"{split_name}_loss", f"{split_name}_{self.task.metric}"]
                values += self.evaluate(self.splits[split_name])
                divisors += [1, len(self.splits[split_name])]
        # Counts are exact in float32 (below 2**24); dividing in Python keeps accuracies exact fractions.
        numbers = torch.stack([v.float() for v in values]).tolist()
        divide = lambda v, d: [x / d for x in v] if isinstance(v, list) else v / d  # noqa: E731
        return {n: divide(v, d) for n, v, d in zip(names, numbers, divisors)}

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
        device = self.splits["train"].X.device
        self.partial = {**partial, "order": partial["order"].to(device), "sums": [s.to(device) for s in partial["sums"]]}

    def _saved_partial(self, rows: slice | None = None) -> dict | None:
        """`partial` as a checkpoint keeps it: on the CPU; `rows`: the replicas of a stacked model to keep."""
        if self.partial is None:
            return None
        pick = (lambda t: t.cpu()) if rows is None else (lambda t: t[rows].cpu())  # noqa: E731
        return {**self.partial, "order": pick(self.partial["order"]), "sums": [pick(s) for s in self.partial["sums"]]}


@dataclass
class Trainer(EpochLoop):
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    task: Task
    cfg: TrainConfig
    splits: dict[str, Split]  # "train", "test", optionally "val"
    outputs_are_probabilities: bool = False  # `loss: bce`: the model ends with a Sigmoid
    callbacks: list[Callback] = field(default_factory=list)
    seed: int = 0
    epoch: int = 0  # last completed epoch
    status: str = "running"  # -> completed | interrupted | diverged
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # training wall time, including earlier sessions when resumed
    stopped_early: bool = False
    scheduler: object | None = None  # a torch lr scheduler, stepped as `scheduler_interval` says
    scheduler_interval: str = "epoch"  # "epoch" | "step" | "metric" (see schedulers.py)
    scheduler_monitor: str = "test_loss"  # the metric a "metric" scheduler watches
    partial: dict | None = None  # an epoch stopped between mini-batches (run_epoch), continued on resume

    def __post_init__(self) -> None:
        device = self.splits["train"].X.device
        # Shuffling has its own generator so that it does not depend on how many
        # random numbers initialisation or dropout drew.
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        # train()/eval() walk every module (a measurable share of a tiny model's epoch):
        # switch modes only when some layer behaves differently in them.
        self._mode_matters = any(isinstance(m, (nn.Dropout, nn.modules.batchnorm._BatchNorm))
                                 for m in self.model.modules())
        self._params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self._has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())

    def _end_epoch(self, evaluated: bool) -> None:
        """Step an epoch or metric scheduler."""
        if self.scheduler is None:
            return
        if self.scheduler_interval == "epoch":
            self.scheduler.step()
        elif self.scheduler_interval == "metric" and evaluated and self.history:
            self.scheduler.step(self.history[-1][self.scheduler_monitor])

    def _end_evaluated_epoch(self, train_sums: list[torch.Tensor]) -> None:
        row = self.make_row(train_sums)
        self.history.append(row)
        if not math.isfinite(row["train_loss"]):
            self.stop("diverged")
        for cb in self.callbacks:
            cb.on_epoch_end(self, row)

    def run_epoch(self, track: bool) -> list[torch.Tensor] | None:
        """One pass over the training data; [loss_sum, score_sum] device tensors when tracked (None: stopped
        between two mini-batches, see _mini_batches)."""
        if self._mode_matters:
            self.model.train()
        train = self.splits["train"]
        size = self.cfg.batch_size
        if size is None or size >= len(train):
            return self.train_step(train.X, train.y, track)
        return self._mini_batches(lambda: torch.randperm(len(train), device=train.X.device, generator=self.generator),
                                  size, self._has_batch_norm, track)

    def train_step(self, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        outputs = self.model(X)
        loss = self.loss_fn(outputs, y)
        # What optimizer.zero_grad(set_to_none=True) does, without its ~7 us of bookkeeping per step
        # (1.4% of a tiny full-batch epoch): the next backward writes fresh gradients.
        for p in self._params:
            p.grad = None
        loss.backward()
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        if not track:
            return []
        with torch.no_grad():
            # Sums, not means, so that mini-batches of different sizes add up exactly.
            return [loss.detach() * len(y), self.task.score_sum(outputs, y, self.outputs_are_probabilities)]

    @torch.inference_mode()
    def evaluate(self, split: Split) -> list[torch.Tensor]:
        """[mean loss, score sum] over a split as device tensors, in eval mode (no dropout).

        The model is left in eval mode: run_epoch switches back before training."""
        if self._mode_matters:
            self.model.eval()
        outputs = forward_in_chunks(self.model, split.X)  # bounded memory on large splits
        loss = self.loss_fn(outputs, split.y)
        return [loss, self.task.score_sum(outputs, split.y, self.outputs_are_probabilities)]

    def make_row(self, train_sums: list[torch.Tensor]) -> dict[str, float]:
        """One metrics.csv row."""
        row = {"epoch": self.epoch, **self._read_metrics(train_sums)}
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["seconds"] = round(self.seconds, 4)
        return row


    # ------------------------------------------------------------------ resume
    def state(self) -> dict:
        """Everything the loop needs to continue exactly where it is (plain data and tensors only)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "seconds": self.seconds,
            "history": self.history,
            "rng": capture_rng(self.generator),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "partial": self._saved_partial(),  # an epoch stopped between mini-batches, or None
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.seconds = int(state["epoch"]), float(state["seconds"])
        self.history = [dict(row) for row in state["history"]]
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], self.generator)
        self._restore_partial(state.get("partial"))


def capture_rng(generator: torch.Generator) -> dict:
    """torch, shuffling, numpy and python RNG states as tensors and plain data (weights_only-safe)."""
    import random

    import numpy as np

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "shuffle": generator.get_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def restore_rng(state: dict, generator: torch.Generator) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))




# ---------------------------------------------------------------------- callbacks
def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """'max' for accuracies, 'min' for losses and errors, unless given."""
    if mode != "auto":
        return mode
    return "max" if monitor.endswith("_acc") else "min"


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

    def __init__(self, monitor: str, mode: str = "auto") -> None:
        self.monitor = monitor
        self.mode = monitor_mode(monitor, mode)
        self.best_row: dict[str, float] | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self._live: dict[str, torch.Tensor] | None = None  # the model's own tensors, updated in place

    def improved(self, value: float, min_delta: float = 0.0) -> bool:
        return improves(value, self.best_row, self.monitor, self.mode, min_delta)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.improved(row[self.monitor]):
            self.best_row = dict(row)
            self._copy_weights(trainer.model)

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

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
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
