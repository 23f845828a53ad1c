"""Registry of weight initialisations for the Linear layers (biases start at zero, except `default`)."""

from __future__ import annotations

from collections.abc import Callable

from clftrain.registry import Registry

# Each takes a weight tensor and fills it in place; `default` keeps PyTorch's own
# (Kaiming-uniform with a=sqrt(5), the tutorial's behaviour) for weights and biases.
INITS: Registry[Callable | None] = Registry("init")
INITS.register("default")(None)

_TORCH_FUNCTIONS = {
    "xavier_uniform": "xavier_uniform_",  # Glorot: suits tanh / sigmoid
    "xavier_normal": "xavier_normal_",
    "kaiming_uniform": "kaiming_uniform_",  # He: suits ReLU
    "kaiming_normal": "kaiming_normal_",
    "orthogonal": "orthogonal_",
}


def _torch_init(function_name: str) -> Callable:
    def fill(weight) -> None:
        from torch import nn

        getattr(nn.init, function_name)(weight)

    return fill


for _name, _function in _TORCH_FUNCTIONS.items():
    INITS.register(_name)(_torch_init(_function))
