"""Registry of activation functions (the non-linearities between hidden layers).

Each factory returns a fresh `torch.nn.Module`; torch is imported on call so that
validating a config does not pay for it.
"""

from __future__ import annotations

from collections.abc import Callable

from clftrain.registry import Registry

ACTIVATIONS: Registry[Callable[[], object]] = Registry("activation")

# name -> class name in torch.nn. `none` is the identity: a stack of Linear layers
# without it is still one linear map (the "circles_linear" lesson).
_TORCH_CLASSES = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "silu": "SiLU",
    "selu": "SELU",  # RealMLP's activation for classification (Holzmueller et al., 2024)
    "mish": "Mish",  # RealMLP's for regression
    "none": "Identity",
}


def _torch_factory(class_name: str) -> Callable[[], object]:
    def build():
        from torch import nn

        return getattr(nn, class_name)()

    return build


for _name, _class_name in _TORCH_CLASSES.items():
    ACTIVATIONS.register(_name)(_torch_factory(_class_name))


def activation_curves(names: list[str], low: float = -10.0, high: float = 10.0, steps: int = 801) -> dict:
    """name -> (x, f(x)) as numpy, each f built by the same factory the models use."""
    import torch

    x = torch.linspace(low, high, steps)
    with torch.no_grad():
        return {name: (x.numpy(), ACTIVATIONS.get(name)()(x).numpy()) for name in names}
