"""Turn the config's `device` into a torch.device that exists on this machine, and pick the CPU threads."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn

from clftrain.errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto: CUDA if present, else Apple MPS, else CPU. An explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device = '{name}': no CUDA GPU is available here; use device: auto or cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UserError(
                f"device = '{name}': only {torch.cuda.device_count()} CUDA device(s) here "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device = 'mps': Apple MPS is not available here; use device: auto or cpu")
    return torch.device(name)


# Below this many multiply-adds per training step (rows x weights), one CPU thread is faster than
# torch's default of one per core: the matrices are too small to split, and the threads' hand-offs
# cost more than they save. Measured on 2 cores (README, Speed): circles (0.1 M) 5% faster with one
# thread on an idle machine and 10-80x faster when another process keeps a core busy; 20-64-64-1 at
# batch 256 (1.4 M) 7% slower, at batch 4096 (22 M) 53% slower.
SMALL_STEP = 1_000_000


def threads_for(setting: int | str, model: nn.Module, rows_per_step: int) -> int | None:
    """The CPU threads to train with, or None to leave torch's default."""
    if setting != "auto":
        return int(setting)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if not on_cpu or os.environ.get("OMP_NUM_THREADS"):  # the user chose already
        return None
    weights = sum(p.numel() for p in model.parameters() if p.dim() >= 2)
    return 1 if rows_per_step * weights < SMALL_STEP else None


@contextlib.contextmanager
def training_threads(setting: int | str, model: nn.Module, rows_per_step: int) -> Iterator[int]:
    """Train with threads_for(...) CPU threads, then give torch back its previous setting; yields the number."""
    previous = torch.get_num_threads()
    chosen = threads_for(setting, model, rows_per_step)
    if chosen is not None:
        torch.set_num_threads(chosen)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
