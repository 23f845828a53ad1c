"""Run a trained model over numpy features: outputs -> probabilities -> labels."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from clftrain.tasks import Task

# Rows per forward pass: bounds memory on large inputs (a decision-boundary grid, a big CSV).
CHUNK = 65_536


@torch.inference_mode()
def predict(
    model: nn.Module, task: Task, X: np.ndarray, outputs_are_probabilities: bool, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) as numpy: probabilities [N, C] (binary, regression: [N, 1]), labels [N]."""
    model.eval()
    probabilities = []
    for start in range(0, len(X), CHUNK):
        chunk = torch.as_tensor(X[start : start + CHUNK], dtype=torch.float32, device=device)
        probabilities.append(task.probabilities(model(chunk), outputs_are_probabilities))
    probs = torch.cat(probabilities) if probabilities else torch.empty(0, 1, device=device)
    labels = task.labels(probs).reshape(len(probs), -1)[:, 0]
    return probs.cpu().numpy(), labels.cpu().numpy()
