"""Drawing the train / validation / test rows of a dataset, stratified by class where the task has classes.

The draws are scikit-learn's train_test_split (ShuffleSplit, StratifiedShuffleSplit), step for step on
the same numpy RandomState, so every split (and every lesson's tested result) is the one it always
was; tests/test_data.py holds the two to equality over many sizes, seeds and class counts. Doing it here
saves `clftrain fit` the second it takes to import scikit-learn's model_selection.
"""

from __future__ import annotations

import math

import numpy as np


class SplitError(ValueError):
    """The rows cannot be split as asked (a class too small, a fraction that leaves a split empty)."""


def train_test_rows(rows: np.ndarray, test_size: float, seed: int, labels: np.ndarray | None = None):
    """(train rows, test rows) of `rows`; `labels` (one per row): keep each class's share in both."""
    n = len(rows)
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise SplitError(f"test_size={test_size:g} of {n} rows leaves {'no training' if n_train <= 0 else 'no test'} rows")
    rng = np.random.RandomState(seed)
    if labels is None:
        permutation = rng.permutation(n)
        return rows[permutation[n_test:]], rows[permutation[:n_test]]
    train, test = _stratified(labels, n_train, n_test, rng)
    return rows[train], rows[test]


def _stratified(labels: np.ndarray, n_train: int, n_test: int, rng: np.random.RandomState):
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if counts.min() < 2:
        raise SplitError(f"class(es) {classes[counts < 2].tolist()} have a single row: each class needs at "
                         "least 2 to be split")
    if n_train < len(classes) or n_test < len(classes):
        which, size = ("train", n_train) if n_train < len(classes) else ("test", n_test)
        raise SplitError(f"the {which} split would have {size} rows for {len(classes)} classes")
    by_class = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1])
    train_counts = _approximate_mode(counts, n_train, rng)
    test_counts = _approximate_mode(counts - train_counts, n_test, rng)
    train, test = [], []
    for indices, count, n_tr, n_te in zip(by_class, counts, train_counts, test_counts):
        shuffled = indices.take(rng.permutation(count), mode="clip")
        train.extend(shuffled[:n_tr])
        test.extend(shuffled[n_tr : n_tr + n_te])
    return rng.permutation(train), rng.permutation(test)


def _approximate_mode(counts: np.ndarray, draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `draws` rows each class gets: its share, floored, then the remaining rows to the classes
    with the largest remainders (ties broken at random)."""
    continuous = counts / counts.sum() * draws
    floored = np.floor(continuous)
    need = int(draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (tied,) = np.where(remainder == value)
            now = min(len(tied), need)
            floored[rng.choice(tied, size=now, replace=False)] += 1
            need -= now
            if need == 0:
                break
    return floored.astype(int)
