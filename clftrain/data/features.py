"""Raw columns -> model inputs: imputation, one-hot encoding, scaling of the numeric columns, fitted on training
rows only.

A `Preprocessor` is fitted once on the training split and saved (as plain data)
in every checkpoint, so `predict` and `eval --data` turn a user's CSV into
exactly the features the model was trained on, without the training data.

The numeric columns are scaled by `dataset.numeric_transform` (NUMERIC_TRANSFORMS):
- standard: (x - mean) / std.
- robust_clip: RealMLP's preprocessing (Holzmueller et al., NeurIPS 2024, "Better by Default"): centred on the
  median, divided by the interquartile range (half the range where the quartiles coincide), then smoothly
  clipped, z / sqrt(1 + (z / 3)^2), so that an outlier lands near +-3 instead of far out.
- quantile: each column through its training quantiles onto a standard normal (as the TabM paper, Gorishniy et
  al., ICLR 2025, preprocesses numbers for its plain MLPs): a piecewise-linear map between at most
  QUANTILE_KNOTS knots, flat beyond the training range.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUMERIC_TRANSFORMS = ("standard", "robust_clip", "quantile")
CLIP_BOUND = 3.0  # robust_clip: z / sqrt(1 + (z / CLIP_BOUND)^2) never leaves (-3, 3)
QUANTILE_KNOTS = 128  # quantile: knots per column (fewer where a column has fewer distinct training values)
NORMAL_TAIL = 1e-7  # quantile: the first and last knots map to the normal quantiles of NORMAL_TAIL and 1 - NORMAL_TAIL

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
    # Scaling of the numeric columns (None: not scaled): x -> (x - mean) / std, then numeric_transform's squashing.
    # standard: mean and standard deviation; robust_clip: median and interquartile range, then smooth clipping.
    mean: list[float] | None = None
    std: list[float] | None = None
    numeric_transform: str = "standard"  # NUMERIC_TRANSFORMS; checkpoints from before the key hold standard
    # quantile: per numeric column, increasing knots of the raw values and the normal scores they map to.
    knots: list[list[float]] | None = None
    scores: list[list[float]] | None = None

    @property
    def input_columns(self) -> list[str]:
        """The raw columns a table must have."""
        return self.numeric + list(self.categorical)

    @property
    def feature_names(self) -> list[str]:
        """Model input names: numeric columns, then one per category as `column=category`."""
        return self.numeric + [f"{col}={cat}" for col, cats in self.categorical.items() for cat in cats]

    @property
    def scaled(self) -> bool:
        """Whether the numeric columns are transformed at all."""
        return self.mean is not None or self.knots is not None

    @classmethod
    def fit(cls, train: Table, numeric: list[str], categorical: list[str], impute: str | None,
            standardize: bool, transform: str = "standard") -> Preprocessor:
        fill = _fill_values(train, numeric, categorical, impute) if impute else {}
        categories = {col: sorted({str(v) for v in train[col] if v is not None} | _as_set(fill.get(col)))
                      for col in categorical}
        pre = cls(numeric=list(numeric), categorical=categories, fill=fill)
        if standardize and numeric:
            X = pre._numeric_matrix(train, np.float64)
            pre.numeric_transform = transform
            if transform == "standard":
                pre.mean, pre.std = _column_statistics(X)
            elif transform == "robust_clip":
                pre.mean, pre.std = _robust_statistics(X)
            elif transform == "quantile":
                pre.knots, pre.scores = _quantile_knots(X)
            else:
                raise ValueError(f"unknown numeric transform {transform!r}; one of {', '.join(NUMERIC_TRANSFORMS)}")
        return pre

    def transform(self, table: Table) -> np.ndarray:
        """float32 [N, len(feature_names)]; a NotFinite error (which column, which row) where a value is too large
        for float32 even after scaling."""
        scaled = self.scaled and self._needs_float64(table)
        X = self._numeric_matrix(table, np.float64 if scaled else np.float32)
        if self.mean is not None:  # in place: no second copy of a large table
            X -= np.asarray(self.mean, dtype=X.dtype)
            X /= np.asarray(self.std, dtype=X.dtype)
            if self.numeric_transform == "robust_clip":
                X /= np.hypot(1, X / CLIP_BOUND)  # hypot: no overflow for huge z; inf becomes NaN, named below
        if self.knots is not None:
            for j, (knots, scores) in enumerate(zip(self.knots, self.scores)):
                finite = np.isfinite(X[:, j])  # NaN and inf stay as they are: _check_finite names them
                X[finite, j] = np.interp(X[finite, j], knots, scores)
        if scaled:
            with np.errstate(over="ignore"):  # what still does not fit becomes inf: _check_finite names it
                X = X.astype(np.float32)
        _check_finite(X, self.numeric)
        if self.categorical:
            X = np.concatenate([X, self._one_hot(table).astype(np.float32)], axis=1)
        return X

    def _needs_float64(self, table: Table) -> bool:
        """Whether some value of the numeric columns, or their mean or spread, is beyond what float32 holds:
        then the columns are scaled in float64."""
        limit = float(np.finfo(np.float32).max)
        if self.mean is not None and (max(map(abs, self.mean)) > limit or max(self.std) > limit):
            return True
        if self.knots is not None and any(max(abs(k[0]), abs(k[-1])) > limit for k in self.knots):
            return True
        if isinstance(table, np.ndarray):
            return table.dtype != np.float32 and bool(np.any(np.abs(table) > limit))
        return any(np.nanmax(np.abs(np.asarray(table[c], dtype=np.float64)), initial=0.0) > limit
                   for c in self.numeric)

    def _numeric_matrix(self, table: Table, dtype=np.float32) -> np.ndarray:
        """A fresh [N, len(numeric)] matrix with missing values filled."""
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: _check_finite names it
            if isinstance(table, np.ndarray):
                X = table.astype(dtype, copy=True)
            elif self.numeric:
                X = np.column_stack([table[c] for c in self.numeric]).astype(dtype)
            else:
                X = np.empty((len(next(iter(table.values()))), 0), dtype=dtype)
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
        data = {"numeric": self.numeric, "categorical": self.categorical, "fill": self.fill,
                "mean": self.mean, "std": self.std}
        if self.numeric_transform != "standard":  # a standard one saves what it always saved
            data.update(numeric_transform=self.numeric_transform, knots=self.knots, scores=self.scores)
        return data

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessor:
        """From to_dict's data, or a checkpoint's of before numeric transforms (standard)."""
        return cls(list(d["numeric"]), dict(d.get("categorical") or {}), dict(d.get("fill") or {}),
                   d.get("mean"), d.get("std"), d.get("numeric_transform") or "standard", d.get("knots"), d.get("scores"))


class NotFinite(ValueError):
    """A value that is not finite in float32 after preprocessing: `column`, and `row` (0-based) of the table."""

    def __init__(self, column: str, row: int) -> None:
        super().__init__(f"column '{column}', row {row + 1}")
        self.column, self.row = column, row


def _check_finite(X: np.ndarray, columns: list[str]) -> None:
    bad = ~np.isfinite(X)
    if bad.any():
        row, j = map(int, np.argwhere(bad)[0])
        raise NotFinite(columns[j], row)


# Beyond this magnitude a value's square overflows float64: statistics are then computed on scaled columns.
_SQUARE_SAFE = 1e150


def _column_statistics(X: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-column mean and standard deviation in float64 (a float32 sum over a million rows loses digits); a
    column holding huge values (1e308) is divided by its largest magnitude first, so its square never
    overflows. A constant column keeps std 1."""
    peak = np.abs(X).max(axis=0) if len(X) else np.zeros(X.shape[1])
    if np.all(peak < _SQUARE_SAFE):
        mean, std = X.mean(axis=0), X.std(axis=0)
    else:
        scale = np.where((peak > 0) & np.isfinite(peak), peak, 1.0)
        unit = X / scale
        mean, std = unit.mean(axis=0) * scale, unit.std(axis=0) * scale
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def _robust_statistics(X: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-column median and spread for robust_clip: the interquartile range; where the quartiles coincide (a
    column mostly of one value), half the range; 1 for a constant column (which then scales to 0)."""
    if not len(X):
        return [0.0] * X.shape[1], [1.0] * X.shape[1]
    low, median, high = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
    spread = high - low
    half_range = (X.max(axis=0) - X.min(axis=0)) / 2
    spread = np.where(spread > 0, spread, half_range)
    return median.tolist(), np.where(np.isfinite(spread) & (spread > 0), spread, 1.0).tolist()


def _quantile_knots(X: np.ndarray) -> tuple[list[list[float]], list[list[float]]]:
    """Per column: up to QUANTILE_KNOTS training quantiles (evenly spaced levels) as increasing knots, and the
    standard normal scores of their levels. Knots that coincide (a column of few values) become one, whose score
    is the mean of theirs; a constant column maps to 0."""
    from scipy.special import ndtri

    levels = np.linspace(0.0, 1.0, max(2, min(QUANTILE_KNOTS, len(X))))
    normal = ndtri(np.clip(levels, NORMAL_TAIL, 1 - NORMAL_TAIL))
    knots, scores = [], []
    for j in range(X.shape[1]):
        if not len(X):
            knots.append([0.0]), scores.append([0.0])
            continue
        values, groups = np.unique(np.quantile(X[:, j], levels), return_inverse=True)
        mean_scores = np.bincount(groups, weights=normal) / np.bincount(groups)
        if len(values) == 1:
            mean_scores = np.zeros(1)
        knots.append(values.tolist())
        scores.append(mean_scores.tolist())
    return knots, scores


def _as_set(value) -> set[str]:
    return {str(value)} if isinstance(value, str) else set()


def _fill_values(train: Columns, numeric: list[str], categorical: list[str], strategy: str) -> dict:
    """Per-column fill values from the training rows, via scikit-learn's SimpleImputer."""
    from sklearn.impute import SimpleImputer

    fill: dict[str, float | str] = {}
    if numeric:
        X = train.astype(np.float64) if isinstance(train, np.ndarray) else \
            np.column_stack([train[c] for c in numeric]).astype(np.float64)
        imputer = SimpleImputer(strategy=strategy, keep_empty_features=True).fit(X)
        fill.update({c: float(v) for c, v in zip(numeric, imputer.statistics_)})
    for col in categorical:  # a mean of categories is meaningless: categories take the most frequent
        values = np.array([[np.nan if v is None else v] for v in train[col]], dtype=object)
        imputer = SimpleImputer(strategy="most_frequent", missing_values=np.nan).fit(values)
        fill[col] = str(imputer.statistics_[0])
    return fill
