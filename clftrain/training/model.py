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


class InputScale(nn.Module):
    """x * scale, one learnable scale per input feature, starting at 1 (model.input_scale).

    RealMLP's "scaling layer" (Holzmueller et al., NeurIPS 2024, "Better by Default"): a diagonal layer before the
    first Linear that lets training shrink the features that do not help (a soft feature selection) faster than
    the first layer's weights can. RealMLP trains it at 6 times the learning rate; here the scale is stored as
    weight * FACTOR (weight starting at 1 / FACTOR), which under Adam and AdamW, whose steps do not depend on a
    gradient's size, moves the scale FACTOR times as far per step, with one learning rate for every parameter
    (and so with the replicas' stacked optimizer as it is). No bias.
    """

    FACTOR = 6.0

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((features,), 1 / self.FACTOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.weight * self.FACTOR)

    def extra_repr(self) -> str:
        return str(len(self.weight))


class ParametricActivation(nn.Module):
    """x + alpha * (f(x) - x), one learnable alpha per unit, starting at 1 (f itself) (model.parametric_activation).

    RealMLP's parametric activation (Holzmueller et al., NeurIPS 2024, "Better by Default"): each hidden unit may
    move between its non-linearity (alpha = 1) and the identity (alpha = 0), or past either. RealMLP trains alpha at
    a tenth of its learning rate (0.04), beside hidden weights whose NTK parametrisation makes their step 0.04 /
    sqrt(256) in its 256-wide layers: alpha moves 1.6 times as far per step as a hidden weight. As with InputScale,
    alpha is stored as weight * FACTOR (weight starting at 1 / FACTOR), which under Adam and AdamW moves it FACTOR
    times as far per step as a weight, with one learning rate for every parameter; FACTOR keeps RealMLP's ratio
    (at a tenth of the step, 0.1, the ablation's alphas barely left 1). `f` is the config's activation, stateless.
    """

    FACTOR = 1.6

    def __init__(self, f: nn.Module, units: int) -> None:
        super().__init__()
        self.f = f
        self.weight = nn.Parameter(torch.full((units,), 1 / self.FACTOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.f(x) - x) * (self.weight * self.FACTOR)

    def extra_repr(self) -> str:
        return str(len(self.weight))


class PeriodicEmbedding(nn.Module):
    """Each input feature x -> [x, e_1 .. e_W], e = V cos(2 pi (w x + b)) + c with FREQUENCIES learnable
    frequencies w and phases b per feature and a per-feature linear map V (model.embedding: periodic).

    The periodic embeddings of Gorishniy et al. ("On Embeddings for Numerical Features in Tabular Deep Learning",
    NeurIPS 2022), in the form RealMLP's PBLD takes them (Holzmueller et al., 2024): a phase ("bias") inside the
    cosine, a linear map after it, and the raw value kept beside the embedding ("DenseNet"). Frequencies start
    from N(0, SIGMA^2) (inputs are scaled to about unit size), phases uniform in (-1, 1) periods; every input
    column is embedded, a one-hot one too. Shapes: [N, F] -> [N, F * (WIDTH + 1)].
    """

    FREQUENCIES, WIDTH, SIGMA = 16, 3, 0.1

    def __init__(self, features: int) -> None:
        super().__init__()
        k, d = self.FREQUENCIES, self.WIDTH
        self.frequency = nn.Parameter(torch.randn(features, k) * self.SIGMA)
        self.phase = nn.Parameter(torch.rand(features, k) * 2 - 1)  # in periods: uniform in (-1, 1)
        bound = 1 / k**0.5  # nn.Linear's default, per feature
        self.weight = nn.Parameter(torch.empty(features, k, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(features, d).uniform_(-bound, bound))

    @property
    def out_features(self) -> int:
        return self.frequency.shape[0] * (self.WIDTH + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        waves = torch.cos(2 * torch.pi * (x.unsqueeze(-1) * self.frequency + self.phase))  # [N, F, k]
        embedded = torch.einsum("nfk,fkd->nfd", waves, self.weight) + self.bias  # [N, F, d]
        return torch.cat([x.unsqueeze(-1), embedded], dim=-1).flatten(1)

    def extra_repr(self) -> str:
        return f"{self.frequency.shape[0]} -> {self.out_features}"


def build_model(cfg: ModelConfig, in_features: int, out_features: int, loss: str) -> nn.Sequential:
    """in (-> InputScale) (-> PeriodicEmbedding) -> [Linear (-> BatchNorm) -> (parametric) activation (-> Dropout)] per hidden
    width -> Linear (-> Sigmoid).

    The output layer returns logits, except for `loss: bce`, which wants probabilities.
    """
    layers: list[nn.Module] = [InputScale(in_features)] if cfg.input_scale else []
    if cfg.embedding == "periodic":
        layers.append(PeriodicEmbedding(in_features))
        in_features = layers[-1].out_features
    width = in_features
    for hidden in cfg.layers:
        layers.append(nn.Linear(width, hidden))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        activation = ACTIVATIONS.get(cfg.activation)()
        layers.append(ParametricActivation(activation, hidden) if cfg.parametric_activation else activation)
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
    if isinstance(layer, InputScale):
        return f"InputScale({len(layer.weight)})"
    if isinstance(layer, PeriodicEmbedding):
        return f"PeriodicEmbedding({layer.frequency.shape[0]} -> {layer.out_features})"
    if isinstance(layer, ParametricActivation):
        return f"Parametric{type(layer.f).__name__}({len(layer.weight)})"
    return type(layer).__name__
