"""Where a dataset's rows come from: the generators (circles, moons, blobs, spirals, ...), scikit-learn's
bundled tables, and the user's CSV file, each registered under the name `dataset.name` gives.

Every source returns all its rows (RawData); splitting and preprocessing are build.py's.
`dataset.seed` seeds the generators, so the same config always yields the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clftrain.data.tabular import load_csv
from clftrain.data.types import RawData
from clftrain.registry import Registry

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


DATASETS.register("csv")(load_csv)


def _numbered(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" if prefix else str(i) for i in range(n)]
