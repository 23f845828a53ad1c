"""How the console writes a metric: fractions (accuracy, precision, recall, F1, ...) as percentages, losses
and errors as decimals. Files keep the plain fractions."""

from __future__ import annotations

import math

# eval.json metric names that are fractions of rows or labels (besides every `*_acc` column of metrics.csv).
FRACTIONS = frozenset({
    "accuracy", "precision", "recall", "f1", "subset_accuracy", "hamming_loss",
    *(f"{name}_{average}" for name in ("precision", "recall", "f1")
      for average in ("macro", "weighted", "micro", "samples")),
})


def is_fraction(key: str) -> bool:
    return key.endswith("_acc") or key in FRACTIONS


def metric_text(key: str, value: float | None, digits: int = 5) -> str:
    """`85.50%` for a fraction, `0.69115` (`digits` decimals) otherwise; `-` for no value (or not finite)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.2%}" if is_fraction(key) else f"{value:.{digits}f}"
