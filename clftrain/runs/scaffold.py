"""`clftrain init DATA.csv --target COLUMN`: a commented config a person can run at once, written from the table.

The table is read with fit's own checks (data/tabular.py through training.check_data), so what the comments
say - the task, the classes, the columns left out and why, the categories, the gaps - is what fit will do.
The choices it cannot read from the data follow the row count: a validation split that early stopping
watches, Adam, a model and a batch that grow with the rows, and MLPClassifier's L2 penalty (alpha 1e-4).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clftrain.config import validate_config
from clftrain.data import CsvTable, is_missing
from clftrain.errors import UserError
from clftrain.store import rundir

# (training rows up to, layers, batch size (None: full batch), epochs, patience, learning rate)
SIZES = [
    (2_000, [16], None, 500, 50, 0.01),
    (20_000, [32, 32], 128, 100, 15, 0.003),
    (200_000, [64, 64], 256, 30, 5, 0.001),
    (None, [128, 128], 1024, 10, 3, 0.001),
]
VAL_SIZE = 0.15
SCHEMA_FILE = "clftrain.schema.json"  # beside the config: editors check and complete it as it is typed


def scaffold_config(data: Path, target: str, out: Path) -> tuple[str, list[str]]:
    """The config's text for `data` written to `out`'s folder, and what the user should know about it."""
    from clftrain.training import check_data

    table = CsvTable.read(data)
    table.require([target], "dataset.target")
    features = [c for c in table.header if c != target]
    gaps = {c: sum(is_missing(cell) for _, cell in table.cells(c)) for c in features}
    gaps = {c: n for c, n in gaps.items() if n}
    relative = Path(os.path.relpath(data.resolve(), out.resolve().parent))
    path = data.resolve() if relative.parts[:1] == ("..",) else relative  # no climbing out: then absolute
    dataset = {"name": "csv", "path": str(path), "target": target, "categorical": "auto", "val_size": VAL_SIZE,
               **({"impute": "median"} if gaps else {})}
    config = {"name": _name(data), "seed": 0, "dataset": dataset}
    _, built = check_data(validate_config(config, source=f"clftrain init {data}",
                                                 base_dir=out.resolve().parent))
    rows = len(built.X_train)
    _, layers, batch, epochs, patience, lr = next(size for size in SIZES if size[0] is None or rows <= size[0])
    text = _render(data, target, config["name"], dataset, built, gaps, layers, batch, epochs, patience, lr,
                   len(table.rows), out)
    return text, list(built.notes)


def _name(data: Path) -> str:
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in data.stem).strip("-")
    return name or "table"


def _render(data, target, name, dataset, built, gaps, layers, batch, epochs, patience, lr, rows, out) -> str:
    pre, task = built.preprocessor, built.task
    lines = [f"# yaml-language-server: $schema={SCHEMA_FILE}",
             f"# Written by clftrain init from {data} ({rows:,} rows); check it, then: clftrain fit {out}"]
    if task.target == "class":
        import numpy as np

        counts = np.bincount(built.y_train.reshape(len(built.y_train), -1)[:, 0].astype(int),
                             minlength=built.n_classes)
        classes = ", ".join(f"{n} {c}" for n, c in zip(built.class_names, counts))
        lines.append(f"# task: {task.name} from the values of '{target}' (training rows: {classes})")
    else:
        lines.append(f"# task: {task.name} ('{target}' holds numbers of many values)")
    for note in built.notes:
        lines.append(f"# {note}")
    if pre.categorical:
        lines.append(f"# one-hot encoded (text columns): {', '.join(pre.categorical)}")
    lines.append(f"# numeric inputs, standardised on the training rows: {', '.join(pre.numeric) or '-'}")
    if gaps:
        listed = ", ".join(f"{c} ({n})" for c, n in gaps.items())
        lines.append(f"# missing values: {listed}; filled from the training rows (median; text: most frequent)")
    body = [("name", name, ""), ("seed", "0", ""), ("dataset", None, ""), ("  name", "csv", ""),
            ("  path", json.dumps(dataset["path"]),
             "" if Path(dataset["path"]).is_absolute() else "relative to this file"),
            ("  target", json.dumps(target), ""),
            ("  categorical", "auto", "every non-numeric input column"),
            ("  val_size", VAL_SIZE, "early stopping watches it; the test split only reports"),
            *([("  impute", "median", "")] if gaps else []),
            ("model", None, ""), ("  layers", layers, f"sized by the {len(built.X_train):,} training rows"),
            ("  activation", "relu", ""), ("train", None, ""), ("  optimizer", "adam", ""), ("  lr", lr, ""),
            ("  weight_decay", 0.0001, "L2, as MLPClassifier's alpha"),
            ("  batch_size", "null" if batch is None else batch, "full batch" if batch is None else ""),
            ("  epochs", epochs, ""), ("  log_every", max(1, epochs // 10), ""),
            ("  early_stopping", f"{{monitor: val_loss, patience: {patience}}}", "")]
    for key, value, comment in body:
        line = f"{key}:" if value is None else f"{key}: {value}"
        lines.append(f"{line.ljust(32)}  # {comment}" if comment else line)
    return "\n".join(lines) + "\n"


def write_scaffold(text: str, out: Path, force: bool) -> Path | None:
    """The config at `out` (refused over an existing file unless `force`), and beside it the JSON Schema its
    first line names when there is none yet (its path, or None)."""
    from clftrain.config import schema_json

    rundir.check_output(out, force)
    schema = out.parent / SCHEMA_FILE
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        rundir.atomic_write_text(out, text)
        if not schema.exists():
            rundir.atomic_write_text(schema, schema_json())
            return schema
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; choose a writable location") from None
    return None
