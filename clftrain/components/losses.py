"""Registry of loss functions; each entry holds every fact about its loss.

A `Loss` names its torch module, the `train.*` options it takes (class weights, pos_weight,
label smoothing), whether it wants probabilities (the model then ends with a Sigmoid), and
its per-replica form: each replica's own mean loss over a stacked model's [R, N, O] outputs,
computed as the torch module computes it for one model. Which losses fit which task lives on
the task (tasks.py). Building a loss from the training data (class weights) is
training/setup.py's work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clftrain.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

# `train.*` keys that configure a loss; a loss accepts the ones in its `options`.
LOSS_OPTIONS = ("class_weight", "label_smoothing", "pos_weight")


@dataclass(frozen=True)
class Loss:
    name: str
    torch_class: str  # the class in torch.nn
    replica_means: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]  # (module, [R,N,O], targets) -> [R]
    options: frozenset[str] = frozenset()  # which of LOSS_OPTIONS it takes
    expects_probabilities: bool = False  # the model's outputs go through a Sigmoid first

    def build(self, **kwargs) -> nn.Module:
        from torch import nn

        return getattr(nn, self.torch_class)(**kwargs)


def _expand(targets: torch.Tensor, outputs: torch.Tensor, dims: int) -> torch.Tensor:
    """Targets for every replica: the same rows [N, ...] broadcast to [R, N, ...] (no copy), or already [R, ...]."""
    return targets if targets.dim() == dims else targets.expand(outputs.shape[0], *targets.shape)


def _cross_entropy_means(module, outputs, targets):
    import torch.nn.functional as F

    targets = _expand(targets, outputs, 2)  # class indices [R, N]
    # [R, C, N] logits with [R, N] classes is cross_entropy's own K-dimensional layout.
    losses = F.cross_entropy(outputs.transpose(1, 2), targets, reduction="none", weight=module.weight,
                             label_smoothing=module.label_smoothing)  # [R, N]
    if module.weight is None:
        return losses.mean(dim=1)
    return losses.sum(dim=1) / module.weight[targets].sum(dim=1)  # the weighted mean of the solo loss


def _elementwise_means(functional: str, **options_of: Callable) -> Callable:
    """A loss computed per output element and averaged, as torch's reduction='mean' does."""

    def means(module, outputs, targets):
        import torch.nn.functional as F

        targets = _expand(targets, outputs, 3)
        options = {key: get(module) for key, get in options_of.items()}
        return getattr(F, functional)(outputs, targets, reduction="none", **options).mean(dim=(1, 2))

    return means


LOSSES: Registry[Loss] = Registry("loss")
for _loss in (
    # sigmoid + BCE in one numerically stable op
    Loss("bce_with_logits", "BCEWithLogitsLoss",
         _elementwise_means("binary_cross_entropy_with_logits", pos_weight=lambda m: m.pos_weight),
         options=frozenset({"pos_weight"})),
    Loss("bce", "BCELoss", _elementwise_means("binary_cross_entropy"), expects_probabilities=True),
    # raw logits, one per class
    Loss("cross_entropy", "CrossEntropyLoss", _cross_entropy_means,
         options=frozenset({"class_weight", "label_smoothing"})),
    Loss("l1", "L1Loss", _elementwise_means("l1_loss")),  # mean absolute error
    Loss("mse", "MSELoss", _elementwise_means("mse_loss")),
):
    LOSSES.register(_loss.name)(_loss)


def expects_probabilities(name: str) -> bool:
    """Whether loss `name` wants probabilities, so the model ends with a Sigmoid."""
    return LOSSES.get(name).expects_probabilities


def losses_taking(option: str) -> list[str]:
    """The registered losses that accept `train.<option>`."""
    return [name for name in LOSSES if option in LOSSES.get(name).options]
