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


@SCHEDULERS.register("warmup_cosine")
def _warmup_cosine(optimizer, cfg, epochs: int, steps_per_epoch: int, mode: str):
    """Per step: linear warm-up over the first `warmup` of the steps, `hold` of them at lr, then a half cosine down
    to min_lr at the last step. The warm-up and cosine are the usual AdamW schedule (TabM's recipe trains with
    AdamW at a constant rate; RealMLP warms nothing up but holds, then decays: its flat_cos is warmup 0, hold
    0.5); the multiplier is a pure function of the step, so a resumed run continues it exactly."""
    import math

    from torch.optim.lr_scheduler import LambdaLR

    total = max(1, epochs * steps_per_epoch)
    warm, held = round(cfg.warmup * total), round(cfg.hold * total)
    base = optimizer.param_groups[0]["lr"]
    floor = min(cfg.min_lr / base, 1.0) if base > 0 else 0.0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)  # never 0: the first step already moves
        if step < warm + held:
            return 1.0
        span = max(1, total - 1 - warm - held)
        progress = min(1.0, (step - warm - held) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor), "step"
