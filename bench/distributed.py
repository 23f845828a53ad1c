"""Data-parallel fit against one process: `python -m bench.distributed` (`make bench-distributed`).

The `big` workload of bench/workloads.py (200,000 x 20 make_classification, 20-64-64-1 ReLU, Adam 1e-3, global
batch 256, 5 epochs) trained as whole `clftrain fit` processes: one process on one thread, and `--nproc N`
ranks on one thread each (gloo on the CPU; `--device cuda` for NCCL, one GPU per rank). The figure kept is the
training time summary.json records (`seconds`: data generation, imports and plots left out), turned into
optimizer steps per second; repetitions interleaved, the median counts.

Targets (issue 12, 2 cores): 2 ranks at least 1.3x the one-process throughput on `big`, and 1.6x on the
32-seed replica workload: `fit --seeds 0-31` of circles (32 replicas of [32, 32], full batch, 1,000 epochs),
one process holding all 32 vs `--nproc N`, each rank training its slice of the seeds (rank 0's `seconds`).
Beside it, a sweep's batches dealt over the processes: `sweep --grid model.activation=relu,tanh --seeds 0-15`
of the same (two batches of 16 seeds), its training time the slowest process's sum of its batches' `seconds`
(sweep.csv). `--workloads` picks among big, seeds, sweep.
Writes bench/results/distributed-<time>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from bench.run import RESULTS_DIR, clftrain_command, machine_info

TARGET = 1.3
SEED_TARGET = 1.6
BIG = {"name": "big-distributed", "threads": 1,
       "dataset": {"name": "classification", "n_samples": 200_000, "n_features": 20, "n_informative": 10,
                   "n_redundant": 5, "n_classes": 2, "test_size": 0.2, "seed": 42},
       "model": {"layers": [64, 64], "activation": "relu"},
       "train": {"optimizer": "adam", "lr": 1e-3, "epochs": 5, "batch_size": 256, "log_every": 1}}


SWEEP = {"name": "sweep-distributed", "threads": 1, "dataset": {"name": "circles", "n_samples": 1000, "noise": 0.03},
         "model": {"layers": [32, 32]}, "train": {"optimizer": "adam", "lr": 0.01, "epochs": 1000, "log_every": 100}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--nproc", type=int, default=2, help="ranks compared with one process")
    p.add_argument("--epochs", type=int, default=BIG["train"]["epochs"])
    p.add_argument("--rows", type=int, default=BIG["dataset"]["n_samples"])
    p.add_argument("--batch", type=int, default=BIG["train"]["batch_size"], help="the global batch")
    p.add_argument("--sweep-epochs", type=int, default=SWEEP["train"]["epochs"])
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL)")
    p.add_argument("--workloads", default="big,seeds,sweep", help="comma-separated: big, seeds, sweep")
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def fit_once(config: Path, nproc: int, out: Path, extra: tuple[str, ...] = ()) -> dict:
    env = {**os.environ, "CLFTRAIN_PLOT_PROCESSES": "0", "OMP_NUM_THREADS": "1"}
    launch = ["--nproc", str(nproc)] if nproc > 1 else []
    proc = subprocess.run([*clftrain_command(), "fit", str(config), *extra, *launch, "--out", str(out), "-q"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"clftrain fit failed:\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"training_s": summary["seconds"], "test_acc": summary["final"]["test_acc"],
            "distributed": summary.get("distributed")}


def sweep_once(config: Path, nproc: int, out: Path) -> float:
    """The sweep's training seconds: per process, the sum of its batches' (a batch's runs share its time)."""
    import csv

    env = {**os.environ, "CLFTRAIN_PLOT_PROCESSES": "0", "OMP_NUM_THREADS": "1"}
    launch = ["--nproc", str(nproc)] if nproc > 1 else []
    proc = subprocess.run([*clftrain_command(), "sweep", str(config), "--grid", "model.activation=relu,tanh",
                           "--seeds", "0-15", *launch, "--out", str(out), "-q"], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"clftrain sweep failed:\n{proc.stderr[-2000:]}")
    batches: dict[int, float] = {}
    for row in csv.DictReader((out / "sweep.csv").open()):
        batches[int(row["batch"])] = max(batches.get(int(row["batch"]), 0.0), float(row["seconds"]))
    per_process = [sum(s for b, s in batches.items() if (b - 1) % nproc == rank) for rank in range(nproc)]
    return max(per_process)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = args.workloads.split(",")
    config = {**BIG, "device": args.device, "dataset": {**BIG["dataset"], "n_samples": args.rows},
              "train": {**BIG["train"], "epochs": args.epochs, "batch_size": args.batch}}
    replicas = {**SWEEP, "device": args.device, "train": {**SWEEP["train"], "epochs": args.sweep_epochs}}
    train_rows = math.floor(args.rows * (1 - BIG["dataset"]["test_size"]))
    steps = args.epochs * math.ceil(train_rows / args.batch)
    counts = (1, args.nproc)
    seconds: dict[str, dict[int, list[float]]] = {name: {n: [] for n in counts} for name in chosen}
    accuracy: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="clftrain-distributed-") as folder:
        big, small = Path(folder) / "big.yaml", Path(folder) / "replicas.yaml"
        big.write_text(yaml.safe_dump(config))
        small.write_text(yaml.safe_dump(replicas))
        for rep in range(args.reps):  # interleaved: a slower minute hits every figure alike
            for n in counts:
                out = Path(folder) / f"{n}-{rep}"
                if "big" in chosen:
                    run = fit_once(big, n, out / "big")
                    seconds["big"][n].append(run["training_s"])
                    accuracy[n].append(run["test_acc"])
                if "seeds" in chosen:
                    seconds["seeds"][n].append(fit_once(small, n, out / "seeds", ("--seeds", "0-31"))["training_s"])
                if "sweep" in chosen:
                    seconds["sweep"][n].append(sweep_once(small, n, out / "sweep"))
    medians = {name: {n: statistics.median(v) for n, v in by_n.items()} for name, by_n in seconds.items()}
    speedups = {name: m[1] / m[args.nproc] for name, m in medians.items()}
    labels = {"big": f"big, batch {args.batch}", "seeds": "fit --seeds 0-31 (32 replicas)",
              "sweep": "sweep, 2 batches x 16 seeds"}
    targets = {"big": TARGET, "seeds": SEED_TARGET}
    lines = ["| workload | processes | training s (median) | steps/s | x one process | test acc |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in medians.items():
        for n in counts:
            rate = f"{steps / m[n]:.0f}" if name == "big" else f"{args.sweep_epochs / m[n]:.0f}"
            acc = f"{statistics.median(accuracy[n]):.2%}" if name == "big" else "-"
            lines.append(f"| {labels[name]} | {n} | {m[n]:.2f} | {rate} | {m[1] / m[n]:.2f}x | {acc} |")
    checks = [f"{labels[name]}: {args.nproc} processes {speedups[name]:.2f}x one process (target >= "
              f"{targets[name]}x): {'PASS' if speedups[name] >= targets[name] else 'FAIL'}"
              for name in medians if name in targets]
    checks += [f"{labels['sweep']}: {args.nproc} processes {speedups['sweep']:.2f}x one process"] if "sweep" in medians \
        else []
    table = "\n".join(lines)
    print(table, *checks, sep="\n")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    record = {"workloads": {"big": config, "replicas": replicas}, "rows": args.rows, "epochs": args.epochs,
              "steps": steps, "device": args.device, "reps": args.reps,
              "machine": machine_info(argparse.Namespace(threads=1)), "training_s": seconds,
              "median_training_s": medians, "speedup": speedups, "test_acc": accuracy, "checks": checks}
    (args.results / f"distributed-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.results / f"distributed-{stamp}.md").write_text(table + "\n\n" + "\n".join(checks) + "\n")
    return 0 if all(not c.endswith("FAIL") for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
