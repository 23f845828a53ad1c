"""Registry of loss functions. Which losses fit which task lives in tasks.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from clftrain.errors import UserError
from clftrain.registry import Registry

if TYPE_CHECKING:
    import torch

    from clftrain.config import TrainConfig
    from clftrain.data import Dataset

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


def build_loss(cfg: TrainConfig, dataset: Dataset | None, device: torch.device,
               weights: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """The configured loss, with class weighting and label smoothing computed from the training targets only.

    `weights`: the loss's weight tensors as a checkpoint saved them (loss_weights); given, the
    training data is not needed (eval --data, on a run whose training file is gone)."""
    import numpy as np
    import torch

    options = {}
    if cfg.label_smoothing:
        options["label_smoothing"] = cfg.label_smoothing
    if weights is not None:
        options.update({name: value.to(device) for name, value in weights.items()})
        return LOSSES.get(cfg.loss)(**options)
    if cfg.class_weight == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(dataset.y_train)
        if len(present) < dataset.n_classes:
            raise UserError("train.class_weight = 'balanced' needs every class in the training split; "
                            f"only {len(present)} of {dataset.n_classes} are there")
        weights = compute_class_weight("balanced", classes=np.arange(dataset.n_classes), y=dataset.y_train)
        options["weight"] = torch.as_tensor(weights, dtype=torch.float32, device=device)
    if cfg.pos_weight is not None:
        options["pos_weight"] = torch.as_tensor(_pos_weight(cfg.pos_weight, dataset), device=device)
    return LOSSES.get(cfg.loss)(**options)


def loss_weights(loss_fn: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weight tensors a built loss holds (class `weight`, `pos_weight`), on the CPU: what
    build_loss needs, with `weights=`, to rebuild it without the training data."""
    return {name: buffer.detach().cpu() for name, buffer in loss_fn.named_buffers()}


def needs_training_data(cfg: TrainConfig) -> bool:
    """Whether build_loss without saved weights has to read the training targets."""
    return cfg.class_weight is not None or cfg.pos_weight is not None


def _pos_weight(setting, dataset: Dataset):
    """One weight per output column: given, or negatives / positives in training for `balanced`."""
    import numpy as np

    Y = dataset.y_train.reshape(len(dataset.y_train), -1)
    if setting == "balanced":
        positives = Y.sum(axis=0)
        return np.where(positives > 0, (len(Y) - positives) / np.maximum(positives, 1), 1.0).astype(np.float32)
    weights = np.atleast_1d(np.asarray(setting, dtype=np.float32))
    if len(weights) not in (1, Y.shape[1]) or (weights <= 0).any():
        raise UserError(f"train.pos_weight = {setting!r}: give one positive number, or one per label "
                        f"({Y.shape[1]} here)")
    return np.broadcast_to(weights, (Y.shape[1],)).copy()
