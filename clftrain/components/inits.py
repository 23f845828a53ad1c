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


@INITS.register("lecun_normal")
def _lecun_normal(weight) -> None:
    """LeCun normal, N(0, 1/fan_in): the initialisation SELU's self-normalisation assumes (Klambauer et al.,
    "Self-Normalizing Neural Networks", NeurIPS 2017; torch.nn.SELU's note: kaiming_normal_ with nonlinearity
    'linear'), and what RealMLP's N(0, 1) weights scaled by 1/sqrt(fan_in) amount to at the start."""
    from torch import nn

    nn.init.kaiming_normal_(weight, nonlinearity="linear")
