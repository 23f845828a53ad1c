"""Turn the config's `device` into a torch.device that exists on this machine."""

from __future__ import annotations

import torch

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
