"""Per-task facts, the only place they live: output width, target layout, the losses that fit,
the metric (its name, label and direction), outputs -> probabilities -> labels, for one model
and for a stack of replicas.

Importable without torch: the tensor work uses tensor methods only, so config
validation can ask which losses fit a task for free.

Shapes: N samples, C classes (or L labels), R replicas. Binary and regression models have 1
output (outputs [N, 1], targets float [N, 1]); multiclass models have C outputs (outputs
[N, C], targets int64 [N]); multilabel L (outputs and float targets [N, L]). A stack of
replicas gives [R, N, O] outputs against the same targets (or [R, ...] per-replica batches).
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
    metric: str = "acc"  # per-epoch score in metrics.csv: "acc" (a fraction of rows) or "mae"
    metric_label: str = "accuracy"  # how people call the metric, in titles and sentences
    higher_is_better: bool = True
    # What one row's target is: "class" (one of C), "labels" (a yes/no per label), "value" (a number).
    target: str = "class"
    stratify: bool = True  # the split keeps the classes' proportions

    def out_features(self, n_classes: int) -> int:
        return 1

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        """Targets in the dtype and shape the loss expects."""
        return y.astype("float32").reshape(-1, 1)

    def probabilities(self, outputs: torch.Tensor, are_probabilities: bool) -> torch.Tensor:
        """Model outputs -> per-class probabilities (identity for regression); [..., N, O] either way."""
        return outputs

    def labels(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Probabilities -> predicted class indices, shaped like the targets."""
        return probabilities

    # The two score forms below are written out per task (not one through the other): each is on the
    # hot path of its loop, and an extra unsqueeze and index per step is measurable on tiny models.
    def score_sum(self, outputs, targets, are_probabilities: bool) -> torch.Tensor:
        """One model's score summed over the rows: correct predictions (MAE: absolute errors), a 0-dim tensor
        (no host sync)."""
        raise NotImplementedError

    def replica_score_sums(self, outputs, targets, are_probabilities: bool) -> torch.Tensor:
        """score_sum for each replica of [R, N, O] outputs: [R], on the device."""
        raise NotImplementedError

    def outputs_from_probabilities(self, probabilities, are_probabilities: bool) -> torch.Tensor:
        """Outputs that `probabilities()` maps back to `probabilities`: an ensemble's mean probability returned
        as a model of this task returns its outputs, so the run's loss and labels apply unchanged."""
        return probabilities

    def format_metric(self, value: float) -> str:
        return f"{value:.2%}" if self.metric == "acc" else f"{value:.4f}"


class Binary(Task):
    name = "binary"
    losses = ("bce_with_logits", "bce")

    def probabilities(self, outputs, are_probabilities):
        return outputs if are_probabilities else outputs.sigmoid()

    def labels(self, probabilities):
        return (probabilities >= 0.5).to(probabilities.dtype)

    def score_sum(self, outputs, targets, are_probabilities):
        return label_hits(outputs, targets, are_probabilities).sum()

    def replica_score_sums(self, outputs, targets, are_probabilities):
        return label_hits(outputs, targets, are_probabilities).sum(dim=(1, 2))

    def outputs_from_probabilities(self, probabilities, are_probabilities):
        if are_probabilities:
            return probabilities
        import torch

        return torch.logit(probabilities, eps=1e-7)  # a finite logit even where every replica is certain


def label_hits(outputs, targets, are_probabilities: bool):
    """Per output: does the thresholded prediction equal the target? sigmoid(z) >= 0.5 <=> z >= 0,
    so the hot path skips the sigmoid."""
    threshold = 0.5 if are_probabilities else 0.0
    return (outputs >= threshold) == (targets >= 0.5)


class Multiclass(Task):
    name = "multiclass"
    losses = ("cross_entropy",)

    def out_features(self, n_classes: int) -> int:
        return n_classes

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return y.astype("int64").reshape(-1)

    def probabilities(self, outputs, are_probabilities):
        return outputs.softmax(dim=-1)

    def labels(self, probabilities):
        return probabilities.argmax(dim=-1)

    def score_sum(self, outputs, targets, are_probabilities):
        return (outputs.argmax(dim=1) == targets).sum()

    def replica_score_sums(self, outputs, targets, are_probabilities):
        # A stacked model's [R, N, C] outputs are a transposed view of [R, C, N]: argmax over contiguous memory.
        return (outputs.transpose(1, 2).argmax(dim=1) == targets).sum(dim=-1)

    def outputs_from_probabilities(self, probabilities, are_probabilities):
        import torch

        return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()  # softmax(log p) = p


class Multilabel(Binary):
    """Several independent yes/no labels per sample: one sigmoid output each, threshold 0.5 per label.

    The per-epoch `acc` is subset accuracy: a sample counts only when every one of its labels is right.
    """

    name = "multilabel"
    metric_label = "subset accuracy"
    target = "labels"
    stratify = False  # rows carry several labels: no single class to stratify by

    def out_features(self, n_classes: int) -> int:
        return n_classes

    def prepare_targets(self, y: np.ndarray) -> np.ndarray:
        return y.astype("float32").reshape(len(y), -1)

    def score_sum(self, outputs, targets, are_probabilities):
        return label_hits(outputs, targets, are_probabilities).all(dim=1).sum()

    def replica_score_sums(self, outputs, targets, are_probabilities):
        return label_hits(outputs, targets, are_probabilities).all(dim=2).sum(dim=1)


class Regression(Task):
    """The "can it fit a straight line?" sanity check: metric is the mean absolute error."""

    name = "regression"
    losses = ("l1", "mse")
    metric = "mae"
    metric_label = "MAE"
    higher_is_better = False
    target = "value"
    stratify = False

    def score_sum(self, outputs, targets, are_probabilities):
        return (outputs - targets).abs().sum()

    def replica_score_sums(self, outputs, targets, are_probabilities):
        return (outputs - targets).abs().sum(dim=(1, 2))


TASKS: Registry[Task] = Registry("task")
for _task in (Binary(), Multiclass(), Multilabel(), Regression()):
    TASKS.register(_task.name)(_task)


def get_task(name: str) -> Task:
    return TASKS.get(name)


def classes_task(n_classes: int) -> str:
    """The task one column of `n_classes` classes makes."""
    return "binary" if n_classes == 2 else "multiclass"


def metric_higher_is_better(column: str) -> bool:
    """For a metrics.csv column such as val_acc, test_mae or train_loss: the direction its task's metric
    improves in (losses always go down)."""
    quantity = column.rpartition("_")[2]
    return any(TASKS.get(name).higher_is_better for name in TASKS if TASKS.get(name).metric == quantity)


def task_fits(forced: str, implied: str, n_classes: int | None) -> bool:
    """Whether a config's `task` can train targets that imply `implied` (with `n_classes` classes, if known):
    the same task, or two classes trained as binary and as a 2-way multiclass either way."""
    if forced == implied:
        return True
    return {forced, implied} == {"binary", "multiclass"} and n_classes == 2
