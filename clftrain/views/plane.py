"""The 2-D plane a decision boundary is drawn in, and the grid of points whose predictions colour it (numpy only).

Two features: the feature plane itself. One: a strip along the feature (the points jittered
up and down to be seen). More: the plane of the training data's first two principal components,
computed here by SVD as scikit-learn's PCA computes it (components signed so that each one's
largest coefficient is positive), so drawing needs no scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_STEPS = 201  # per axis: smooth regions at a few ms of inference


@dataclass
class Plane:
    n_features: int
    mean: np.ndarray | None = None  # [F]: the principal components' origin (more than two features)
    components: np.ndarray | None = None  # [2, F]
    variance_ratio: tuple[float, float] = (0.0, 0.0)  # of the training data's variance, per component

    @classmethod
    def fit(cls, X_train: np.ndarray) -> Plane:
        n_features = X_train.shape[1]
        if n_features <= 2:
            return cls(n_features)
        X = np.asarray(X_train, dtype=np.float64)
        mean = X.mean(axis=0)
        _, singular, vt = np.linalg.svd(X - mean, full_matrices=False)
        signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])  # deterministic signs
        vt *= signs[:, None]
        variance = singular**2
        ratio = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
        return cls(n_features, mean, vt[:2], (float(ratio[0]), float(ratio[1])))

    @property
    def axis_labels(self) -> tuple[str, str]:
        if self.n_features == 1:
            return "x1", "(one feature)"
        if self.n_features == 2:
            return "x1", "x2"
        return f"PC1 ({self.variance_ratio[0]:.0%} of variance)", f"PC2 ({self.variance_ratio[1]:.0%})"

    @property
    def description(self) -> str:
        """What the coloured regions are, for the figure's title."""
        if self.n_features == 1:
            return "regions: the model's predicted class along the only feature (points jittered up and down)"
        if self.n_features == 2:
            return "regions: the model's predicted class over the two features"
        return (f"regions: the model's predicted class on the plane of the first two principal components of "
                f"{self.n_features} features;\nthe rows lie off that plane, so a point marked right may sit on "
                "another colour")

    def to_plane(self, X: np.ndarray) -> np.ndarray:
        if self.n_features == 1:
            jitter = np.random.default_rng(0).uniform(-0.8, 0.8, len(X))  # spread points to see them
            return np.column_stack([X[:, 0], jitter])
        if self.components is None:
            return np.asarray(X)
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.components.T

    def to_features(self, plane: np.ndarray) -> np.ndarray:
        if self.n_features == 1:
            return plane[:, :1]
        if self.components is None:
            return plane
        return plane @ self.components + self.mean

    def grid(self, X: np.ndarray, steps: int = GRID_STEPS) -> tuple[tuple[float, float, float, float], np.ndarray]:
        """(extent (x0, x1, y0, y1), [steps * steps, F] float32 feature rows) covering X's points with a margin;
        the rows run along x first, then y, as an image's pixels from the bottom left."""
        points = self.to_plane(X)
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = 0.1 * (hi - lo) + 1e-6
        xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], steps)
        ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], steps)
        xx, yy = np.meshgrid(xs, ys)
        rows = self.to_features(np.column_stack([xx.ravel(), yy.ravel()]))
        return (xs[0], xs[-1], ys[0], ys[-1]), rows.astype(np.float32)
