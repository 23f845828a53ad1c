"""Tables larger than memory, streamed or held: `python -m bench.huge` (`make bench-huge`).

A generated table of --rows rows (default 10,000,000) x 20 numeric features and a 0/1 target `y` (normal
features on their own scales and offsets, the target a noisy, mostly linear rule of five of them, values rounded to 6
significant digits), written once as CSV and as Parquet (row groups of 1,000,000 rows) in bench/data/ and
reused, generated a million rows at a time. Each format is trained in each mode by whole `clftrain fit CONFIG
--no-report` processes: streamed (`dataset.stream: true`, the default shuffle buffer of 262,144 rows) and in
memory (`stream: false`; skipped, with a note, where its estimated need, MEMORY_COPIES float64 copies of the
table as measured, exceeds 60% of MemAvailable). The workload: 20-64-64-1 ReLU, Adam 1e-3, batch 4096, 1
epoch, `threads: 1` (--threads auto: the machine's default), log_every 1, test_size 0.2, val_size 0.

Each process runs clftrain's CLI in a small wrapper (`python -m bench.huge --child OUT MODULES -- ARGS`) that
first imports what the command imports anyway (torch, clftrain's modules, pyarrow and pandas where the table is
read by pyarrow, matplotlib for fit's figures; any heavy package imported later is listed as `imported_later`),
so that it can read its own peak RSS (VmHWM of /proc/self/status) after the imports and at the end: `RSS over
imports` is the one minus the other, what the data and the training took (bench/child.py's figure; VmHWM
rather than ru_maxrss, which exec inherits from a large parent). Figures are drawn in the fit process
(CLFTRAIN_PLOT_PROCESSES=0, as bench/distributed.py runs). The figures:
  process s    the whole fit process, start to exit, as this process sees it
  data s       the data build alone: `clftrain validate CONFIG --data` (read, split, statistics, every check
               fit makes before training; streamed: the first pass into the spill file, then the rows sampled
               from it for the figures) in a process of its own, timed from after the imports to the command's end
  training s   summary.json's `seconds`; rows/s: training rows x epochs / training s
  MB/s         the file's bytes / data s (streamed CSV: the first pass's rate; a lower bound, data s holds the
               sampling and the checks too)
Also the streamed CSV at 1,000,000 rows (its peak RSS beside the --rows one: flat), and bench/workloads.py's
`wide` workload (1,000,000 x 20 CSV, 2 epochs, batch 4096) streamed with a 262,144-row shuffle buffer (smaller
than its 800,000 training rows, so it really streams) against in memory.

Targets: streamed peak RSS over imports <= 400 MiB; first pass over the CSV >= 100 MB/s; streamed training
throughput on `wide` >= 0.7x the in-memory path. Writes bench/results/huge-<time>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from bench.run import RESULTS_DIR, ROOT, generate_csv, machine_info
from bench.workloads import DATA_DIR, WORKLOADS

FEATURES = 20
INFORMATIVE = 5
CHUNK_ROWS = 1_000_000  # rows generated at a time; Parquet's row group
SMALL_ROWS = 1_000_000  # the streamed CSV's second size: peak RSS flat in the rows
BUFFER = 262_144  # the wide workload's shuffle buffer (clftrain's default)
MEMORY_SHARE = 0.6  # in memory only where the estimated need is below this share of MemAvailable
RSS_TARGET_MIB = 400
CSV_MBPS_TARGET = 100
WIDE_TARGET = 0.7
HUGE = {"name": "huge", "seed": 42, "task": "binary",
        "model": {"layers": [64, 64], "activation": "relu"},
        "train": {"optimizer": "adam", "lr": 1e-3, "epochs": 1, "batch_size": 4096, "log_every": 1}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.huge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--formats", default="csv,parquet", help="comma-separated: csv, parquet")
    p.add_argument("--modes", default="streamed,memory", help="comma-separated: streamed, memory")
    p.add_argument("--threads", default="1", help="the config's threads: 1, or auto (the machine's default)")
    p.add_argument("--small-rows", type=int, default=SMALL_ROWS, help="the streamed CSV's second size")
    p.add_argument("--wide-rows", type=int, default=None, help="cap the wide workload's rows (smoke tests)")
    p.add_argument("--buffer", type=int, default=BUFFER, help="the wide workload's shuffle buffer, streamed")
    p.add_argument("--jobs", type=int, default=1,
                   help="measured processes at once (1; more only for smoke tests: the figures then share the cores)")
    p.add_argument("--no-wide", action="store_true", help="skip the wide workload's comparison")
    p.add_argument("--data", type=Path, default=DATA_DIR, help="where the generated tables are kept")
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    args.formats, args.modes = args.formats.split(","), args.modes.split(",")
    if set(args.formats) - {"csv", "parquet"} or set(args.modes) - {"streamed", "memory"}:
        p.error("--formats takes csv, parquet; --modes takes streamed, memory")
    args.threads = args.threads if args.threads == "auto" else int(args.threads)
    return args


# ------------------------------------------------------------------------------ the table
def table_path(folder: Path, rows: int, fmt: str) -> Path:
    return folder / f"huge-{rows}x{FEATURES}.{fmt}"


def table_chunk(start: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows start .. start+rows: features float32 rounded to 6 significant digits, target 0/1 (int8); each chunk
    of CHUNK_ROWS drawn from its own seed, so a row's values do not depend on how much is generated at once."""
    assert start % CHUNK_ROWS == 0 and rows <= CHUNK_ROWS
    rng = np.random.default_rng([42, start // CHUNK_ROWS])
    scales, offsets = np.random.default_rng(7).uniform(0.1, 10, FEATURES), np.linspace(-50, 50, FEATURES)
    X = rng.normal(size=(rows, FEATURES)) * scales + offsets
    z = (X[:, :INFORMATIVE] - offsets[:INFORMATIVE]) / scales[:INFORMATIVE]
    y = (z @ np.array([1.5, -1.0, 0.8, 0.5, -0.3]) + 0.5 * z[:, 0] * z[:, 1] + rng.normal(size=rows) > 0.2)
    magnitude = np.floor(np.log10(np.maximum(np.abs(X), 1e-30)))
    scale = 10.0 ** (5 - magnitude)
    return (np.round(X * scale) / scale).astype(np.float32), y.astype(np.int8)


def ensure_table(folder: Path, rows: int, fmt: str) -> Path:
    """The table as CSV or Parquet, generated once a chunk at a time (bounded memory), atomically renamed."""
    import pyarrow as pa

    path = table_path(folder, rows, fmt)
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".tmp{os.getpid()}")
    names = [f"x{i + 1}" for i in range(FEATURES)] + ["y"]
    schema = pa.schema([(n, pa.float32()) for n in names[:-1]] + [("y", pa.int8())])
    if fmt == "csv":
        import pyarrow.csv as pacsv

        sink = open(partial, "wb")  # noqa: SIM115 - closed below
        sink.write((",".join(names) + "\n").encode())
        writer = pacsv.CSVWriter(sink, schema, write_options=pacsv.WriteOptions(include_header=False))
    else:
        import pyarrow.parquet as pq

        sink, writer = None, pq.ParquetWriter(partial, schema)
    for start in range(0, rows, CHUNK_ROWS):
        X, y = table_chunk(start, min(CHUNK_ROWS, rows - start))
        batch = pa.table([*(X[:, j] for j in range(FEATURES)), y], schema=schema)
        if fmt == "parquet":
            writer.write_table(batch, row_group_size=CHUNK_ROWS)
        else:
            writer.write_table(batch)
    writer.close()
    if sink is not None:
        sink.close()
    partial.replace(path)
    return path


# The in-memory path's peak RSS over imports in float64 copies of the table, as measured at 10,000,000 rows (CSV
# 6,974 MiB, Parquet 10,087 MiB: 4.4 and 6.3 copies of its 1,602 MiB), rounded up.
MEMORY_COPIES = {"csv": 4.5, "parquet": 6.5}


def memory_needed(rows: int, fmt: str) -> int:
    """What the in-memory path is estimated to need for the table (bytes)."""
    return int(MEMORY_COPIES[fmt] * 8 * rows * (FEATURES + 1))


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------------------ one measured process
def vm_hwm_mib() -> float:
    """This process's peak resident set (VmHWM), MiB: reset by exec, unlike ru_maxrss."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# What each command imports anyway (checked: the child lists any heavy package it imported after these), so that
# loading them first moves the import time, without adding any: the process's wall time is the command's own.
PRELOAD = ["torch", "yaml", "rich.console", "clftrain.cli", "clftrain.config", "clftrain.data", "clftrain.training"]
PRELOAD_ARROW = ["pyarrow", "pandas", "pyarrow.compute", "pyarrow.csv", "pyarrow.parquet", "clftrain.data.arrow_tables"]
PRELOAD_STREAMED = ["clftrain.data.first_pass", "clftrain.training.stream_trainer"]
PRELOAD_FIT = ["rich._emoji_codes", "clftrain.runs.single", "clftrain.views.progress", "clftrain.views.plots"]
HEAVY = ("torch", "pyarrow", "matplotlib", "sklearn", "scipy", "pandas", "PIL")


def preload_for(command: str, fmt: str, mode: str) -> list[str]:
    """The modules `clftrain COMMAND` imports on this table (the in-memory CSV reader is numpy's, not pyarrow's)."""
    return [*PRELOAD, *(PRELOAD_ARROW if fmt == "parquet" or mode == "streamed" else []),
            *(PRELOAD_STREAMED if mode == "streamed" else []), *(PRELOAD_FIT if command == "fit" else [])]


def child(out: str, preload: list[str], cli_args: list[str]) -> None:
    """Import what the command uses, read the peak RSS, run the clftrain CLI in this process, write the figures."""
    import importlib
    import importlib.util

    from bench.probe import _run_cli

    started = time.perf_counter()
    for name in preload:
        if importlib.util.find_spec(name.split(".")[0]) is not None:  # pandas: only where installed (pyarrow's
            importlib.import_module(name)                               # to_numpy then imports it too)
    after_imports, before = vm_hwm_mib(), set(sys.modules)
    imported = time.perf_counter()
    code = _run_cli(cli_args)
    seconds = time.perf_counter() - imported
    peak = vm_hwm_mib()
    late = sorted(({m.split(".")[0] for m in sys.modules} - {m.split(".")[0] for m in before}) & set(HEAVY))
    Path(out).write_text(json.dumps({"exit_code": code, "import_s": imported - started, "command_s": seconds,
                                     "rss_after_imports_mib": after_imports, "rss_peak_mib": peak,
                                     "rss_over_imports_mib": peak - after_imports, "imported_later": late}) + "\n")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)  # as clftrain's own entry point does: no interpreter teardown


def measured(cli_args: list[str], preload: list[str], out: Path) -> dict:
    """One clftrain command in its own measured process (its figures go to `out`): the child's figures and the
    whole process's wall time. Figures are drawn in the process (CLFTRAIN_PLOT_PROCESSES=0, as
    bench/distributed.py runs): no plot workers importing matplotlib on the cores while the data is read."""
    env = {**os.environ, "CLFTRAIN_PLOT_PROCESSES": "0", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.huge", "--child", str(out), ",".join(preload), "--",
                           *cli_args], check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"clftrain {' '.join(cli_args)} failed (exit {proc.returncode}):\n"
                           f"{(proc.stderr or proc.stdout)[-3000:]}")
    return {**json.loads(out.read_text()), "process_s": wall}


def fit_and_validate(config: dict, folder: Path, label: str) -> dict:
    """`validate --data` (the data build alone) and `fit --no-report` of a config; the figures of both."""
    path = folder / f"{label}.yaml"
    path.write_text(yaml.safe_dump(config))
    fmt, mode = config["dataset"]["name"], "streamed" if config["dataset"]["stream"] else "memory"
    check = measured(["validate", str(path), "--data"], preload_for("validate", fmt, mode),
                     folder / f"{label}-validate.json")
    run_dir = folder / f"{label}-run"
    fit = measured(["fit", str(path), "--no-report", "-q", "--out", str(run_dir)], preload_for("fit", fmt, mode),
                   folder / f"{label}-fit.json")
    row = {"data_s": check["command_s"], "data_rss_over_imports_mib": check["rss_over_imports_mib"],
           "imported_later": sorted(set(check["imported_later"]) | set(fit["imported_later"]))}
    summary = json.loads((run_dir / "summary.json").read_text())
    epochs, train_rows = summary["epochs_run"], summary["data"]["train"]
    row.update(process_s=fit["process_s"], fit_command_s=fit["command_s"], import_s=fit["import_s"],
               training_s=summary["seconds"], train_rows=train_rows, test_rows=summary["data"]["test"],
               epochs=epochs, rows_per_s=train_rows * epochs / max(summary["seconds"], 1e-3),
               rss_after_imports_mib=fit["rss_after_imports_mib"], rss_over_imports_mib=fit["rss_over_imports_mib"],
               test_acc=summary["final"]["test_acc"], streamed=summary["data"].get("stream"))
    return row


def huge_config(path: Path, fmt: str, mode: str, threads) -> dict:
    rows = int(path.stem.split("-")[1].split("x")[0])
    train = {**HUGE["train"], "batch_size": min(HUGE["train"]["batch_size"], max(2, rows // 8))}  # tiny tables
    return {**HUGE, "threads": threads, "train": train,
            "dataset": {"name": fmt, "path": str(path), "target": "y", "stream": mode == "streamed",
                        "test_size": 0.2, "val_size": 0, "seed": 42}}


def wide_config(rows: int | None, mode: str, buffer: int, threads) -> dict:
    config = WORKLOADS["wide"].scaled(rows=rows).clftrain_config()
    config["dataset"].update(stream=mode == "streamed", shuffle_buffer=buffer, val_size=0)
    return {**config, "threads": threads}


def median_row(rows: list[dict]) -> dict:
    """The median of every number over the repetitions (the first repetition's other fields)."""
    return {k: statistics.median(r[k] for r in rows) if isinstance(v, (int, float)) and not isinstance(v, bool)
            else v for k, v in rows[0].items()}


# ------------------------------------------------------------------------------ the benchmark
def measure(args: argparse.Namespace, folder: Path) -> tuple[list[dict], list[str]]:
    paths = {(args.rows, fmt): ensure_table(args.data, args.rows, fmt) for fmt in args.formats}
    if "csv" in args.formats and args.small_rows != args.rows:
        paths[(args.small_rows, "csv")] = ensure_table(args.data, args.small_rows, "csv")
    notes, plan = [], []
    for fmt in args.formats:
        for mode in args.modes:
            need, available = memory_needed(args.rows, fmt), mem_available()
            if mode == "memory" and need > MEMORY_SHARE * available:
                notes.append(f"{fmt} in memory at {args.rows:,} rows skipped: estimated {need / 2**30:.1f} GiB, over "
                             f"{MEMORY_SHARE:.0%} of MemAvailable {available / 2**30:.1f} GiB")
                continue
            plan.append(("huge", args.rows, fmt, mode))
    if "csv" in args.formats and "streamed" in args.modes and args.small_rows != args.rows:
        plan.append(("huge", args.small_rows, "csv", "streamed"))
    if not args.no_wide:
        wide = generate_csv("wide", argparse.Namespace(epochs=None, rows=args.wide_rows))
        plan += [("wide", args.wide_rows, "csv", mode) for mode in ("streamed", "memory")]
    def one(key: tuple, rep: int) -> dict:
        workload, rows, fmt, mode = key
        if workload == "wide":
            config, file = wide_config(rows, mode, args.buffer, args.threads), wide
        else:
            config, file = huge_config(paths[(rows, fmt)], fmt, mode, args.threads), paths[(rows, fmt)]
        load = os.getloadavg()[0]  # the machine's cores are shared: a busy minute shows here
        row = fit_and_validate(config, folder, f"{workload}-{rows}-{fmt}-{mode}-{rep}") | {"load_avg_before": load}
        if (mode == "streamed") != bool(row["streamed"]):
            raise RuntimeError(f"{workload} {fmt} {mode}: summary.json's data.stream is {row['streamed']!r}")
        row.update(workload=workload, rows=row["train_rows"] + row["test_rows"], format=fmt, mode=mode,
                   file_bytes=file.stat().st_size, mb_per_s=file.stat().st_size / max(row["data_s"], 1e-6) / 1e6)
        print(f"  rep {rep + 1}/{args.reps} {workload} {row['rows']:,} {fmt} {mode}: data {row['data_s']:.1f} s, "
              f"training {row['training_s']:.1f} s, process {row['process_s']:.1f} s, "
              f"RSS over imports {row['rss_over_imports_mib']:.0f} MiB; load average {load:.2f}", flush=True)
        return row

    # Interleaved repetitions (a slower minute hits every figure alike); --jobs > 1 only for smoke tests.
    order = [(key, rep) for rep in range(args.reps) for key in plan]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda item: one(*item), order))
    runs: dict[tuple, list[dict]] = {key: [] for key in plan}
    for (key, _), row in zip(order, done):
        runs[key].append(row)
    return [median_row(rows) | {"reps": rows} for rows in runs.values()], notes


def checks(rows: list[dict], rows_judged: int) -> list[str]:
    def find(workload, fmt, mode):
        return [r for r in rows if r["workload"] == workload and r["format"] == fmt and r["mode"] == mode]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = []
    streamed = [r for r in rows if r["mode"] == "streamed"]
    if streamed:
        worst = max(streamed, key=lambda r: max(r["rss_over_imports_mib"], r["data_rss_over_imports_mib"]))
        peak = max(worst["rss_over_imports_mib"], worst["data_rss_over_imports_mib"])
        lines.append(f"streamed peak RSS over imports {peak:.0f} MiB (the most of fit and validate --data, "
                     f"{worst['workload']} {worst['rows']:,} {worst['format']}; target <= {RSS_TARGET_MIB} MiB): "
                     f"{verdict(peak <= RSS_TARGET_MIB)}")
    for r in find("huge", "csv", "streamed"):
        # The target is the --rows table's; a smaller one shows what the fixed costs of the data build weigh.
        judged = f": {verdict(r['mb_per_s'] >= CSV_MBPS_TARGET)}" if r["rows"] == rows_judged else " (not judged)"
        lines.append(f"first pass over the CSV, {r['rows']:,} rows: {r['mb_per_s']:.0f} MB/s (target >= "
                     f"{CSV_MBPS_TARGET} MB/s){judged}")
    wide_streamed, wide_memory = find("wide", "csv", "streamed"), find("wide", "csv", "memory")
    if wide_streamed and wide_memory:
        ratio = wide_streamed[0]["rows_per_s"] / wide_memory[0]["rows_per_s"]
        lines.append(f"wide streamed training {wide_streamed[0]['rows_per_s']:,.0f} rows/s = {ratio:.2f}x in memory "
                     f"{wide_memory[0]['rows_per_s']:,.0f} rows/s (target >= {WIDE_TARGET}x): "
                     f"{verdict(ratio >= WIDE_TARGET)}")
    return lines


def markdown(rows: list[dict]) -> str:
    lines = [("| workload | rows | format | mode | process s | data s | MB/s | training s | train rows/s | "
              "RSS over imports MiB (fit / validate --data) | test acc |"),
             "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['rows']:,} | {r['format']} | {r['mode']} | {r['process_s']:.1f} | "
                     f"{r['data_s']:.1f} | {r['mb_per_s']:.0f} | {r['training_s']:.1f} | {r['rows_per_s']:,.0f} | "
                     f"{r['rss_over_imports_mib']:.0f} / {r['data_rss_over_imports_mib']:.0f} | {r['test_acc']:.2%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2].split(","), argv[4:])
    args = parse_args(argv)
    machine = machine_info(argparse.Namespace(threads=args.threads))
    print(f"clftrain huge tables: {args.rows:,} rows x {FEATURES}, {', '.join(args.formats)} x "
          f"{', '.join(args.modes)}, threads {args.threads}, {args.reps} rep(s); {machine['cpu']}, "
          f"{machine['cores']} cores, MemAvailable {mem_available() / 2**30:.1f} GiB", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clftrain-huge-") as folder:
        rows, notes = measure(args, Path(folder))
    machine.update(load_avg_end=os.getloadavg(), bench_seconds=time.perf_counter() - started,
                   mem_available_bytes=mem_available())
    verdicts = checks(rows, args.rows)
    table = markdown(rows)
    print(table, *notes, *verdicts, sep="\n")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    record = {"rows": args.rows, "reps": args.reps, "formats": args.formats, "modes": args.modes,
              "threads": args.threads, "workload": HUGE, "wide_shuffle_buffer": args.buffer,
              "memory_estimate_bytes": {fmt: memory_needed(args.rows, fmt) for fmt in args.formats},
              "results": rows, "notes": notes, "checks": verdicts, "machine": machine}
    (args.results / f"huge-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.results / f"huge-{stamp}.md").write_text(table + "\n\n" + "\n".join(notes + verdicts) + "\n")
    return 0 if all(not c.endswith("FAIL") for c in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
