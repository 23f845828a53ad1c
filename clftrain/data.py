"""Datasets: generate or load features and targets, split them, scale them.

Everything here is numpy; tensors are made once, in train.py, on the target
device. `dataset.seed` seeds both the generator and the split, so the same
config always yields the same train/test rows (eval and plot rely on it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from clftrain.config import Config
from clftrain.errors import UserError
from clftrain.registry import Registry
from clftrain.tasks import Task, get_task


@dataclass
class RawData:
    """What a dataset builder returns: all rows, before splitting."""

    X: np.ndarray  # [N, F] float
    y: np.ndarray  # [N] class indices (int) or regression targets (float)
    feature_names: list[str]
    class_names: list[str] = field(default_factory=list)  # index -> name; [] for regression


@dataclass
class Scaler:
    """Standardisation fitted on the training split: x' = (x - mean) / std."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        std = X.std(axis=0)
        return cls(mean=X.mean(axis=0), std=np.where(std > 0, std, 1.0))  # constant column: leave it

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(mean=np.asarray(d["mean"], dtype=np.float64), std=np.asarray(d["std"], dtype=np.float64))


@dataclass
class Dataset:
    """Split, scaled data ready for training: float32 features, targets as the task wants them."""

    task: Task
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    scaler: Scaler | None = None
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


DATASETS: Registry[Callable[..., RawData]] = Registry("dataset")


@DATASETS.register("circles")
def _circles(cfg) -> RawData:
    from sklearn.datasets import make_circles

    X, y = make_circles(cfg.n_samples, noise=cfg.noise, factor=cfg.factor, random_state=cfg.seed)
    return RawData(X, y, ["x1", "x2"], ["0", "1"])


@DATASETS.register("moons")
def _moons(cfg) -> RawData:
    from sklearn.datasets import make_moons

    X, y = make_moons(cfg.n_samples, noise=cfg.noise, random_state=cfg.seed)
    return RawData(X, y, ["x1", "x2"], ["0", "1"])


@DATASETS.register("blobs")
def _blobs(cfg) -> RawData:
    from sklearn.datasets import make_blobs

    X, y = make_blobs(
        cfg.n_samples, n_features=cfg.n_features, centers=cfg.centers,
        cluster_std=cfg.cluster_std, random_state=cfg.seed,
    )
    return RawData(X, y, _numbered("x", cfg.n_features), _numbered("", cfg.centers))


@DATASETS.register("spirals")
def _spirals(cfg) -> RawData:
    """The CS231n generator: class k's arm sweeps 4 radians, radius growing from 0 to 1."""
    rng = np.random.default_rng(cfg.seed)
    # n_samples in total, spread as evenly as possible over the arms.
    per_class = np.diff(np.linspace(0, cfg.n_samples, cfg.n_classes + 1).round().astype(int))
    X, y = [], []
    for k, n in enumerate(per_class):
        radius = np.linspace(0.0, 1.0, n)
        theta = np.linspace(k * 4, (k + 1) * 4, n) + rng.standard_normal(n) * cfg.noise
        X.append(np.column_stack([radius * np.sin(theta), radius * np.cos(theta)]))
        y.append(np.full(n, k))
    return RawData(np.concatenate(X), np.concatenate(y), ["x1", "x2"], _numbered("", cfg.n_classes))


@DATASETS.register("classification")
def _classification(cfg) -> RawData:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        cfg.n_samples, n_features=cfg.n_features, n_informative=cfg.n_informative,
        n_redundant=cfg.n_redundant, n_classes=cfg.n_classes,
        n_clusters_per_class=cfg.n_clusters_per_class, class_sep=cfg.class_sep, random_state=cfg.seed,
    )
    return RawData(X, y, _numbered("x", cfg.n_features), _numbered("", cfg.n_classes))


@DATASETS.register("linear")
def _linear(cfg) -> RawData:
    """y = weight * x + bias on x = 0, 1/n, ..., (n-1)/n (the tutorial: 0 to 1 in steps of 0.02)."""
    rng = np.random.default_rng(cfg.seed)
    X = np.arange(cfg.n_samples, dtype=np.float64).reshape(-1, 1) / cfg.n_samples
    y = cfg.weight * X[:, 0] + cfg.bias + rng.standard_normal(cfg.n_samples) * cfg.noise
    return RawData(X, y, ["x"])


@DATASETS.register("multilabel")
def _multilabel(cfg) -> RawData:
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(
        cfg.n_samples, n_features=cfg.n_features, n_classes=cfg.n_classes, n_labels=cfg.n_labels,
        allow_unlabeled=False, random_state=cfg.seed,
    )
    return RawData(X, Y, _numbered("x", cfg.n_features), _numbered("label", cfg.n_classes))


def _bundled(loader_name: str) -> Callable[..., RawData]:
    """scikit-learn's bundled real datasets, with their real feature and class names."""

    def load(cfg) -> RawData:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, loader_name)()
        features = [str(name) for name in getattr(bunch, "feature_names", [])] or _numbered("x", bunch.data.shape[1])
        return RawData(bunch.data, bunch.target, features, [str(name) for name in bunch.target_names])

    return load


for _name, _loader in {"iris": "load_iris", "wine": "load_wine", "breast_cancer": "load_breast_cancer",
                       "digits": "load_digits"}.items():
    DATASETS.register(_name)(_bundled(_loader))


def _numbered(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" if prefix else str(i) for i in range(n)]


def build_dataset(config: Config) -> Dataset:
    """Generate or load the data, split it (stratified for classes) and scale it."""
    raw = DATASETS.get(config.dataset.name)(config.dataset)
    task = get_task(config.task)
    parts = _split(raw, config, stratify=task.name in ("binary", "multiclass"))
    scaler = Scaler.fit(parts["train"][0]) if config.dataset.standardize else None

    def features(X):
        return scaler.transform(X) if scaler else X.astype(np.float32)

    def split(name):
        if name not in parts:
            return None, None
        X, y = parts[name]
        return features(X), task.prepare_targets(y)

    X_train, y_train = split("train")
    X_test, y_test = split("test")
    X_val, y_val = split("val")
    return Dataset(
        task=task, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        feature_names=raw.feature_names, class_names=raw.class_names, scaler=scaler,
        X_val=X_val, y_val=y_val,
    )


def _split(raw: RawData, config: Config, stratify: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """train / test (/ val) rows, drawn with dataset.seed."""
    from sklearn.model_selection import train_test_split

    cfg = config.dataset
    try:
        X_rest, X_test, y_rest, y_test = train_test_split(
            raw.X, raw.y, test_size=cfg.test_size, random_state=cfg.seed,
            stratify=raw.y if stratify else None,
        )
        parts = {"test": (X_test, y_test)}
        if cfg.val_size > 0:
            # val_size is a fraction of all rows; rescale it to a fraction of what is left.
            X_rest, X_val, y_rest, y_val = train_test_split(
                X_rest, y_rest, test_size=cfg.val_size / (1 - cfg.test_size), random_state=cfg.seed,
                stratify=y_rest if stratify else None,
            )
            parts["val"] = (X_val, y_val)
    except ValueError as exc:
        raise UserError(
            f"cannot split dataset '{cfg.name}' ({len(raw.y)} rows) with test_size={cfg.test_size:g}, "
            f"val_size={cfg.val_size:g}: {exc}; use more samples or larger fractions"
        ) from None
    parts["train"] = (X_rest, y_rest)
    return parts
