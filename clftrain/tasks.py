"""Per-task rules: output width, target layout, losses that fit, outputs -> probabilities -> labels.

Importable without torch: the tensor work uses tensor methods only, so config
validation can ask which losses fit a task for free.

Shapes: N samples, C classes. Binary and regression models have 1 output
(outputs [N, 1], targets float [N, 1]); multiclass models have C outputs
(outputs [N, C], targets int64 [N]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clftrain.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch


class Task:
    name: str
    losses: tuple[str, ...]  # the losses that fit; the first is the default
    metric: str  # per-epoch score in metrics.csv: "acc" (higher is better) or "mae"

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "acc"

    def out_features(self, n_classes: int) -> int:
        return 1

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        """Targets in the dtype and shape the loss expects."""
        return y.astype("float32").reshape(-1, 1)

    def probabilities(self, outputs: torch.Tensor, are_probabilities: bool) -> torch.Tensor:
        """Model outputs -> per-class probabilities (identity for regression)."""
        return outputs

    def labels(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Probabilities -> predicted class indices, shaped like the targets."""
        return probabilities

    def score_sum(self, outputs, targets, are_probabilities: bool) -> torch.Tensor:
        """Number of correct predictions (a 0-dim tensor, no host sync)."""
        predicted = self.labels(self.probabilities(outputs, are_probabilities))
        return (predicted == targets).sum()


class Binary(Task):
    name = "binary"
    losses = ("bce_with_logits", "bce")
    metric = "acc"

    def probabilities(self, outputs, are_probabilities):
        return outputs if are_probabilities else outputs.sigmoid()

    def labels(self, probabilities):
        return (probabilities >= 0.5).to(probabilities.dtype)

    def score_sum(self, outputs, targets, are_probabilities):
        return self.label_hits(outputs, targets, are_probabilities).sum()

    @staticmethod
    def label_hits(outputs, targets, are_probabilities):
        """Per output: does the thresholded prediction equal the target? sigmoid(z) >= 0.5 <=> z >= 0,
        so the hot path skips the sigmoid."""
        threshold = 0.5 if are_probabilities else 0.0
        return (outputs >= threshold) == (targets >= 0.5)


class Multiclass(Task):
    name = "multiclass"
    losses = ("cross_entropy",)
    metric = "acc"

    def out_features(self, n_classes: int) -> int:
        return n_classes

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return y.astype("int64").reshape(-1)

    def probabilities(self, outputs, are_probabilities):
        return outputs.softmax(dim=1)

    def labels(self, probabilities):
        return probabilities.argmax(dim=1)

    def score_sum(self, outputs, targets, are_probabilities):
        return (outputs.argmax(dim=1) == targets).sum()


class Multilabel(Binary):
    """Several independent yes/no labels per sample: one sigmoid output each, threshold 0.5 per label.

    Outputs [N, L], targets float [N, L]. The per-epoch `acc` is subset accuracy:
    a sample counts only when every one of its labels is right.
    """

    name = "multilabel"

    def out_features(self, n_classes: int) -> int:
        return n_classes

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return y.astype("float32").reshape(len(y), -1)

    def score_sum(self, outputs, targets, are_probabilities):
        return self.label_hits(outputs, targets, are_probabilities).all(dim=1).sum()


class Regression(Task):
    """The "can it fit a straight line?" sanity check: metric is the mean absolute error."""

    name = "regression"
    losses = ("l1", "mse")
    metric = "mae"

    def score_sum(self, outputs, targets, are_probabilities):
        return (outputs - targets).abs().sum()


TASKS: Registry[Task] = Registry("task")
for _task in (Binary(), Multiclass(), Multilabel(), Regression()):
    TASKS.register(_task.name)(_task)


def get_task(name: str) -> Task:
    return TASKS.get(name)
