"""Build the MLP a config describes, and describe it back (layers, parameter count)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from clftrain.activations import ACTIVATIONS
from clftrain.config import ModelConfig
from clftrain.losses import EXPECTS_PROBABILITIES


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
    if loss in EXPECTS_PROBABILITIES:
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


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
