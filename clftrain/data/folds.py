"""Cross-validation folds (`dataset.cv_folds: K`): the training rows dealt into K folds, stratified by class.

Fold k's rows are the validation rows of replica k, which trains on the other K-1 folds (training/setup.py
puts them on the device; training/replica_trainer.py trains and scores every fold's replica in one batched
model). The folds are scikit-learn's StratifiedKFold (KFold where rows have no single class: multi-label and
regression), shuffled with dataset.seed, so a fold plan is the same on every machine and in `eval`.
"""

from __future__ import annotations

import numpy as np

from clftrain.errors import UserError


def fold_rows(targets: np.ndarray, folds: int, seed: int, stratify: bool, class_names: list[str]) -> list[np.ndarray]:
    """Each fold's rows (positions in `targets`, sorted): disjoint, together every row once."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(targets)
    if folds > n:
        raise UserError(f"dataset.cv_folds = {folds}: the training rows are {n}, fewer than the folds; "
                        f"use at most {n} folds")
    if stratify:
        classes, counts = np.unique(targets, return_counts=True)
        smallest = int(counts.argmin())
        if counts[smallest] < folds:
            name = class_names[int(classes[smallest])] if class_names else str(classes[smallest])
            raise UserError(f"dataset.cv_folds = {folds}: class '{name}' has {int(counts[smallest])} training "
                            f"row(s), fewer than the folds, so some fold would not hold it; use at most "
                            f"{int(counts[smallest])} folds (--cv {max(2, int(counts[smallest]))}), or more data")
        dealer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        dealer = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [np.sort(held_out) for _, held_out in dealer.split(np.zeros((n, 1)), targets if stratify else None)]
