"""The benchmark's workloads: data, architecture and training settings, identical for every trainer.

Each workload builds its data as numpy arrays once per child process (float32 features,
integer class labels), so every trainer sees exactly the same rows. `circles`, `blobs`
and `big` go through clftrain's own dataset code (clftrain.data.build_dataset); `wide`
reads a generated CSV file: clftrain's trainers through clftrain's own CSV dataset
(`dataset: {name: csv}`, so its loading time and memory are measured too), the others
through a chunked numpy reader that splits the rows exactly as clftrain does (same
stratified train_test_split, same seed, no standardisation), so every trainer still gets
the same arrays.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("CLFTRAIN_BENCH_DATA", BENCH_DIR / "data"))


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    dataset: dict[str, Any]  # a clftrain `dataset:` section (CSV workloads: the generator's settings)
    layers: tuple[int, ...]
    n_classes: int
    optimizer: str  # sgd | adam
    lr: float
    epochs: int
    batch_size: int | None  # None: full batch
    log_every: int  # the console cadence of the lesson/default config
    seed: int = 42
    csv_rows: int = 0  # > 0: read the data from a generated CSV file of this many rows
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return "binary" if self.n_classes == 2 else "multiclass"

    @property
    def out_features(self) -> int:
        return 1 if self.n_classes == 2 else self.n_classes

    def scaled(self, epochs: int | None = None, rows: int | None = None) -> Workload:
        """A smaller copy for smoke tests: fewer epochs and/or rows."""
        w = self
        if epochs is not None:
            w = replace(w, epochs=min(w.epochs, epochs), log_every=max(1, min(w.log_every, epochs)))
        if rows is not None:
            if w.csv_rows:
                w = replace(w, csv_rows=min(w.csv_rows, rows))
            else:
                w = replace(w, dataset={**w.dataset, "n_samples": min(w.dataset["n_samples"], rows)})
            if w.batch_size is not None:
                w = replace(w, batch_size=min(w.batch_size, max(2, rows // 8)))
        return w

    def clftrain_dataset(self) -> dict[str, Any]:
        if not self.csv_rows:
            return dict(self.dataset)
        # Features come out of make_classification on a unit scale: no standardisation, so that the
        # benchmark's own reader can hand the other trainers exactly clftrain's arrays.
        return {"name": "csv", "path": str(csv_path(self)), "target": "target", "standardize": False,
                "test_size": self.dataset["test_size"], "seed": self.seed}

    def clftrain_config(self, eval_every: int | str = 1, log_every: int | None = None) -> dict[str, Any]:
        """The clftrain config (a dict for clftrain.config.validate_config) for this workload."""
        return {
            "name": f"bench-{self.name}",
            "seed": self.seed,
            "device": "cpu",
            "task": self.task,
            "dataset": self.clftrain_dataset(),
            "model": {"layers": list(self.layers), "activation": "relu"},
            "train": {
                "loss": "bce_with_logits" if self.n_classes == 2 else "cross_entropy",
                "optimizer": self.optimizer,
                "lr": self.lr,
                "epochs": self.epochs,
                "batch_size": self.batch_size,
                "log_every": log_every or self.log_every,
                "eval_every": eval_every,
            },
        }


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            name="circles",
            description="1,000 samples, 2-10-10-1 ReLU, SGD lr 0.1, 1,000 epochs, full batch",
            dataset={"name": "circles", "n_samples": 1000, "noise": 0.03, "test_size": 0.2, "seed": 42},
            layers=(10, 10), n_classes=2, optimizer="sgd", lr=0.1, epochs=1000, batch_size=None, log_every=100,
        ),
        Workload(
            name="blobs",
            description="1,000 samples, 4 classes, 2-8-8-4 ReLU, SGD lr 0.1, 100 epochs, full batch",
            dataset={"name": "blobs", "n_samples": 1000, "centers": 4, "cluster_std": 1.5, "n_features": 2,
                     "test_size": 0.2, "seed": 42},
            layers=(8, 8), n_classes=4, optimizer="sgd", lr=0.1, epochs=100, batch_size=None, log_every=10,
        ),
        Workload(
            name="big",
            description="200,000 x 20 make_classification, 20-64-64-1 ReLU, Adam 1e-3, batch 256, 5 epochs",
            dataset={"name": "classification", "n_samples": 200_000, "n_features": 20, "n_informative": 10,
                     "n_redundant": 5, "n_classes": 2, "test_size": 0.2, "seed": 42},
            layers=(64, 64), n_classes=2, optimizer="adam", lr=1e-3, epochs=5, batch_size=256, log_every=1,
        ),
        Workload(
            name="wide",
            description="1,000,000 x 20 read from CSV, 20-64-64-1 ReLU, Adam 1e-3, batch 4096, 2 epochs",
            # How the CSV file is generated (make_classification); clftrain reads it as `dataset: {name: csv}`.
            dataset={"n_features": 20, "n_informative": 10, "n_redundant": 5, "n_classes": 2, "test_size": 0.2},
            layers=(64, 64), n_classes=2, optimizer="adam", lr=1e-3, epochs=2, batch_size=4096, log_every=1,
            csv_rows=1_000_000,
        ),
    ]
}


@dataclass
class Data:
    """One workload's arrays: float32 features, int64 class labels; the same for every trainer."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    load_seconds: float
    source: str
    clftrain_dataset: Any = None  # the clftrain Dataset the arrays came from (None for CSV data)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]


def load(workload: Workload, via_clftrain: bool = True) -> Data:
    """The workload's arrays: through clftrain's dataset code, or (CSV workloads) the benchmark's reader."""
    started = time.perf_counter()
    if workload.csv_rows:
        ensure_csv(workload)
    if workload.csv_rows and not via_clftrain:
        return _read_split_csv(workload, started)

    from clftrain.config import validate_config
    from clftrain.data import build_dataset

    dataset = build_dataset(validate_config(workload.clftrain_config()))
    source = "clftrain.data.build_dataset" + (" (CSV)" if workload.csv_rows else "")
    return Data(
        dataset.X_train, _labels(dataset.y_train), dataset.X_test, _labels(dataset.y_test),
        time.perf_counter() - started, source, clftrain_dataset=dataset,
    )


def _read_split_csv(workload: Workload, started: float) -> Data:
    """The CSV through read_csv, split into the rows clftrain's split picks (stratified, dataset seed)."""
    from sklearn.model_selection import train_test_split

    path = csv_path(workload)
    X, y = read_csv(path, n_features=workload.dataset["n_features"])
    train, test = train_test_split(np.arange(len(y)), test_size=workload.dataset["test_size"],
                                   random_state=workload.seed, stratify=y)
    X_test, y_test = X[test], y[test]
    X_train, y_train = X[train], y[train]
    del X  # the split copies; the whole-file array goes
    return Data(X_train, y_train, X_test, y_test, time.perf_counter() - started,
                f"bench read_csv ({path.stat().st_size / 2**20:.0f} MiB)")


def _labels(y: np.ndarray) -> np.ndarray:
    """clftrain's targets (float [N, 1] for binary, int64 [N] for multiclass) -> int64 class labels [N]."""
    return y.reshape(-1).astype(np.int64)


# ------------------------------------------------------------------------------ CSV data
def csv_path(workload: Workload) -> Path:
    return DATA_DIR / f"{workload.name}-{workload.csv_rows}x{workload.dataset['n_features']}-s{workload.seed}.csv"


def ensure_csv(workload: Workload) -> Path:
    """Generate the workload's CSV once (make_classification, shuffled rows); later runs reuse it."""
    path = csv_path(workload)
    if path.exists():
        return path
    from sklearn.datasets import make_classification

    ds = workload.dataset
    n_features = ds["n_features"]
    X, y = make_classification(
        workload.csv_rows, n_features=n_features, n_informative=ds["n_informative"],
        n_redundant=ds["n_redundant"], n_classes=ds["n_classes"], random_state=workload.seed,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    with open(partial, "w", encoding="ascii") as f:
        f.write(",".join([f"x{i + 1}" for i in range(n_features)] + ["target"]) + "\n")
        for start in range(0, len(X), 50_000):
            rows = X[start : start + 50_000].astype(np.float32).tolist()
            labels = y[start : start + 50_000].tolist()
            f.write("".join(",".join(f"{v:.6g}" for v in row) + f",{label}\n" for row, label in zip(rows, labels)))
    partial.replace(path)  # atomic: a half-written file is never picked up
    return path


def read_csv(path: Path, n_features: int, chunk_rows: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """A numeric CSV with a header and the label last -> (X float32 [N, F], y int64 [N]).

    Memory-frugal: one pass counts the rows, then chunks of `chunk_rows` lines are parsed by
    numpy's C reader (np.loadtxt) straight into preallocated arrays, so the peak is the
    result plus one chunk (no float64 copy of the whole file, no Python object per value).
    """
    with open(path, "rb") as f:
        n_rows = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b"")) - 1  # minus the header
    X = np.empty((n_rows, n_features), dtype=np.float32)
    y = np.empty(n_rows, dtype=np.int64)
    with open(path, encoding="ascii") as f:
        f.readline()  # header
        row = 0
        while row < n_rows:
            chunk = np.loadtxt(f, delimiter=",", dtype=np.float32, max_rows=chunk_rows, ndmin=2)
            if chunk.shape[0] == 0:
                break
            X[row : row + len(chunk)] = chunk[:, :n_features]
            y[row : row + len(chunk)] = chunk[:, n_features]
            row += len(chunk)
    if row != n_rows:
        raise ValueError(f"{path}: read {row} rows, expected {n_rows}")
    return X, y
