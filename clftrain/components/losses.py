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
    module: Callable[[], type] | None = None  # the module's class where it is not torch.nn's own torch_class

    def build(self, **kwargs) -> nn.Module:
        from torch import nn

        return (self.module() if self.module else getattr(nn, self.torch_class))(**kwargs)


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


def _smoothed(targets, module):
    """Binary targets pulled towards 1/2 by label_smoothing: y (1 - e) + e / 2, what cross_entropy's smoothing
    does to the two classes of a binary task (RealMLP smooths its classification targets by 0.1)."""
    smoothing = getattr(module, "label_smoothing", 0.0)
    return targets * (1 - smoothing) + smoothing / 2 if smoothing else targets


def _bce_with_logits_means(module, outputs, targets):
    import torch.nn.functional as F

    targets = _smoothed(_expand(targets, outputs, 3), module)
    return F.binary_cross_entropy_with_logits(outputs, targets, reduction="none",
                                              pos_weight=module.pos_weight).mean(dim=(1, 2))


_SMOOTHED_BCE = []


def _smoothed_bce_class() -> type:
    """BCEWithLogitsLoss that also takes label_smoothing (made once, on first use: torch is imported then)."""
    if not _SMOOTHED_BCE:
        from torch import nn

        class BCEWithLogitsLoss(nn.BCEWithLogitsLoss):
            def __init__(self, label_smoothing: float = 0.0, **kwargs) -> None:
                super().__init__(**kwargs)
                self.label_smoothing = label_smoothing

            def forward(self, input, target):
                return super().forward(input, _smoothed(target, self))

        _SMOOTHED_BCE.append(BCEWithLogitsLoss)
    return _SMOOTHED_BCE[0]


LOSSES: Registry[Loss] = Registry("loss")
for _loss in (
    # sigmoid + BCE in one numerically stable op
    Loss("bce_with_logits", "BCEWithLogitsLoss", _bce_with_logits_means,
         options=frozenset({"pos_weight", "label_smoothing"}), module=_smoothed_bce_class),
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
