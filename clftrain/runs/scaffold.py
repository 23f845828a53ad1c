"""`clftrain init DATA --target COLUMN`: a commented config a person can run at once, written from the table (a CSV
file, or a Parquet file or folder of them).

The table is read with fit's own checks (data/tabular.py through training.check_data), so what the comments
say - the task, the classes, the columns left out and why, the categories, the gaps - is what fit will do.
The choices it cannot read from the data are `model.preset: tabular` (components/presets.py, measured by
bench/ablation.py), a validation split that early stopping watches, and, past 20,000 training rows, a larger batch
and fewer epochs, so that a pass over a large table stays affordable.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from clftrain.components.presets import TABULAR
from clftrain.config import validate_config
from clftrain.data import CsvTable, is_missing
from clftrain.errors import UserError
from clftrain.readers import is_parquet
from clftrain.store import rundir

# (training rows up to, batch size, epochs, early-stopping patience); None: the preset's own
SIZES = [
    (20_000, None, None, None),
    (200_000, 512, 64, 8),
    (None, 1024, 16, 4),
]
VAL_SIZE = 0.15
SCHEMA_FILE = "clftrain.schema.json"  # beside the config: editors check and complete it as it is typed


def scaffold_config(data: Path, target: str, out: Path) -> tuple[str, list[str]]:
    """The config's text for `data` written to `out`'s folder, and what the user should know about it."""
    from clftrain.training import check_data

    kind = "parquet" if is_parquet(data) else "csv"
    gaps, table_rows = (_parquet_gaps if kind == "parquet" else _csv_gaps)(data, target)
    relative = Path(os.path.relpath(data.resolve(), out.resolve().parent))
    path = data.resolve() if relative.parts[:1] == ("..",) else relative  # no climbing out: then absolute
    dataset = {"name": kind, "path": str(path), "target": target, "categorical": "auto", "val_size": VAL_SIZE,
               **({"impute": "median"} if gaps else {})}
    config = {"name": run_name(data), "seed": 0, "dataset": dataset}
    _, built = check_data(validate_config(config, source=f"clftrain init {data}",
                                                 base_dir=out.resolve().parent))
    rows = len(built.X_train)
    _, batch, epochs, patience = next(size for size in SIZES if size[0] is None or rows <= size[0])
    text = _render(data, target, config["name"], dataset, built, gaps, batch, epochs, patience, table_rows, out)
    return text, list(built.notes)


def _csv_gaps(data: Path, target: str) -> tuple[dict[str, int], int]:
    """(the input columns with missing cells and how many, the rows) of a CSV table."""
    table = CsvTable.read(data)
    table.require([target], f"--target {target} names the column to predict")
    gaps = {c: sum(is_missing(cell) for _, cell in table.cells(c)) for c in table.header if c != target}
    return {c: n for c, n in gaps.items() if n}, len(table.rows)


def _parquet_gaps(data: Path, target: str) -> tuple[dict[str, int], int]:
    """The same of a Parquet table: a gap is a null, or a text cell that reads as missing (as in a CSV file). A
    missing target is check_data's error, after."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from clftrain.data.arrow_tables import read_table
    from clftrain.data.csvtable import null_spellings

    table = read_table(data)
    spellings = pa.array(sorted(null_spellings()))
    gaps = {}
    for name in (c for c in table.column_names if c != target):
        column = table.column(name)
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        spelled = pc.sum(pc.is_in(pc.utf8_trim_whitespace(column), value_set=spellings)).as_py() if text else 0
        if column.null_count + (spelled or 0):
            gaps[name] = column.null_count + (spelled or 0)
    return gaps, table.num_rows


def run_name(data: Path) -> str:
    """The run name a table gives: its file name without the suffix, in letters, digits, - and _."""
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in data.stem).strip("-")
    return name or "table"


def _render(data, target, name, dataset, built, gaps, batch, epochs, patience, rows, out) -> str:
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
    lines.append(f"# numeric inputs, scaled on the training rows (the preset's numeric_transform: "
                 f"{TABULAR.value('dataset.numeric_transform')}): {', '.join(pre.numeric) or '-'}")
    if gaps:
        listed = ", ".join(f"{c} ({n})" for c, n in gaps.items())
        lines.append(f"# missing values: {listed}; filled from the training rows (median; text: most frequent)")
    body = [("name", name, ""), ("seed", "0", ""), ("dataset", None, ""), ("  name", dataset["name"], ""),
            ("  path", json.dumps(dataset["path"]),
             "" if Path(dataset["path"]).is_absolute() else "relative to this file"),
            ("  target", json.dumps(target), ""),
            ("  categorical", "auto", "every non-numeric input column"),
            ("  val_size", VAL_SIZE, "early stopping watches it; the test split only reports"),
            *([("  impute", "median", "")] if gaps else []),
            ("model", None, ""),
            ("  preset", TABULAR.name, "the measured recipe for tables: README, 'The tabular recipe'"),
            ("  layers", json.dumps(TABULAR.value("model.layers")), "the preset's; any key written here wins"),
            *([("train", None, f"{len(built.X_train):,} training rows: a larger batch, fewer epochs than the "
                "preset's"), ("  batch_size", batch, ""), ("  epochs", epochs, ""),
               ("  log_every", max(1, epochs // 8), ""),
               ("  early_stopping", f"{{monitor: val_loss, patience: {patience}}}", "")] if batch else [])]
    for key, value, comment in body:
        line = f"{key}:" if value is None else f"{key}: {value}"
        lines.append(f"{line.ljust(32)}  # {comment}" if comment else line)
    if not batch:
        lines.append(f"# train: the preset's, for {len(built.X_train):,} training rows (clftrain validate shows them)")
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
