"""Data-parallel training on torch.distributed: the ranks a torchrun launch made, their share of each batch,
and the few collectives the loop needs.

Every rank holds the whole (in-memory) dataset and draws the same shuffled order from the same generator;
each takes its contiguous shard of every global mini-batch (`train.batch_size` is the global batch), so
every rank runs the same number of steps and none waits on an uneven last batch. The loss a rank
backpropagates is its shard's *sum* divided by the whole batch's denominator (rows, or the class weights of
its rows), times the world size: DistributedDataParallel averages gradients over the ranks, and the average
of those is exactly the single-process gradient (to float rounding). Evaluation splits each held-out split
the same way and all-reduces loss and score sums: every row counted once, no sampler padding.
"""

from __future__ import annotations

import copy
import datetime
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from clftrain.errors import UserError

# How long a collective waits for a rank that went silent (killed, hung) before the others give up. torchrun's
# agent usually stops them sooner: it ends every worker as soon as one exits. CLFTRAIN_COLLECTIVE_TIMEOUT_S sets it
# (collective_timeout_s; a slow shared filesystem may want longer).
TIMEOUT_VARIABLE = "CLFTRAIN_COLLECTIVE_TIMEOUT_S"


def collective_timeout_s() -> float:
    """COLLECTIVE_TIMEOUT_S, or the seconds TIMEOUT_VARIABLE gives (a UserError naming a value that is not)."""
    text = os.environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return COLLECTIVE_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise UserError(f"{TIMEOUT_VARIABLE}={text!r}: expected a number of seconds above 0, e.g. 300")
    return seconds


COLLECTIVE_TIMEOUT_S = 120
PATIENT_TIMEOUT_S = 7 * 24 * 3600  # how long ranks wait for work of uneven length (_new_patient_group)
# Steps (or full-batch epochs) between two agreements on a stop a signal asked for: a gloo all-reduce of one
# number costs about 160 us on a 2-core machine, a third of the step of bench's `big` workload.
STOP_EVERY = 16


@dataclass(frozen=True)
class World:
    """This process's place in a torchrun launch."""

    rank: int
    size: int
    backend: str  # "gloo" (CPU) or "nccl" (CUDA)
    patient: object = field(default=None, compare=False, repr=False)  # _new_patient_group's: a long wait

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict:
        return {"world_size": self.size, "backend": self.backend}


_world: World | None = None


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process as one of several."""
    return world_size() > 1


def current_world() -> World | None:
    """The world this process joined (join_world), or None for one ordinary process."""
    return _world


def join_world(device: torch.device) -> World:
    """Join the launch's process group (once): gloo for the CPU, NCCL for CUDA, with collective_timeout_s()."""
    global _world
    import torch.distributed as dist

    if device.type not in ("cpu", "cuda"):
        raise UserError(f"device = '{device.type}': data-parallel training runs on the CPU (gloo) or CUDA (NCCL); "
                        "set device: cpu or cuda")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if _world is not None:
        if _world.backend != backend:  # a sweep whose runs name both devices, then a refit: one backend
            raise UserError(f"device = '{device.type}' needs {backend}, but this process joined the launch with "
                            f"{_world.backend}: give every run of the launch the same device")
        return _world
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's object collectives (the run directory's path) use the current GPU
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=collective_timeout_s()),
                            **({"device_id": device} if device.type == "cuda" else {}))
    _world = World(dist.get_rank(), dist.get_world_size(), backend, _new_patient_group())
    return _world


def _new_patient_group():
    """A gloo group of every rank whose collectives wait up to PATIENT_TIMEOUT_S, not COLLECTIVE_TIMEOUT_S: for
    ranks that meet after work of uneven length (a sweep's batches dealt over the ranks; rank 0 writing a run's
    plots, report and trackers while the others wait for its summary). A rank that dies still ends the wait:
    torchrun then stops the others. Made with the world, by every rank at once (a collective)."""
    import torch.distributed as dist

    return dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=PATIENT_TIMEOUT_S))


def leave_world() -> None:
    global _world
    import torch.distributed as dist

    if _world is not None and dist.is_initialized():
        dist.destroy_process_group()
    _world = None


def main_process() -> bool:
    """Whether this process is the one that writes files and talks to the console (rank 0, or not launched)."""
    return int(os.environ.get("RANK", "0")) == 0


def rank_device(device: torch.device) -> torch.device:
    """A launched rank's own GPU (LOCAL_RANK) when the config picks CUDA; the device itself otherwise."""
    if device.type != "cuda" or not launched():
        return device
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank >= torch.cuda.device_count():
        raise UserError(f"LOCAL_RANK {rank}: this machine has {torch.cuda.device_count()} CUDA device(s); start "
                        "at most that many processes per node (--nproc-per-node)")
    return torch.device("cuda", rank)


def shard(rows: int, world: World) -> slice:
    """This rank's contiguous share of `rows` (torch.tensor_split's: the first rows % size ranks get one more)."""
    base, extra = divmod(rows, world.size)
    start = world.rank * base + min(world.rank, extra)
    return slice(start, start + base + (world.rank < extra))


def sum_loss(loss_fn: nn.Module) -> nn.Module:
    """The same loss reducing by sum (its weights shared): a shard's part of the batch's numerator."""
    summed = copy.copy(loss_fn)
    summed.reduction = "sum"
    return summed


def loss_denominator(loss_fn: nn.Module, targets: torch.Tensor) -> torch.Tensor | float:
    """What reduction='mean' divides by over `targets` (the whole batch or split): the class weights of its
    rows for a weighted cross entropy, its number of target elements otherwise (a number: no tensor made on
    the device each step)."""
    weight = getattr(loss_fn, "weight", None)
    if isinstance(loss_fn, nn.CrossEntropyLoss) and weight is not None:
        return weight[targets].sum()
    return float(targets.numel())


def all_reduce_sum(values: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each value summed over the ranks, in one collective."""
    import torch.distributed as dist

    if not values:
        return values
    stacked = torch.stack([v.float().reshape(()) if v.dim() == 0 else v.float() for v in values])
    dist.all_reduce(stacked)
    return list(stacked.unbind(0))


def gather_stacked(values: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each value of every rank, stacked in rank order ([world, *shape]), on every rank. Exact: each rank's slot
    is its value plus zeros from the others."""
    import torch.distributed as dist

    stacked = []
    for value in values:
        slots = torch.zeros((dist.get_world_size(), *value.shape), dtype=value.dtype, device=value.device)
        slots[dist.get_rank()] = value
        dist.all_reduce(slots)
        stacked.append(slots)
    return stacked


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is true on any rank (a stop asked by a signal that reached one rank first)."""
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_all(obj, patient: bool = False) -> list:
    """Every rank's `obj`, in rank order, on every rank (patient: waiting up to PATIENT_TIMEOUT_S for the last)."""
    import torch.distributed as dist

    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj, group=_world.patient if patient else None)
    return gathered


def gather_to_main(obj) -> list | None:
    """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""
    import torch.distributed as dist

    gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def is_collective_failure(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another rank went away (not a bug of this process)."""
    import torch.distributed as dist

    words = ("gloo", "NCCL", "Connection", "connection", "timed out", "Timed out", "Socket")
    return isinstance(exc, dist.DistError) or any(word in str(exc) for word in words)


def broadcast(obj, world: World | None, patient: bool = False):
    """Rank 0's `obj` on every rank (a run directory's path, a summary); `obj` itself without a world. patient:
    the others wait up to PATIENT_TIMEOUT_S for rank 0, not COLLECTIVE_TIMEOUT_S."""
    import torch.distributed as dist

    if world is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=world.patient if patient else None)
    return box[0]


def world_size() -> int:
    """The number of processes the launch started (1 without one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def check_world_batch(batch_size: int | None, train_rows: int, processes: int) -> None:
    rows = train_rows if batch_size is None else min(batch_size, train_rows)
    if rows < processes:
        raise UserError(f"train.batch_size = {batch_size}: a batch of {rows} rows cannot be shared by "
                        f"{processes} processes (each needs at least one row); use a batch of at least "
                        f"{processes} rows or fewer processes")


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of one rank's dropout masks at one training step: different per rank, the same on a rerun or a
    resume with the same world size (nothing to save)."""
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)
