"""Evaluation metrics, all from sklearn.metrics: plain numpy in, plain JSON-ready data out.

Shapes: N rows, C classes. `probabilities` is [N, C] for multiclass and [N, 1]
(the positive class) for binary, as the model's task produces them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, C] counts, rows: true class, columns: predicted class (every class, even when absent); what
    sklearn.metrics.confusion_matrix counts, without importing scikit-learn to draw a plot."""
    cells = _labels(y_true) * n_classes + _labels(y_pred)
    return np.bincount(cells, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification(y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray,
                   class_names: list[str], positive: int = 1) -> dict:
    """Accuracy, precision/recall/F1 (two classes: of class `positive`), ROC-AUC, log loss, confusion matrix and a
    per-class table."""
    from sklearn import metrics as skm

    y_true, y_pred = _labels(y_true), _labels(y_pred)
    labels = list(range(len(class_names)))
    full = _full_probabilities(probabilities)
    notes: list[str] = []
    result = {"accuracy": skm.accuracy_score(y_true, y_pred)}
    if len(class_names) == 2:
        result["positive_class"] = class_names[positive]  # precision, recall and F1 are about this class
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            result[name] = fn(y_true, y_pred, pos_label=positive, average="binary", zero_division=0)
        result["roc_auc"] = _roc_auc(lambda: skm.roc_auc_score(y_true == positive, full[:, positive]), notes)
    else:
        for average in ("macro", "weighted"):
            p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                            zero_division=0)
            result.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
        result["roc_auc_ovr"] = _roc_auc(
            lambda: skm.roc_auc_score(y_true, full, multi_class="ovr", average="macro", labels=labels), notes)
    result["log_loss"] = skm.log_loss(y_true, full, labels=labels)
    p, r, f, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = [
        {"class": name, "precision": p[i], "recall": r[i], "f1": f[i], "support": int(support[i])}
        for i, name in enumerate(class_names)
    ]
    counts = confusion(y_true, y_pred, len(class_names))
    return {
        "metrics": _plain(result),
        "per_class": _plain(per_class),
        "confusion_matrix": {"labels": list(class_names), "counts": counts.tolist()},  # rows true, columns predicted
        "notes": notes,
    }


def thresholded(probabilities: np.ndarray, positive: int, threshold: float) -> np.ndarray:
    """Two classes: the positive class where its probability reaches `threshold`, the other class elsewhere."""
    p = _full_probabilities(probabilities)[:, positive]
    return np.where(p >= threshold, positive, 1 - positive)


def best_f1_threshold(y_true: np.ndarray, probabilities: np.ndarray, positive: int) -> tuple[float, float] | None:
    """(threshold, F1) with the highest F1 of the positive class over every cut between the rows' probabilities
    (None without both classes)."""
    y = _labels(y_true) == positive
    if y.all() or not y.any():
        return None
    p = _full_probabilities(probabilities)[:, positive]
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[order])  # true positives when the threshold admits the k highest rows
    k = np.arange(1, len(p) + 1)
    f1 = 2 * hits / (k + y.sum())
    last_of_tie = np.r_[p[order][1:] != p[order][:-1], True]  # a threshold cannot split equal probabilities
    best = int(np.argmax(np.where(last_of_tie, f1, -1)))
    return float(p[order][best]), float(f1[best])


def label_confusions(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Multi-label: [L, 2, 2] counts, one [[TN, FP], [FN, TP]] per label (sklearn's multilabel_confusion_matrix)."""
    Y, P = _indicators(y_true), _indicators(y_pred)
    cells = np.stack([(1 - Y) * (1 - P), (1 - Y) * P, Y * (1 - P), Y * P]).sum(axis=1)  # [4, L]
    return cells.T.reshape(-1, 2, 2)


def multilabel(y_true: np.ndarray, y_pred: np.ndarray, probabilities: np.ndarray, label_names: list[str]) -> dict:
    """Subset accuracy, Hamming loss, micro/macro/per-sample precision, recall and F1, ROC-AUC, a per-label table."""
    from sklearn import metrics as skm

    Y, P = _indicators(y_true), _indicators(y_pred)
    notes: list[str] = []
    result = {"subset_accuracy": skm.accuracy_score(Y, P), "hamming_loss": skm.hamming_loss(Y, P)}
    for average in ("micro", "macro", "samples"):
        p, r, f, _ = skm.precision_recall_fscore_support(Y, P, average=average, zero_division=0)
        result.update({f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f})
    probs = np.asarray(probabilities, dtype=np.float64)
    result["roc_auc_macro"] = _roc_auc(lambda: skm.roc_auc_score(Y, probs, average="macro"), notes)
    p, r, f, support = skm.precision_recall_fscore_support(Y, P, average=None, zero_division=0)
    per_label = [{"class": name, "precision": p[i], "recall": r[i], "f1": f[i], "support": int(support[i])}
                 for i, name in enumerate(label_names)]
    matrices = label_confusions(Y, P)
    return {
        "metrics": _plain(result),
        "per_class": _plain(per_label),
        # per label [[TN, FP], [FN, TP]]: rows true no/yes, columns predicted no/yes
        "confusion_matrix": {"labels": list(label_names), "per_label": matrices.tolist()},
        "notes": notes,
    }


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    notes = []
    result = {"mae": skm.mean_absolute_error(y_true, y_pred), "mse": skm.mean_squared_error(y_true, y_pred)}
    if len(y_true) < 2:
        result["r2"] = None
        notes.append("r2: undefined for fewer than two rows")
    else:
        result["r2"] = skm.r2_score(y_true, y_pred)
    return {"metrics": _plain(result), "notes": notes}


def _labels(y: np.ndarray) -> np.ndarray:
    """Class indices as int [N], whatever the task's target layout (binary: float [N, 1])."""
    return np.asarray(y).reshape(len(y), -1)[:, 0].astype(np.int64)


def _indicators(y: np.ndarray) -> np.ndarray:
    """Multi-label targets or predictions as a 0/1 int matrix [N, L]."""
    return (np.asarray(y) >= 0.5).astype(np.int64)


def _full_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """[N, C] float64 rows summing to 1 (binary [N, 1] -> [1 - p, p]).

    float32 softmax rows sum to 1 only within ~1e-7; sklearn's log_loss insists on
    float64 precision, so rows are renormalised in float64 first.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape[1] == 1:
        p = np.column_stack([1.0 - p[:, 0], p[:, 0]])
    return p / p.sum(axis=1, keepdims=True)


def _roc_auc(compute, notes: list[str]) -> float | None:
    """ROC-AUC needs every class among the true labels; otherwise None and a note why."""
    from sklearn.exceptions import UndefinedMetricWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UndefinedMetricWarning)
            return compute()
    except (ValueError, UndefinedMetricWarning) as exc:
        notes.append(f"ROC-AUC undefined: {str(exc).splitlines()[0]}")
        return None


def _plain(value):
    """numpy scalars -> float/int, NaN/inf -> None (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
