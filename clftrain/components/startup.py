"""Keep `clftrain fit` from paying for torch._dynamo, which it never uses.

torch.optim imports torch._dynamo (about 1 s on a 2-core machine) the first time an
optimizer is built or steps, only to tell the compiler "do not trace this". clftrain
never compiles, so:
- methods wrapped by torch._compile._disable_dynamo are marked as already resolved
  (the attribute the wrapper caches after its first call), and
- `step` runs the optimizer's own update under no_grad, which is all the
  `_use_grad_for_differentiable` wrapper does when differentiable=False.
If this torch lays its wrappers out differently, nothing is changed and the cost is paid.
"""

from __future__ import annotations

import inspect
import sys
import types


def skip_dynamo_import() -> None:
    if "torch._dynamo" in sys.modules:
        return  # already paid: nothing to save
    import torch.optim
    from torch.optim import lr_scheduler

    for owner in (torch.optim.Optimizer, lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau):
        for name in dir(owner):
            wrapper = getattr(owner, name, None)
            inner = getattr(wrapper, "__wrapped__", None)
            code = getattr(wrapper, "__code__", None)
            if inner is not None and code is not None and code.co_filename.endswith("_compile.py"):
                try:
                    inner.__dynamo_disable = inner  # what the wrapper caches after its first call
                except (AttributeError, TypeError):
                    pass


def step_without_dynamo(optimizer):
    """Make `optimizer.step` call the update itself (under no_grad) instead of torch's wrapper."""
    import torch

    raw = inspect.unwrap(type(optimizer).step)
    if raw is type(optimizer).step or optimizer.defaults.get("differentiable"):
        return optimizer  # nothing wrapped, or a wrapper that does more than no_grad: keep torch's

    def step(self, closure=None):
        with torch.no_grad():
            return raw(self, closure)

    optimizer.step = types.MethodType(step, optimizer)  # a bound method, as lr schedulers expect
    return optimizer
