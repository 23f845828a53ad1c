"""Registry of loss functions. Which losses fit which task lives in tasks.py."""

from __future__ import annotations

from collections.abc import Callable

from clftrain.registry import Registry

LOSSES: Registry[Callable[..., object]] = Registry("loss")

# name -> class name in torch.nn.
_TORCH_CLASSES = {
    "bce_with_logits": "BCEWithLogitsLoss",  # sigmoid + BCE in one numerically stable op
    "bce": "BCELoss",  # expects probabilities: the model ends with a Sigmoid
    "cross_entropy": "CrossEntropyLoss",  # expects raw logits, one per class
    "l1": "L1Loss",  # mean absolute error
    "mse": "MSELoss",
}

# Losses that want probabilities, not logits: the model gets a final Sigmoid.
EXPECTS_PROBABILITIES = frozenset({"bce"})


def _torch_factory(class_name: str) -> Callable[..., object]:
    def build(**kwargs):
        from torch import nn

        return getattr(nn, class_name)(**kwargs)

    return build


for _name, _class_name in _TORCH_CLASSES.items():
    LOSSES.register(_name)(_torch_factory(_class_name))
