"""Datasets: generate or load features and targets, split them, preprocess them.

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
from clftrain.features import Columns, Preprocessor
from clftrain.registry import Registry
from clftrain.tasks import Task, get_task


@dataclass
class RawData:
    """What a dataset builder returns: all rows, before splitting."""

    X: np.ndarray | Columns  # [N, F] numbers, or raw columns by name (CSV: may hold text and gaps)
    y: np.ndarray  # [N] class indices, [N, L] 0/1 labels, or [N] regression targets
    feature_names: list[str]
    class_names: list[str] = field(default_factory=list)  # index -> name; [] for regression
    categorical: list[str] = field(default_factory=list)  # columns to one-hot encode
    task: str | None = None  # what the targets imply, when only the data can tell (CSV)


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


@DATASETS.register("csv")
def _csv(cfg) -> RawData:
    from clftrain.tabular import load_csv  # imported here: tabular builds on this module

    return load_csv(cfg)


def _numbered(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" if prefix else str(i) for i in range(n)]


def build_dataset(config: Config) -> Dataset:
    """Generate or load the data, split it (stratified for classes) and preprocess it."""
    cfg = config.dataset
    raw = DATASETS.get(cfg.name)(cfg)
    task = get_task(_task_name(config, raw))
    parts = _split(raw, config, stratify=task.name in ("binary", "multiclass"))
    # Numeric arrays are split as one matrix (no per-column copies); tables as columns.
    source = raw.X
    numeric = [name for name in raw.feature_names if name not in raw.categorical]
    pre = Preprocessor.fit(_rows(source, parts["train"]), numeric, raw.categorical,
                           getattr(cfg, "impute", None), cfg.standardize)

    def split(name):
        if name not in parts:
            return None, None
        rows = parts[name]
        return pre.transform(_rows(source, rows)), task.prepare_targets(raw.y[rows])

    (X_train, y_train), (X_test, y_test), (X_val, y_val) = split("train"), split("test"), split("val")
    return Dataset(task=task, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                   feature_names=pre.feature_names, class_names=raw.class_names, preprocessor=pre,
                   X_val=X_val, y_val=y_val)


def _task_name(config: Config, raw: RawData) -> str:
    """The config's task, or the one the targets imply; an explicit task must fit the targets."""
    if raw.task is None or config.task == raw.task:
        return config.task
    if config.task == "auto":
        return raw.task
    if {config.task, raw.task} == {"binary", "multiclass"}:
        return config.task  # two classes can be trained as a 2-way softmax, and vice versa
    raise UserError(f"task = '{config.task}' does not fit the targets of {getattr(config.dataset, 'path', config.dataset.name)} "
                    f"(they make a {raw.task} task); use task: auto or {raw.task}")


def _rows(source: np.ndarray | Columns, rows: np.ndarray) -> np.ndarray | Columns:
    if isinstance(source, np.ndarray):
        return source[rows]
    return {name: values[rows] for name, values in source.items()}


def _split(raw: RawData, config: Config, stratify: bool) -> dict[str, np.ndarray]:
    """Row indices of train / test (/ val), drawn with dataset.seed."""
    from sklearn.model_selection import train_test_split

    cfg = config.dataset
    rows = np.arange(len(raw.y))
    try:
        rest, test = train_test_split(rows, test_size=cfg.test_size, random_state=cfg.seed,
                                      stratify=raw.y if stratify else None)
        parts = {"test": test}
        if cfg.val_size > 0:
            # val_size is a fraction of all rows; rescale it to a fraction of what is left.
            rest, val = train_test_split(rest, test_size=cfg.val_size / (1 - cfg.test_size), random_state=cfg.seed,
                                         stratify=raw.y[rest] if stratify else None)
            parts["val"] = val
    except ValueError as exc:
        raise UserError(
            f"cannot split dataset '{cfg.name}' ({len(raw.y)} rows) with test_size={cfg.test_size:g}, "
            f"val_size={cfg.val_size:g}: {exc}; use more samples or larger fractions"
        ) from None
    parts["train"] = rest
    return parts
