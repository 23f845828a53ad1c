"""A cross-validated random search as one batched model: `python -m bench.search` (or `make bench-search`).

The search is the issue's example: 50 trials x 5 folds of a small MLP (wine, 13-64-3 ReLU, Adam, batches of 32,
100 epochs, train.lr ~ loguniform(1e-4, 3e-2) and train.weight_decay ~ loguniform(1e-6, 1e-2), --search-seed 0).
Only training loops are timed (trainer.fit(), data and models built beforehand, one torch thread):
  batched      the 250 replicas (50 runs x 5 folds) as one StackedMLP, as `clftrain sweep --cv 5 --trials 50`
  halving      the same with successive halving (rungs at epochs 12 and 34: 50 -> 17 -> 6 runs)
  one by one   each (trial, fold) a solo Trainer on its four training folds, validated on its fold, one after
               another (--sample K of the 250 timed, scaled to 250)
and `clftrain sweep ... --cv 5 --trials 50` as a whole command (every run directory, plots and reports), wall
time. Writes bench/results/search-<time>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
GRID = ["train.lr=loguniform(1e-4,3e-2)", "train.weight_decay=loguniform(1e-6,1e-2)"]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--sample", type=int, default=10, help="solo fits timed for 'one by one' (scaled up)")
    p.add_argument("--no-command", action="store_true", help="skip timing the whole clftrain sweep command")
    p.add_argument("--results", type=Path, default=RESULTS)
    return p.parse_args(argv)


def base_config(epochs: int) -> dict:
    return {"name": "search", "threads": 1, "dataset": {"name": "wine", "standardize": True},
            "model": {"layers": [64]}, "train": {"optimizer": "adam", "batch_size": 32, "epochs": epochs,
                                                "log_every": epochs}}


def plan(config_file: Path, args):
    from clftrain.runs.sweep import plan_sweep

    return plan_sweep(config_file, GRID, trials=args.trials, cv=args.folds)


def time_group(configs, halving: bool) -> tuple[float, int, float]:
    """Seconds of fit, replica-epochs trained, and the best run's mean validation accuracy."""
    from clftrain.training import setup_group
    from clftrain.training.halving import SuccessiveHalving

    group = setup_group(configs)
    trainer = group.trainer
    if halving:
        trainer.callbacks.append(SuccessiveHalving(group.members, "val_acc", True, configs[0].train.epochs))
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    replica_epochs = sum(len(m.history) for m in group.members)  # every replica's evaluated epochs (log_every 1)
    best = max(sum(r["val_acc"] for r in m.last_rows()) / len(m.seeds) for m in group.members)
    return seconds, replica_epochs, best


def time_one_by_one(configs, sample: int) -> float:
    """Seconds for `sample` solo (trial, fold) fits, each on its training folds."""
    import numpy as np
    import torch

    from clftrain.config import validate_config
    from clftrain.data import build_dataset
    from clftrain.training.setup import build_trainer

    dataset = build_dataset(configs[0])
    total, done = 0.0, 0
    for config in configs:
        for fold, seed in enumerate(config.seeds):
            if done == sample:
                return total
            held = dataset.folds[fold]
            kept = np.setdiff1d(np.arange(len(dataset.X_train)), held)
            alone = dataclasses.replace(dataset, X_train=dataset.X_train[kept], y_train=dataset.y_train[kept],
                                        X_val=dataset.X_train[held], y_val=dataset.y_train[held], folds=None)
            data = config.to_dict()
            data["seeds"], data["seed"] = None, seed
            data["dataset"].update(cv_folds=None, val_size=0.1)
            trainer = build_trainer(validate_config(data), alone, torch.device("cpu"))
            start = time.perf_counter()
            trainer.fit()
            total += time.perf_counter() - start
            done += 1
    return total


def time_command(config_file: Path, args, out: Path) -> float:
    command = [sys.executable, "-m", "clftrain", "sweep", str(config_file), *sum((["--grid", g] for g in GRID), []),
               "--trials", str(args.trials), "--cv", str(args.folds), "-o", str(out), "-q"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "search.yaml"
        config_file.write_text(yaml.safe_dump(base_config(args.epochs)))
        configs = [c.config for c in plan(config_file, args).combinations]
        time_group(configs[:2], halving=False)  # warm-up
        batched = time_group(configs, halving=False)
        halved = time_group(configs, halving=True)
        solo = time_one_by_one(configs, args.sample) * (len(configs) * args.folds) / args.sample
        command = None if args.no_command else time_command(config_file, args, Path(tmp) / "sweep")
    replicas = len(configs) * args.folds
    result = {
        "workload": {"table": "wine", "model": "13-64-3 relu", "trials": args.trials, "folds": args.folds,
                     "epochs": args.epochs, "grid": GRID, "threads": 1},
        "batched_s": batched[0], "halving_s": halved[0], "one_by_one_s": solo, "command_s": command,
        "replica_epochs": {"batched": batched[1], "halving": halved[1]},
        "best_val_acc": {"batched": batched[2], "halving": halved[2]},
        "machine": {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"| {replicas} replicas ({args.trials} trials x {args.folds} folds), {args.epochs} epochs | seconds | "
          "replica-epochs | best mean val acc |\n| --- | ---: | ---: | ---: |")
    print(f"| one batched model | {batched[0]:.2f} | {batched[1]:,} | {batched[2]:.4f} |")
    print(f"| one batched model, --halving | {halved[0]:.2f} | {halved[1]:,} | {halved[2]:.4f} |")
    print(f"| one solo fit after another ({args.sample} timed, scaled) | {solo:.2f} | {replicas * args.epochs:,} | |")
    if command is not None:
        print(f"| the whole `clftrain sweep --cv {args.folds} --trials {args.trials}` command | {command:.2f} | | |")
    print(f"batched: {solo / batched[0]:.1f}x faster than one by one; halving: {batched[0] / halved[0]:.2f}x "
          "faster than batched")
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
