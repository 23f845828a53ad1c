"""One model's trainer: the epoch loop (loop.py) over an nn.Module, its optimizer and loss, and its resume state."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from clftrain.components.tasks import Task
from clftrain.config import TrainConfig
from clftrain.training import distributed
from clftrain.training.distributed import World
from clftrain.training.loop import Callback, EpochLoop, Split
from clftrain.training.model import forward_in_chunks


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
    restored_from: int | None = None  # the epoch whose weights the model holds after restore_best (callbacks.py)
    world: World | None = None  # data-parallel under torchrun (distributed.py): each step trains this rank's shard
    steps: int = 0  # data-parallel training steps so far: they seed each rank's dropout masks (resume keeps it)

    def __post_init__(self) -> None:
        device = self.splits["train"].device
        # Shuffling has its own generator so that it does not depend on how many
        # random numbers initialisation or dropout drew.
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        # train()/eval() walk every module (a measurable share of a tiny model's epoch):
        # switch modes only when some layer behaves differently in them.
        self._mode_matters = any(isinstance(m, (nn.Dropout, nn.modules.batchnorm._BatchNorm))
                                 for m in self.model.modules())
        self._params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self._has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
        if self.world is not None:
            self._join(self.world, device)

    def _join(self, world: World, device: torch.device) -> None:
        """Wrap the model in DistributedDataParallel (it starts from rank 0's weights) for the training steps."""
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda" and self._has_batch_norm:  # statistics over the whole batch, as one process
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self._parallel = DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
        self._sum_loss = distributed.sum_loss(self.loss_fn)
        self._dropout = any(isinstance(m, nn.Dropout) for m in self.model.modules())

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
        return self._mini_batches(lambda: torch.randperm(len(train), device=train.device, generator=self.generator),
                                  size, self._has_batch_norm, track)

    def train_step(self, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        if self.world is not None:
            return self._shard_step(X, y, track)
        return self.mean_loss_step(self.model, X, y, track)

    def mean_loss_step(self, module: nn.Module, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        """A step on the batch's mean loss through `module` (the model, or its DistributedDataParallel wrapper)."""
        outputs = module(X)
        loss = self.loss_fn(outputs, y)
        self._update(loss)
        if not track:
            return []
        with torch.no_grad():
            # Sums, not means, so that mini-batches of different sizes add up exactly.
            return [loss.detach() * len(y), self.task.score_sum(outputs, y, self.outputs_are_probabilities)]

    def seed_rank_dropout(self) -> None:
        """Data-parallel dropout masks per rank and step, reproducible for a world size without saving RNG state."""
        if self._dropout:
            self.steps += 1
            torch.manual_seed(distributed.step_seed(self.seed, self.world.rank, self.steps))

    def _update(self, loss: torch.Tensor) -> None:
        """Backward and one optimizer (and per-step scheduler) step. Clearing the gradients is what
        optimizer.zero_grad(set_to_none=True) does, without its ~7 us of bookkeeping per step (1.4% of a tiny
        full-batch epoch): the next backward writes fresh gradients."""
        for p in self._params:
            p.grad = None
        loss.backward()
        if self.cfg.grad_clip is not None:  # data-parallel, the gradients are the whole batch's, alike everywhere
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()

    def _shard_step(self, X: torch.Tensor, y: torch.Tensor, track: bool) -> list[torch.Tensor]:
        """train_step of one rank: the global batch's shard forward and backward, the loss scaled so that
        DistributedDataParallel's average of the ranks' gradients is the whole batch's gradient."""
        world = self.world
        self.seed_rank_dropout()
        part = distributed.shard(len(y), world)
        outputs = self._parallel(X[part])
        loss = self._sum_loss(outputs, y[part]) / distributed.loss_denominator(self.loss_fn, y)
        self._update(loss * world.size)
        if not track:
            return []
        with torch.no_grad():  # this rank's part of the batch's sums: the epoch's end adds the ranks' up
            return [loss.detach() * len(y), self.task.score_sum(outputs, y[part], self.outputs_are_probabilities)]

    @torch.inference_mode()
    def evaluate(self, split: Split) -> list[torch.Tensor]:
        """[mean loss, score sum] over a split as device tensors, in eval mode (no dropout). Data-parallel,
        each rank evaluates its shard and the sums are added over the ranks: every row counted once.

        The model is left in eval mode: run_epoch switches back before training."""
        if self._mode_matters:
            self.model.eval()
        if self.world is not None:
            part = distributed.shard(len(split), self.world)
            outputs = forward_in_chunks(self.model, split.X[part])
            loss = self._sum_loss(outputs, split.y[part]) / distributed.loss_denominator(self.loss_fn, split.y)
            return distributed.all_reduce_sum(
                [loss, self.task.score_sum(outputs, split.y[part], self.outputs_are_probabilities)])
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
            "restored_from": self.restored_from,
            "steps": self.steps,  # data-parallel dropout seeds count the steps
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
        self.restored_from = state.get("restored_from")
        self.steps = int(state.get("steps", 0))


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
