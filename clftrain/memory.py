"""Refusing a run that cannot fit in memory before allocating it, with the estimate and what to shrink.

An estimate is a list of terms (what, bytes, how to make it smaller): the generated data, the model's
parameters with their gradients, optimizer state and best-weights copy, one training step's activations,
an evaluation chunk's, all of it times the replicas. `require` compares their sum with what the machine
(MemAvailable) or the GPU (free memory) has and names the biggest term when it does not fit, instead of
numpy or torch failing halfway (a MemoryError, a C++ stack dump, or the kernel's OOM killer).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from clftrain.errors import UserError

# A run may use this share of the memory available when it starts (the rest: the interpreter, libraries,
# fragmentation, the estimate's own error).
SHARE = 0.8


@dataclass
class Term:
    what: str  # "the generated data (1,000,000 rows x 20 features)"
    bytes: int
    shrink: str  # "lower dataset.n_samples or dataset.n_features"


def available_bytes(device: object | None = None) -> int | None:
    """Free memory of a CUDA device, else the machine's MemAvailable; None where neither can be read."""
    if device is not None and getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_stream_limit() -> int:
    """`dataset.stream: auto` streams a table whose float32 size is beyond a 32nd of the machine's memory
    (MemTotal; 512 MiB where it cannot be read): held in memory, a table peaks at 8 to 11 times its float32 size
    while it is read, split and scaled (make bench-huge: 10,000,000 x 20 is 0.84 GB as float32; in memory its
    CSV peaked at 7.0 GiB, its Parquet at 9.6 GiB), so a table at the limit takes about a third of the memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 // 32
    except OSError:
        pass
    return 512 * 2**20


def require(terms: list[Term], where: str, device: object | None = None) -> None:
    """A UserError when the terms' sum exceeds SHARE of the memory available (`where`: the machine or GPU)."""
    needed = sum(term.bytes for term in terms)
    free = available_bytes(device)
    if free is None or needed <= SHARE * free:
        return
    biggest = max(terms, key=lambda term: term.bytes)
    raise UserError(f"this run needs about {gib(needed)} of memory and {where} has {gib(free)} available; the "
                    f"largest part is {biggest.what}: {gib(biggest.bytes)}; {biggest.shrink}")


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"
