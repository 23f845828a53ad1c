"""Build the MLP a config describes, and describe it back (layers, parameter count)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clftrain.components.activations import ACTIVATIONS
from clftrain.components.inits import INITS
from clftrain.components.losses import expects_probabilities
from clftrain.config import ModelConfig
from clftrain.errors import UserError


# Rows per forward pass outside training: bounds the hidden activations' memory on large splits
# (200,000 test rows x 64 units is 51 MiB per layer in one pass, 17 MiB in chunks of this size).
EVAL_ROWS = 65_536


def forward_in_chunks(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """model(X) for evaluation, EVAL_ROWS rows at a time; outputs are joined along their row axis (-2,
    which is also a stacked multi-seed model's). A split that fits in one chunk is one call, as before."""
    rows = EVAL_ROWS
    if len(X) <= rows:
        return model(X)
    return torch.cat([model(X[start : start + rows]) for start in range(0, len(X), rows)], dim=-2)


def build_model(cfg: ModelConfig, in_features: int, out_features: int, loss: str) -> nn.Sequential:
    """in -> [Linear (-> BatchNorm) -> activation (-> Dropout)] per hidden width -> Linear (-> Sigmoid).

    The output layer returns logits, except for `loss: bce`, which wants probabilities.
    """
    layers: list[nn.Module] = []
    width = in_features
    for hidden in cfg.layers:
        layers.append(nn.Linear(width, hidden))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(ACTIVATIONS.get(cfg.activation)())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    layers.append(nn.Linear(width, out_features))
    if expects_probabilities(loss):
        layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    _initialise(model, cfg.init)
    return model


def _initialise(model: nn.Module, init: str) -> None:
    fill = INITS.get(init)
    if fill is None:
        return  # PyTorch's default, drawn when the layers were built
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            fill(layer.weight)
            nn.init.zeros_(layer.bias)


@dataclass
class LayerInfo:
    name: str  # index in the Sequential
    kind: str  # e.g. "Linear(2 -> 10)"
    parameters: int


def describe_model(model: nn.Sequential) -> list[LayerInfo]:
    return [
        LayerInfo(name, _layer_kind(layer), sum(p.numel() for p in layer.parameters()))
        for name, layer in model.named_children()
    ]


def load_weights(model: nn.Module, state: dict, source: object) -> None:
    """Load a state dict, or say which layer of `source` does not fit the config's model and how."""
    mismatch = first_mismatch(model.state_dict(), state)
    if mismatch:
        key, theirs, mine = mismatch
        raise UserError(
            f"{source} does not match the model its config describes: first mismatch at layer '{key}' "
            f"(checkpoint: {theirs}, config's model: {mine}); "
            "use the checkpoint with the config it was trained with"
        )
    model.load_state_dict(state)


def first_mismatch(expected: dict, state: dict) -> tuple[str, str, str] | None:
    """(key, checkpoint shape, expected shape) of the first tensor missing, extra or shaped differently."""
    for key in list(expected) + [k for k in state if k not in expected]:
        theirs, mine = state.get(key), expected.get(key)
        if mine is None or theirs is None or getattr(theirs, "shape", None) != mine.shape:
            return key, _shape(theirs), _shape(mine)
    return None


def _shape(value) -> str:
    if value is None:
        return "absent"
    return str(list(value.shape)) if hasattr(value, "shape") else type(value).__name__


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_kind(layer: nn.Module) -> str:
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features} -> {layer.out_features})"
    if isinstance(layer, nn.BatchNorm1d):
        return f"BatchNorm1d({layer.num_features})"
    if isinstance(layer, nn.Dropout):
        return f"Dropout(p={layer.p:g})"
    return type(layer).__name__
