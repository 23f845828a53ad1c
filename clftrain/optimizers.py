"""Registry of optimizers: each factory takes the parameters and the train config."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from clftrain.registry import Registry

if TYPE_CHECKING:
    import torch

    from clftrain.config import TrainConfig

OPTIMIZERS: Registry[Callable[..., "torch.optim.Optimizer"]] = Registry("optimizer")

# Optimizers whose update uses `momentum` (the others reject a non-zero value in config.py).
USES_MOMENTUM = frozenset({"sgd", "rmsprop"})


# foreach=True: one fused kernel per parameter group instead of a Python loop per tensor.
@OPTIMIZERS.register("sgd")
def _sgd(params, cfg: TrainConfig):
    import torch

    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay, foreach=True,
    )


@OPTIMIZERS.register("adam")
def _adam(params, cfg: TrainConfig):
    import torch

    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


@OPTIMIZERS.register("adamw")
def _adamw(params, cfg: TrainConfig):
    import torch

    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


@OPTIMIZERS.register("rmsprop")
def _rmsprop(params, cfg: TrainConfig):
    import torch

    return torch.optim.RMSprop(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
    )


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer, built and stepped without importing torch._dynamo (see startup.py)."""
    from clftrain.startup import skip_dynamo_import, step_without_dynamo

    skip_dynamo_import()
    return step_without_dynamo(OPTIMIZERS.get(cfg.optimizer)(params, cfg))
