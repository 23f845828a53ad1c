"""A config's dataset built: rows from its source, the task they make, the split, and the preprocessing
fitted on the training rows.

Everything here is numpy; tensors are made once, by training/setup.py, on the target device.
`dataset.seed` seeds the split too, so the same config always yields the same train/test rows
(eval and plot rely on it).
"""

from __future__ import annotations

import numpy as np

from clftrain import memory
from clftrain.components.tasks import classes_task, get_task, task_fits
from clftrain.config import Config
from clftrain.data.features import Columns, NotFinite, Preprocessor
from clftrain.data.folds import fold_rows
from clftrain.data.sources import DATASETS
from clftrain.data.hashed_split import hashed_parts
from clftrain.data.splits import SplitError, train_test_rows
from clftrain.data.types import Dataset, RawData
from clftrain.errors import UserError


def build_dataset(config: Config) -> Dataset:
    """Generate or load the data, split it (stratified for classes) and preprocess it; a table too large for
    memory (or `dataset.stream: true`) is streamed instead."""
    cfg = config.dataset
    if streams(cfg):
        refuse_streamed_transform(cfg)
        refuse_streamed_folds(cfg)
        return _streamed_dataset(config)
    memory.require(_generated_data(cfg), "this machine")
    raw = DATASETS.get(cfg.name)(cfg)
    task = get_task(_task_name(config, raw.task or _implied_task(raw), raw.class_names, lambda: _class_counts(raw)))
    parts = _split(raw, config, stratify=task.stratify)
    # Numeric arrays are split as one matrix (no per-column copies); tables as columns.
    source = raw.X
    numeric = [name for name in raw.feature_names if name not in raw.categorical]
    pre = Preprocessor.fit(_rows(source, parts["train"]), numeric, raw.categorical,
                           getattr(cfg, "impute", None), cfg.standardize, cfg.numeric_transform)

    def split(name):
        if name not in parts:
            return None, None
        rows = parts[name]
        try:
            return pre.transform(_rows(source, rows)), task.prepare_targets(raw.y[rows])
        except NotFinite as exc:
            raise UserError(
                f"{_source_name(config)}: column '{exc.column}', data row {int(rows[exc.row]) + 1}: the value does "
                "not fit in float32 (beyond ±3.4e38) even after scaling; rescale the column (or set "
                "dataset.standardize: true)") from None

    (X_train, y_train), (X_test, y_test), (X_val, y_val) = split("train"), split("test"), split("val")
    positive_index(config, task, raw.class_names)  # a positive_class that is not a class: refused now
    folds = None if cfg.cv_folds is None else \
        fold_rows(raw.y[parts["train"]], cfg.cv_folds, cfg.seed, task.stratify, raw.class_names)
    return Dataset(task=task, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                   feature_names=pre.feature_names, class_names=raw.class_names, preprocessor=pre,
                   X_val=X_val, y_val=y_val, notes=list(raw.notes), folds=folds)


def positive_index(config: Config, task, class_names: list[str]) -> int:
    """The index of the class precision, recall, F1 and thresholds are about (dataset.positive_class, else the
    second class); a UserError for a class the data does not have, or a task that has no positive class."""
    name = config.dataset.positive_class
    if name is None:
        return 1
    if len(class_names) != 2 or task.target != "class":
        raise UserError(f"dataset.positive_class = '{name}' needs a task of two classes; this one is "
                        f"{task.name} with {len(class_names)} {'classes' if task.target == 'class' else 'labels'}")
    if name not in class_names:
        raise UserError(f"dataset.positive_class = '{name}' is not a class of {_source_name(config)}; its classes "
                        f"are: {', '.join(map(repr, class_names))}")
    return class_names.index(name)


def refuse_streamed_folds(cfg) -> None:
    """Folds are replicas of one batched model, which trains on tensors in memory."""
    if cfg.cv_folds is not None:
        raise UserError(f"dataset.cv_folds = {cfg.cv_folds} trains one replica per fold on tensors in memory, and "
                        "this table is streamed; set dataset.stream: false (or raise dataset.memory_limit), or "
                        "remove cv_folds")


def refuse_streamed_transform(cfg) -> None:
    """A streamed table's first pass gathers moments and exact order statistics (standard, robust_clip), not the
    128 knots of `quantile`."""
    if cfg.standardize and cfg.numeric_transform == "quantile":
        raise UserError("dataset.numeric_transform = 'quantile' needs 128 training quantiles per column, which a "
                        "streamed table's first pass does not gather yet; use numeric_transform: standard or "
                        "robust_clip, or dataset.stream: false to hold the table in memory")


def _generated_data(cfg) -> list[memory.Term]:
    """What generating the data costs: its float64 rows, about three times over (the draw, the shuffle and the
    float32 splits); [] for tables read from files."""
    rows = getattr(cfg, "n_samples", None)
    if rows is None:
        return []
    columns = getattr(cfg, "n_features", 2) + (getattr(cfg, "n_classes", 1) if cfg.name == "multilabel" else 1)
    return [memory.Term(f"the generated data ({rows:,} rows x {columns - 1:,} features)", 8 * 3 * rows * columns,
                        "lower dataset.n_samples (or dataset.n_features)")]


def _source_name(config: Config) -> str:
    return getattr(config.dataset, "path", None) or f"dataset '{config.dataset.name}'"


def streams(cfg) -> bool:
    """Whether a table is streamed: `dataset.stream: true`, or auto and its float32 size beyond the limit."""
    setting = getattr(cfg, "stream", False)
    if setting != "auto":
        return bool(setting)
    from clftrain.data.first_pass import estimated_float32_bytes

    return estimated_float32_bytes(cfg) > (cfg.memory_limit or memory.default_stream_limit())


def _streamed_dataset(config: Config) -> Dataset:
    """The first pass over a streamed table (first_pass.py), and a sample of each split for the plots."""
    from clftrain.data.first_pass import FirstPass

    table, implied, class_names, notes = FirstPass(config.dataset).run()
    describe = lambda: ", ".join(f"{n}: {c}" for n, c in zip(class_names, table.class_counts["train"]))  # noqa: E731
    task = get_task(_task_name(config, implied, class_names, describe))
    table.prepare_targets = task.prepare_targets
    for split in ("train", "test"):
        if table.sizes.get(split, 0) == 0:
            raise UserError(f"{table.source}: dataset.test_size = {config.dataset.test_size:g} of "
                            f"{sum(table.sizes.values())} rows leaves no {split} rows; use more rows or another size")
    positive_index(config, task, class_names)
    drawn = table.samples()
    samples = {split: drawn.get(split, (None, None)) for split in ("train", "test", "val")}
    pre = table.preprocessor
    return Dataset(task=task, X_train=samples["train"][0], y_train=samples["train"][1], X_test=samples["test"][0],
                   y_test=samples["test"][1], feature_names=pre.feature_names, class_names=class_names,
                   preprocessor=pre, X_val=samples["val"][0], y_val=samples["val"][1], notes=notes, stream=table)


def _task_name(config: Config, implied: str, class_names: list[str], counts) -> str:
    """The config's task, or the one the targets imply; an explicit task must fit the targets (binary needs
    exactly two classes), else the error says what the targets hold (`counts()`: the classes' rows)."""
    if config.task == "auto":
        return implied
    classes = len(class_names) if implied in ("binary", "multiclass") else None
    if task_fits(config.task, implied, classes):
        return config.task
    found = f"{classes} classes ({counts()})" if classes else f"a {implied} task"
    raise UserError(f"task = '{config.task}' does not fit the targets of {_source_name(config)}: they hold {found}"
                    f"{'; binary needs exactly 2' if config.task == 'binary' and classes else ''}; "
                    f"use task: auto or {implied}")


def _implied_task(raw: RawData) -> str:
    if raw.y.ndim == 2:
        return "multilabel"
    return classes_task(len(raw.class_names)) if raw.class_names else "regression"


def _class_counts(raw: RawData, shown: int = 6) -> str:
    counts = np.bincount(np.asarray(raw.y, dtype=np.int64), minlength=len(raw.class_names))
    parts = [f"{name}: {count}" for name, count in zip(raw.class_names[:shown], counts[:shown])]
    return ", ".join(parts) + (f", ... {len(raw.class_names) - shown} more" if len(raw.class_names) > shown else "")


def _rows(source: np.ndarray | Columns, rows: np.ndarray) -> np.ndarray | Columns:
    if isinstance(source, np.ndarray):
        return source[rows]
    return {name: values[rows] for name, values in source.items()}


def _split(raw: RawData, config: Config, stratify: bool) -> dict[str, np.ndarray]:
    """Row indices of train / test (/ val), drawn with dataset.seed."""
    cfg = config.dataset
    rows = np.arange(len(raw.y))
    if getattr(cfg, "split", "shuffle") == "hash":  # as a streamed table is split (hashed_split.py)
        return hashed_parts(len(rows), cfg.seed, cfg.test_size, cfg.val_size)
    try:
        rest, test = train_test_rows(rows, cfg.test_size, cfg.seed, raw.y if stratify else None)
        parts = {"test": test}
        if cfg.val_size > 0:
            # val_size is a fraction of all rows; rescale it to a fraction of what is left.
            rest, val = train_test_rows(rest, cfg.val_size / (1 - cfg.test_size), cfg.seed,
                                        raw.y[rest] if stratify else None)
            parts["val"] = val
    except SplitError as exc:
        raise UserError(
            f"cannot split dataset '{cfg.name}' ({len(raw.y)} rows) with test_size={cfg.test_size:g}, "
            f"val_size={cfg.val_size:g}: {exc}; use more samples or larger fractions"
        ) from None
    parts["train"] = rest
    return parts
