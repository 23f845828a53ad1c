"""The data types every stage passes on: raw rows from a source, and the split, preprocessed dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clftrain.components.tasks import Task
from clftrain.data.features import Columns, Preprocessor
from clftrain.data.streamed import StreamedTable


@dataclass
class RawData:
    """What a dataset builder returns: all rows, before splitting."""

    X: np.ndarray | Columns  # [N, F] numbers, or raw columns by name (CSV: may hold text and gaps)
    y: np.ndarray  # [N] class indices, [N, L] 0/1 labels, or [N] regression targets
    feature_names: list[str]
    class_names: list[str] = field(default_factory=list)  # index -> name; [] for regression
    categorical: list[str] = field(default_factory=list)  # columns to one-hot encode
    task: str | None = None  # what the targets imply, when only the data can tell (CSV)
    notes: list[str] = field(default_factory=list)  # what the source decided for the user (columns left out)


@dataclass
class Dataset:
    """Split, preprocessed data ready for training: float32 features, targets as the task wants them."""

    task: Task
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]  # model inputs (after one-hot encoding)
    class_names: list[str]
    preprocessor: Preprocessor
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # said to the user (columns the source left out)
    # A streamed table (streamed.py): the splits' rows are read from it block by block, and X_*/y_* hold only a
    # sample of each split (at most about streamed.VIEW_ROWS rows) for the plots and the report.
    stream: StreamedTable | None = None
    # dataset.cv_folds: each fold's rows of X_train (data/folds.py). There is no val split: fold k's replica is
    # validated on fold k and trains on the others.
    folds: list[np.ndarray] | None = None

    def rows(self, split: str) -> int:
        """The split's rows (all of them, also when streamed); 0 for a split the dataset does not have.
        Cross-validated: a fold's (the smallest one's training rows for "train", its validation rows for "val")."""
        if self.stream is not None:
            return self.stream.sizes.get(split, 0)
        if self.folds is not None and split in ("train", "val"):
            sizes = [len(fold) for fold in self.folds]
            return len(self.X_train) - max(sizes) if split == "train" else min(sizes)
        X = {"train": self.X_train, "val": self.X_val, "test": self.X_test}[split]
        return 0 if X is None else len(X)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)
