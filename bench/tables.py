"""Reading the user's tables: `python -m bench.tables` (`make bench-tables`).

A generated table (default 200,000 rows: 8 numeric columns, 2 text columns of 4 and 2 categories, a 0/1 label),
written once as CSV and as Parquet in a temporary folder, then read by each reader clftrain has, in this
process, repetitions interleaved, the median kept (seconds and rows per second):
  csv typed     pyarrow's typed reader (what a CSV with text or gaps takes now)
  csv careful   the cell-by-cell reader (what it took before; still every error's reader)
  parquet       pyarrow's Parquet reader
  csv numeric   numpy's C parser, on the same table without its text columns (the all-numeric path)
Each reader's result is checked against the careful one's (same features, classes and values).
Writes bench/results/tables-<time>.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from bench.run import RESULTS_DIR, machine_info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def write_tables(folder: Path, rows: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    numbers = rng.normal(size=(rows, 8)).round(5)
    colour, size = rng.choice(["red", "green", "blue", "grey"], size=rows), rng.choice(["small", "large"], size=rows)
    label = (numbers[:, 0] + (colour == "red") > 0.5).astype(int)
    names = [f"x{i}" for i in range(8)]
    mixed = pa.table({**{n: numbers[:, i] for i, n in enumerate(names)}, "colour": colour, "size": size,
                      "label": label})
    paths = {"mixed": folder / "mixed.csv", "parquet": folder / "mixed.parquet", "numeric": folder / "numeric.csv"}
    pq.write_table(mixed, paths["parquet"])
    for path, columns in ((paths["mixed"], mixed.column_names), (paths["numeric"], [*names, "label"])):
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(zip(*(mixed.column(c).to_pylist() for c in columns)))
    return paths


def readers(paths: dict[str, Path]) -> dict:
    from clftrain.data import arrow_tables, tabular

    def cfg(path, categorical):
        return SimpleNamespace(path=str(path), target="label", features=None, exclude=[], categorical=categorical,
                               impute=None)

    return {"csv typed": lambda: arrow_tables.read_csv_typed(cfg(paths["mixed"], "auto")),
            "csv careful": lambda: tabular.read_careful(cfg(paths["mixed"], "auto")),
            "parquet": lambda: arrow_tables.load_parquet(cfg(paths["parquet"], "auto")),
            "csv numeric": lambda: tabular.read_numeric(cfg(paths["numeric"], []))}


def same_data(one, reference) -> bool:
    """The same features, classes and values as the careful reader's (the numeric path: its columns only)."""
    if one is None or one.class_names != reference.class_names or not np.array_equal(one.y, reference.y):
        return False
    for i, name in enumerate(one.feature_names):
        mine = one.X[name] if isinstance(one.X, dict) else one.X[:, i]
        theirs = reference.X[name]
        if mine.dtype == object or theirs.dtype == object:
            if list(mine) != list(theirs):
                return False
        elif not np.allclose(mine, theirs.astype(mine.dtype), equal_nan=True):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="clftrain-tables-") as folder:
        paths = write_tables(Path(folder), args.rows)
        sizes = {name: path.stat().st_size for name, path in paths.items()}
        chosen = readers(paths)
        results = {}
        for _ in range(args.reps):
            for name, read in chosen.items():
                started = time.perf_counter()
                results[name] = read()
                seconds.setdefault(name, []).append(time.perf_counter() - started)
        agree = {name: same_data(data, results["csv careful"]) for name, data in results.items()}
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    lines = ["| reader | seconds (median) | rows/s | MB/s of its file | x careful | same data |",
             "|---|---:|---:|---:|---:|---|"]
    file_of = {"csv typed": "mixed", "csv careful": "mixed", "parquet": "parquet", "csv numeric": "numeric"}
    for name, value in medians.items():
        lines.append(f"| {name} | {value:.3f} | {args.rows / value:,.0f} | {sizes[file_of[name]] / value / 1e6:.0f} | "
                     f"{medians['csv careful'] / value:.1f}x | {'yes' if agree[name] else 'NO'} |")
    table = "\n".join(lines)
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    record = {"rows": args.rows, "reps": args.reps, "file_bytes": sizes, "seconds": seconds, "median_s": medians,
              "same_data": agree, "machine": machine_info(argparse.Namespace(threads=None))}
    (args.results / f"tables-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.results / f"tables-{stamp}.md").write_text(table + "\n")
    return 0 if all(agree.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
