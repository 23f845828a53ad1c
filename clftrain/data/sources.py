"""Where a dataset's rows come from: the generators (circles, moons, blobs, spirals, ...), scikit-learn's
bundled tables, and the user's CSV file, each registered under the name `dataset.name` gives.

Every source returns all its rows (RawData); splitting and preprocessing are build.py's.
`dataset.seed` seeds the generators, so the same config always yields the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from clftrain.data import arrow_tables, tabular
from clftrain.data.types import RawData
from clftrain.registry import Registry

DATASETS: Registry[Callable[..., RawData]] = Registry("dataset")


# circles, moons and blobs draw exactly what scikit-learn's make_circles, make_moons and make_blobs draw from
# the same seed (the same RandomState calls in the same order; tests/test_data.py compares them), without the
# second it takes `clftrain fit` to import scikit-learn.
@DATASETS.register("circles")
def _circles(cfg) -> RawData:
    """A small circle (class 1, radius `factor`) inside a large one (class 0, radius 1)."""
    n_out = cfg.n_samples // 2
    n_in = cfg.n_samples - n_out
    rng = np.random.RandomState(cfg.seed)
    outer = np.linspace(0, 2 * np.pi, n_out, endpoint=False)  # endpoint=False: no point drawn twice
    inner = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.vstack([np.append(np.cos(outer), np.cos(inner) * cfg.factor),
                   np.append(np.sin(outer), np.sin(inner) * cfg.factor)]).T
    X, y = _shuffled(X, np.repeat([0, 1], [n_out, n_in]), rng)
    return RawData(X + rng.normal(scale=cfg.noise, size=X.shape), y, ["x1", "x2"], ["0", "1"])


@DATASETS.register("moons")
def _moons(cfg) -> RawData:
    """Two interleaving half circles: the upper one (class 0) and the lower one shifted right (class 1)."""
    n_out = cfg.n_samples // 2
    n_in = cfg.n_samples - n_out
    rng = np.random.RandomState(cfg.seed)
    outer, inner = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([np.append(np.cos(outer), 1 - np.cos(inner)),
                   np.append(np.sin(outer), 1 - np.sin(inner) - 0.5)]).T
    X, y = _shuffled(X, np.repeat([0, 1], [n_out, n_in]), rng)
    return RawData(X + rng.normal(scale=cfg.noise, size=X.shape), y, ["x1", "x2"], ["0", "1"])


@DATASETS.register("blobs")
def _blobs(cfg) -> RawData:
    """`centers` Gaussian clusters of std `cluster_std`, their centres uniform in [-10, 10]^n_features."""
    rng = np.random.RandomState(cfg.seed)
    centers = rng.uniform(-10.0, 10.0, size=(cfg.centers, cfg.n_features))
    per_center = np.full(cfg.centers, cfg.n_samples // cfg.centers)
    per_center[: cfg.n_samples % cfg.centers] += 1
    X = np.concatenate([rng.normal(loc=center, scale=cfg.cluster_std, size=(n, cfg.n_features))
                        for center, n in zip(centers, per_center)])
    X, y = _shuffled(X, np.repeat(np.arange(cfg.centers), per_center), rng)
    return RawData(X, y, _numbered("x", cfg.n_features), _numbered("", cfg.centers))


def _shuffled(X: np.ndarray, y: np.ndarray, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    order = np.arange(len(y))
    rng.shuffle(order)
    return X[order], y[order]


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
def load_csv(cfg) -> RawData:
    """A plain numeric file through numpy's C parser into one float32 matrix (a million rows in seconds, at the
    size of the numbers); one with text or gaps through pyarrow's typed reader where it reads the file as the
    careful reader would; anything else through that one (tabular.py), which also says what is wrong."""
    return tabular.read_numeric(cfg) or arrow_tables.read_csv_typed(cfg) or tabular.read_careful(cfg)


DATASETS.register("parquet")(arrow_tables.load_parquet)


def _numbered(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i + 1}" if prefix else str(i) for i in range(n)]
