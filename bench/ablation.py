"""The tabular recipe, part by part: `python -m bench.ablation` (`make bench-ablation`).

On each table and seed, clftrain trains:
  default          the plain defaults: the config names only the dataset (SGD at 0.1, two layers of 10, 1,000
                   full-batch epochs, no validation split)
  init-before      the recipe `clftrain init` wrote before `preset: tabular` (one layer of 16, Adam at 0.01, L2
                   1e-4, 500 full-batch epochs, early stopping with patience 50 on a 15% validation split)
  preset           `model.preset: tabular`, nothing else (components/presets.py)
  -<part>          the preset with one part taken out (the config's own key overriding the preset's),
  ~<part>          the preset with one part swapped for an alternative, or
  +<part>          the preset with a candidate the preset leaves out added,
and records the test accuracy of the weights the run ends with (an ensemble's: its mean probability) and the
training loop's seconds (summary.json). Seed s is both the run's seed and dataset.seed: every seed is another
train/validation/test split too. Tables (--tables; iris too): breast_cancer, wine and digits (bundled with
scikit-learn), configs/data/heart.csv (numbers and text categories), and bench/quality.py's tables with text columns
and gaps (penguins, chile, pbc, survey, cars: read by its loaders, written as CSV by its write_csv, trained with
categorical: auto and impute: median; they need `make bench-quality`'s packages).

Runs are in --jobs worker processes (default 1), one torch thread each (`threads: 1`), with the end-of-run plots and
report.html skipped: only training is measured. Writes bench/results/ablation-<time>.json (and .md: the table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

TABLES: dict[str, dict[str, Any]] = {
    "breast_cancer": {"name": "breast_cancer"},
    "wine": {"name": "wine"},
    "digits": {"name": "digits"},
    "heart": {"name": "csv", "path": str(ROOT / "configs" / "data" / "heart.csv"), "target": "disease",
              "categorical": "auto"},
    "iris": {"name": "iris"},
}
QUALITY_TABLES = ["penguins", "chile", "pbc", "survey", "cars"]  # bench/quality.py's, as CSV files
DEFAULT_TABLES = ["breast_cancer", "wine", "digits", "heart", *QUALITY_TABLES]
TABLE_FOLDER = Path(tempfile.gettempdir()) / "clftrain-ablation-tables"

# name -> (what it is, the config's own keys over the preset: dotted key -> value). "default" and "init-before"
# do not use the preset.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "default": ("the plain defaults (dataset only)", {}),
    "init-before": ("clftrain init's recipe before the preset", {}),
    "preset": ("model.preset: tabular", {}),
    "-robust_clip": ("numeric_transform: standard", {"dataset.numeric_transform": "standard"}),
    "~quantile": ("numeric_transform: quantile", {"dataset.numeric_transform": "quantile"}),
    "-input_scale": ("input_scale: false", {"model.input_scale": False}),
    "-even_batches": ("even_batches: false (batches of 256 and a remainder: 259 rows are 256 + 3)",
                      {"train.even_batches": False}),
    "-selu": ("activation: relu", {"model.activation": "relu"}),
    "+lecun_normal": ("init: lecun_normal (SELU's own initialisation)", {"model.init": "lecun_normal"}),
    "+parametric": ("parametric_activation: true (RealMLP's x + a (f(x) - x), a per unit)",
                    {"model.parametric_activation": True}),
    "-dropout": ("dropout: 0", {"model.dropout": 0.0}),
    "+adamw": ("AdamW, weight_decay 0.01 (decoupled)", {"train.optimizer": "adamw", "train.weight_decay": 0.01}),
    "+adamw_0.1": ("AdamW, weight_decay 0.1", {"train.optimizer": "adamw", "train.weight_decay": 0.1}),
    "+warmup_cosine": ("scheduler: warmup_cosine (5% warm-up, then cosine)",
                       {"train.scheduler": {"name": "warmup_cosine", "warmup": 0.05}}),
    "+flat_cos": ("RealMLP's flat_cos: warmup_cosine with warmup 0, hold 0.5",
                  {"train.scheduler": {"name": "warmup_cosine", "warmup": 0.0, "hold": 0.5}}),
    "-label_smoothing": ("label_smoothing: 0", {"train.label_smoothing": 0.0}),
    "+ensemble": ("ensemble: 5 (five members, their mean probability)", {"model.ensemble": 5}),
    "+periodic": ("embedding: periodic", {"model.embedding": "periodic"}),
    "-early_stopping": ("early_stopping: null (all epochs, no validation split)", {"train.early_stopping": None}),
    "~stop_on_acc": ("early_stopping on val_acc (patience 32)",
                     {"train.early_stopping": {"monitor": "val_acc", "patience": 32}}),
    "~best_acc": ("all epochs, the best val_acc epoch's weights (RealMLP's choice)",
                  {"train.early_stopping": {"monitor": "val_acc", "patience": 256}}),
    "~small": ("layers: [64]", {"model.layers": [64]}),
}

INIT_BEFORE = {  # clftrain init's SIZES row for up to 2,000 training rows, before the preset
    "model": {"layers": [16], "activation": "relu"},
    "train": {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0001, "batch_size": None, "epochs": 500,
              "log_every": 50, "early_stopping": {"monitor": "val_loss", "patience": 50}},
}


def config_for(variant: str, table: str, seed: int, epochs: int | None = None) -> dict[str, Any]:
    """The raw config of one run: a table, a variant, a seed (the run's and the split's)."""
    dataset = {**(TABLES[table] if table in TABLES else quality_table(table)), "seed": seed}
    config: dict[str, Any] = {"name": f"{table}-{variant.strip('-~+')}", "seed": seed, "threads": 1, "report": False,
                              "dataset": dataset}
    if variant == "default":
        return config
    if variant == "init-before":
        dataset["val_size"] = 0.15
        return {**config, **json.loads(json.dumps(INIT_BEFORE))}
    config["model"], config["train"] = {"preset": "tabular"}, {}
    for dotted, value in VARIANTS[variant][1].items():
        section, key = dotted.split(".")
        config[section][key] = value
    if epochs is not None:
        config["train"]["epochs"] = epochs
    return config


def quality_table(name: str) -> dict[str, Any]:
    """One of bench/quality.py's tables as a CSV file (written once) and the dataset section that reads it."""
    from bench import quality

    path = TABLE_FOLDER / f"{name}.csv"
    table = quality.TABLES[name]()
    if not path.exists():
        import numpy as np

        TABLE_FOLDER.mkdir(parents=True, exist_ok=True)
        quality.write_csv(path, table, np.arange(len(table.y)))
    return {"name": "csv", "path": str(path), "target": table.target, "categorical": "auto", "impute": "median"}


def train(config: dict[str, Any]) -> dict[str, Any]:
    """One run in this process (its plots and report skipped, its directory removed); its test accuracy, loop
    seconds and epochs."""
    from clftrain.config import validate_config
    from clftrain.runs import fit_run

    resolved = validate_config(config, source=config["name"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clftrain-ablation-") as tmp:
        summary = fit_run(resolved, out=Path(tmp) / "run").summary
    if summary.get("status") != "completed":
        raise RuntimeError(f"{config['name']} seed {config['seed']}: {summary.get('status')}")
    return {"test_acc": summary["final"]["test_acc"], "seconds": summary["seconds"],
            "wall_s": round(time.perf_counter() - started, 3), "epochs": summary["epochs_run"]}


def skip_plots() -> None:
    """The end-of-run figures are not what is measured: fit's drawing step does nothing in this process (and
    no worker pool is started for it)."""
    os.environ["CLFTRAIN_PLOT_PROCESSES"] = "0"
    from clftrain.runs import lifecycle

    def no_plots(recorder, summary, drawer):
        summary.setdefault("timings", {})["plots"] = 0.0
        return None

    lifecycle.draw_plots = no_plots


def summarize(runs: list[dict], tables: list[str], variants: list[str]) -> dict:
    """variant -> table -> {mean, accuracies, seconds} and the mean over the tables."""
    summary: dict[str, dict] = {}
    for variant in variants:
        per_table = {}
        for table in tables:
            mine = [r for r in runs if r["variant"] == variant and r["table"] == table]
            if mine:
                per_table[table] = {"mean_test_acc": statistics.fmean(r["test_acc"] for r in mine),
                                    "test_acc": [r["test_acc"] for r in mine],
                                    "mean_seconds": statistics.fmean(r["seconds"] for r in mine),
                                    "mean_epochs": statistics.fmean(r["epochs"] for r in mine)}
        if per_table:
            summary[variant] = {"tables": per_table,
                                "mean_test_acc": statistics.fmean(t["mean_test_acc"] for t in per_table.values()),
                                "total_seconds": sum(t["mean_seconds"] for t in per_table.values())}
    return summary


def markdown(summary: dict, tables: list[str], seeds: list[int]) -> str:
    """One row per variant: mean test accuracy per table (over the seeds), their mean, the change against the
    preset, and the training seconds of one run of each table added up."""
    head = ["variant", *tables, "mean", "vs preset", "seconds"]
    lines = [f"Mean test accuracy (%) over seeds {', '.join(map(str, seeds))}; seconds: the training loop, one run of "
             "each table added up", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = summary.get("preset", {}).get("mean_test_acc")
    for variant, row in summary.items():
        cells = [f"{100 * row['tables'][t]['mean_test_acc']:.2f}" if t in row["tables"] else "-" for t in tables]
        delta = f"{100 * (row['mean_test_acc'] - base):+.2f}" if base is not None and variant != "preset" else ""
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {100 * row['mean_test_acc']:.2f} | {delta} | "
                     f"{row['total_seconds']:.1f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ablation", description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(DEFAULT_TABLES),
                        help=f"of: {', '.join([*TABLES, *QUALITY_TABLES])}")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (each its own split)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of: {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=None, help="the preset's epochs (default: its own)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process")
    parser.add_argument("--out", type=Path, default=None, help="the results JSON (default: bench/results/...)")
    args = parser.parse_args(argv)
    args.tables, args.variants = args.tables.split(","), args.variants.split(",")
    for kind, names, known in (("table", args.tables, [*TABLES, *QUALITY_TABLES]), ("variant", args.variants,
                                                                                   VARIANTS)):
        unknown = [n for n in names if n not in known]
        if unknown:
            parser.error(f"unknown {kind}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip_plots()
    seeds = list(range(args.seeds))
    for table in args.tables:  # each quality table's CSV written once, here, before any worker reads it
        if table in QUALITY_TABLES:
            quality_table(table)
    plan = [(variant, table, seed) for variant in args.variants for table in args.tables for seed in seeds]
    runs: list[dict] = []
    started = time.perf_counter()

    def record(key, result):
        variant, table, seed = key
        runs.append({"variant": variant, "table": table, "seed": seed, **result})
        print(f"{variant:>18} {table:>14} seed {seed}: test acc {100 * result['test_acc']:6.2f}%  "
              f"{result['seconds']:6.2f} s  {result['epochs']} epochs", flush=True)

    if args.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=skip_plots) as pool:
            futures = {key: pool.submit(train, config_for(*key, args.epochs)) for key in plan}
            for key, future in futures.items():
                record(key, future.result())
    else:
        for key in plan:
            record(key, train(config_for(*key, args.epochs)))
    runs.sort(key=lambda r: plan.index((r["variant"], r["table"], r["seed"])))
    summary = summarize(runs, args.tables, args.variants)
    text = markdown(summary, args.tables, seeds)
    print("\n" + text)
    from bench.quality import measured_commit
    from clftrain.components.presets import PRESETS

    record = {"benchmark": "ablation", "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "tables": args.tables,
              "clftrain": measured_commit(), "load_avg_end": os.getloadavg(),
              "seeds": seeds, "epochs": args.epochs, "jobs": args.jobs, "wall_seconds": round(time.perf_counter() - started, 1),
              "preset": PRESETS.get("tabular").values,
              "variants": {v: VARIANTS[v][0] for v in args.variants}, "summary": summary, "runs": runs,
              "python": sys.version.split()[0], "machine": {"cpus": os.cpu_count()}}
    out = args.out or RESULTS / f"ablation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(text + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
