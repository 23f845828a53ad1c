"""Run a trained model over numpy features: outputs -> probabilities -> labels (and, with targets, loss and score)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from clftrain.components.tasks import Task
from clftrain.training import EVAL_ROWS, forward_in_chunks


@torch.inference_mode()
def predict(
    model: nn.Module, task: Task, X: np.ndarray, outputs_are_probabilities: bool, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) as numpy: probabilities [N, C] (binary, regression: [N, 1]), labels [N]
    (multilabel: [N, L])."""
    model.eval()
    probabilities = []
    for start in range(0, len(X), EVAL_ROWS):  # numpy rows to the device a chunk at a time, too
        chunk = torch.as_tensor(X[start : start + EVAL_ROWS], dtype=torch.float32, device=device)
        probabilities.append(task.probabilities(model(chunk), outputs_are_probabilities))
    probs = torch.cat(probabilities) if probabilities else torch.empty(0, 1, device=device)
    return _to_numpy(task, probs)


@dataclass
class Scored:
    """A split run through the model, with the numbers metrics.csv records for it."""

    probabilities: np.ndarray  # [N, C] (binary, regression: [N, 1])
    labels: np.ndarray  # [N] class indices (binary: 0./1.), multilabel [N, L] 0./1., regression: values
    loss: float  # the run's training loss function, a mean over the rows
    score: float  # the task's metric: accuracy (a fraction) or mean absolute error


@torch.inference_mode()
def score(
    model: nn.Module, task: Task, loss_fn: nn.Module, X: np.ndarray, y: np.ndarray,
    outputs_are_probabilities: bool, device: torch.device,
) -> Scored:
    """The whole split through the model, computed as Trainer.evaluate computes it.

    Same device, same chunks (model.forward_in_chunks), same float32 loss and score: on the
    device `fit` used, the loss and score equal the test_loss / test_acc it wrote, bit for bit.
    """
    model.eval()
    X_t = torch.as_tensor(X, device=device)
    y_t = torch.as_tensor(y, device=device)
    outputs = forward_in_chunks(model, X_t)
    loss = loss_fn(outputs, y_t)
    score_sum = task.score_sum(outputs, y_t, outputs_are_probabilities)
    loss_value, score_value = torch.stack([loss.float(), score_sum.float()]).tolist()  # one transfer
    score_value /= len(y_t)  # divided in Python, as Trainer.make_row does
    probabilities, labels = _to_numpy(task, task.probabilities(outputs, outputs_are_probabilities))
    return Scored(probabilities, labels, loss_value, score_value)


@torch.inference_mode()
def score_stream(model: nn.Module, task: Task, loss_fn: nn.Module, batches, outputs_are_probabilities: bool,
                 ) -> tuple[np.ndarray, Scored]:
    """(targets, Scored) of a streamed split, computed as StreamTrainer.evaluate computes it (the same blocks,
    the same sums): on fit's device, the loss and score equal what fit wrote, bit for bit."""
    from clftrain.training import evaluate_stream

    model.eval()
    kept: list = []
    loss, score_sum = evaluate_stream(model, task, loss_fn, batches, outputs_are_probabilities, keep=kept)
    y = torch.cat([y for _, y in kept])
    loss_value, score_value = torch.stack([loss.float(), score_sum.float()]).tolist()
    probabilities, labels = _to_numpy(task, torch.cat([p for p, _ in kept]))
    return y.cpu().numpy(), Scored(probabilities, labels, loss_value, score_value / len(y))


def to_labels(task: Task, probabilities: torch.Tensor) -> np.ndarray:
    """The task's labels of these probabilities as numpy: [N] (one label per row) or [N, L]."""
    labels = task.labels(probabilities).reshape(len(probabilities), -1)
    if labels.shape[1] == 1:  # one label per row: [N]
        labels = labels[:, 0]
    return labels.cpu().numpy()


def _to_numpy(task: Task, probabilities: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return probabilities.cpu().numpy(), to_labels(task, probabilities)
