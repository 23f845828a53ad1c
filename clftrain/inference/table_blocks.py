"""A large table's blocks (data/table_batches.py) turned into what a trained run takes and gives back: the
preprocessor's raw columns, the targets; and which inputs are read that way. Used by predict and eval --data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clftrain.errors import UserError

# A CSV input larger than this is predicted a block at a time.
STREAM_BYTES = 256 * 2**20


def streams_input(path: Path, forced: bool) -> bool:
    """Whether predict or eval --data reads `path` a block at a time: Parquet, a CSV past STREAM_BYTES, or asked."""
    return forced or path.is_dir() or path.suffix == ".parquet" or (path.is_file() and path.stat().st_size > STREAM_BYTES)


def block_inputs(pre, batch, source: Path, unseen: dict) -> dict[str, np.ndarray]:
    """The preprocessor's raw columns of a block: float64 numbers (NaN where imputed), str or None for text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = {}
    for name in pre.numeric:
        values = batch.columns[name]
        if values.type != pa.float64():
            raise UserError(f"{source} column '{name}' holds text; the run was trained on it as numbers")
        numbers = values.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(numbers) & ~(np.isnan(numbers) & (name in pre.fill))
        if bad.any():
            row = batch.start + int(np.argmax(bad)) + 1
            raise UserError(f"{source} row {row:,}, column '{name}': a missing or infinite value; the run was trained "
                            "without dataset.impute for it, so every value must be given")
        columns[name] = numbers
    for name, known in pre.categorical.items():
        texts = pc.cast(batch.columns[name], pa.string())
        columns[name] = np.asarray(texts.to_pylist(), dtype=object)
        found = set(pc.unique(texts.drop_null()).to_pylist()) - set(known)
        unseen.setdefault(name, set()).update(list(found)[:5])
    return columns


def block_targets(inputs, batch, columns: list[str], source: Path) -> np.ndarray:
    """A block's target column(s) as the model's loss expects them (class indices, 0/1 labels or values), read
    as text; a class the run does not know is an error naming the row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from clftrain.data.csvtable import TRUE_FALSE, as_number

    texts = {name: pc.cast(batch.columns[name], pa.string()).to_pylist() for name in columns}
    task = inputs.task
    if task.target == "value":
        return task.prepare_targets(np.array([as_number(t) if t is not None else np.nan for t in texts[columns[0]]]))
    if task.target == "labels":
        lookup = {**TRUE_FALSE, "1.0": 1, "0.0": 0}
        codes = np.array([[lookup.get(str(t).strip().lower(), -1) for t in texts[c]] for c in columns]).T
    else:
        index = {name: i for i, name in enumerate(inputs.class_names)}
        index.update({as_number(n): i for i, n in enumerate(inputs.class_names) if as_number(n) is not None})
        cells = texts[columns[0]]
        codes = np.array([index.get(t.strip() if t else t, index.get(as_number(t) if t else None, -1))
                          for t in cells])[:, None]
    bad = (codes < 0).any(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(f"{source} row {batch.start + row + 1:,}: the target {', '.join(map(repr, columns))} holds a "
                        f"value the run does not know ({[texts[c][row] for c in columns]}); its "
                        f"{'labels take 0/1' if task.target == 'labels' else 'classes are ' + ', '.join(inputs.class_names)}")
    return task.prepare_targets(codes if task.target == "labels" else codes[:, 0])
