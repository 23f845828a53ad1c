"""Raw columns -> model inputs: imputation, one-hot encoding, standardisation, fitted on training rows only.

A `Preprocessor` is fitted once on the training split and saved (as plain data)
in every checkpoint, so `predict` and `eval --data` turn a user's CSV into
exactly the features the model was trained on, without the training data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Raw columns by name: float arrays (NaN = missing) for numeric columns, object arrays
# of str (None = missing) for categorical ones. An all-numeric table may come as one
# [N, F] matrix whose columns are `numeric` in order (no per-column copies).
Columns = dict[str, np.ndarray]
Table = Columns | np.ndarray


@dataclass
class Preprocessor:
    numeric: list[str]  # numeric input columns, in model order
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> categories seen in training
    fill: dict[str, float | str] = field(default_factory=dict)  # column -> value imputed for a missing cell
    mean: list[float] | None = None  # standardisation of the numeric columns (None: not standardised)
    std: list[float] | None = None

    @property
    def input_columns(self) -> list[str]:
        """The raw columns a table must have."""
        return self.numeric + list(self.categorical)

    @property
    def feature_names(self) -> list[str]:
        """Model input names: numeric columns, then one per category as `column=category`."""
        return self.numeric + [f"{col}={cat}" for col, cats in self.categorical.items() for cat in cats]

    @classmethod
    def fit(cls, train: Table, numeric: list[str], categorical: list[str], impute: str | None,
            standardize: bool) -> Preprocessor:
        fill = _fill_values(train, numeric, categorical, impute) if impute else {}
        categories = {col: sorted({str(v) for v in train[col] if v is not None} | _as_set(fill.get(col)))
                      for col in categorical}
        pre = cls(numeric=list(numeric), categorical=categories, fill=fill)
        if standardize and numeric:
            X = pre._numeric_matrix(train)
            # float64 statistics: a float32 sum over a million rows loses digits
            mean, std = X.mean(axis=0, dtype=np.float64), X.std(axis=0, dtype=np.float64)
            pre.mean, pre.std = mean.tolist(), np.where(std > 0, std, 1.0).tolist()  # constant column: keep
        return pre

    def transform(self, table: Table) -> np.ndarray:
        """float32 [N, len(feature_names)]."""
        X = self._numeric_matrix(table)
        if self.mean is not None:  # in place: no second copy of a large table
            X -= np.asarray(self.mean, dtype=np.float32)
            X /= np.asarray(self.std, dtype=np.float32)
        if self.categorical:
            X = np.concatenate([X, self._one_hot(table).astype(np.float32)], axis=1)
        return X

    def _numeric_matrix(self, table: Table) -> np.ndarray:
        """A fresh float32 [N, len(numeric)] matrix with missing values filled."""
        if isinstance(table, np.ndarray):
            X = table.astype(np.float32, copy=True)
        elif self.numeric:
            X = np.column_stack([table[c] for c in self.numeric]).astype(np.float32)
        else:
            X = np.empty((len(next(iter(table.values()))), 0), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            if col in self.fill:
                X[np.isnan(X[:, j]), j] = self.fill[col]
        return X

    def _one_hot(self, columns: Columns) -> np.ndarray:
        from sklearn.preprocessing import OneHotEncoder

        names = list(self.categorical)
        raw = np.column_stack([
            np.array([self.fill.get(col, "") if v is None else str(v) for v in columns[col]], dtype=object)
            for col in names
        ])
        # Built from the saved categories (no refit): a category unseen in training encodes as all zeros.
        encoder = OneHotEncoder(categories=[self.categorical[c] for c in names], handle_unknown="ignore",
                                sparse_output=False)
        return encoder.fit(raw[:1]).transform(raw)

    def to_dict(self) -> dict:
        return {"numeric": self.numeric, "categorical": self.categorical, "fill": self.fill,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessor:
        return cls(list(d["numeric"]), dict(d.get("categorical") or {}), dict(d.get("fill") or {}),
                   d.get("mean"), d.get("std"))


def _as_set(value) -> set[str]:
    return {str(value)} if isinstance(value, str) else set()


def _fill_values(train: Columns, numeric: list[str], categorical: list[str], strategy: str) -> dict:
    """Per-column fill values from the training rows, via scikit-learn's SimpleImputer."""
    from sklearn.impute import SimpleImputer

    fill: dict[str, float | str] = {}
    if numeric:
        X = np.column_stack([train[c] for c in numeric]).astype(np.float64)
        imputer = SimpleImputer(strategy=strategy, keep_empty_features=True).fit(X)
        fill.update({c: float(v) for c, v in zip(numeric, imputer.statistics_)})
    for col in categorical:  # a mean of categories is meaningless: categories take the most frequent
        values = np.array([[np.nan if v is None else v] for v in train[col]], dtype=object)
        imputer = SimpleImputer(strategy="most_frequent", missing_values=np.nan).fit(values)
        fill[col] = str(imputer.statistics_[0])
    return fill
