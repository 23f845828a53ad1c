"""Registry of learning-rate schedulers.

Each factory returns (scheduler, when): "epoch" steps after every epoch, "step"
after every optimizer step, "metric" after every evaluated epoch with the
monitored metric (reduce-on-plateau).
"""

from __future__ import annotations

from collections.abc import Callable

from clftrain.registry import Registry

SCHEDULERS: Registry[Callable] = Registry("scheduler")


@SCHEDULERS.register("step")
def _step(optimizer, cfg, epochs: int, steps_per_epoch: int, mode: str):
    from torch.optim.lr_scheduler import StepLR

    return StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma), "epoch"


@SCHEDULERS.register("cosine")
def _cosine(optimizer, cfg, epochs: int, steps_per_epoch: int, mode: str):
    from torch.optim.lr_scheduler import CosineAnnealingLR

    return CosineAnnealingLR(optimizer, T_max=epochs, eta_min=cfg.min_lr), "epoch"


@SCHEDULERS.register("plateau")
def _plateau(optimizer, cfg, epochs: int, steps_per_epoch: int, mode: str):
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    return ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.factor, patience=cfg.patience,
                             min_lr=cfg.min_lr), "metric"


@SCHEDULERS.register("onecycle")
def _onecycle(optimizer, cfg, epochs: int, steps_per_epoch: int, mode: str):
    from torch.optim.lr_scheduler import OneCycleLR

    max_lr = cfg.max_lr or 10 * optimizer.param_groups[0]["lr"]
    return OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch), "step"
