"""Many seeds as one batched model vs one after another: `python -m bench.replicas` (or `make bench-replicas`).

The workload is bench/workloads.py's `circles` (1,000 samples, 2-10-10-1 ReLU, SGD lr 0.1, 1,000
epochs, full batch, the test split evaluated every epoch as `clftrain fit` does). For each replica
count R it times:
  batched     clftrain.training.setup_group: R replicas (seeds 0..R-1) as one StackedMLP, one loop
  sequential  R solo runs, seeds 0..R-1, each experiment.Session's Trainer with its BestTracker,
              one after another (--sequential-sample K times K of them and scales to R)
Only the training loop is timed (trainer.fit()), after data and model are built, in this process
after a warm-up; with --reps N each measurement runs N times and the fastest counts. It prints a markdown table (seconds, the batched run against one seed, and the
throughput ratio sequential / batched), checks the issue's targets for 32 replicas (under 8x one
seed, at least 4x the sequential throughput), and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
TARGET_REPLICAS, TARGET_VS_ONE_SEED, TARGET_THROUGHPUT = 32, 8.0, 4.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", default="1,8,32,128", help="comma-separated replica counts")
    p.add_argument("--epochs", type=int, default=None, help="cap the epochs (smoke tests)")
    p.add_argument("--rows", type=int, default=None, help="cap the rows (smoke tests)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (the config's device)")
    p.add_argument("--reps", type=int, default=1,
                   help="repetitions of each measurement; the fastest counts (the one other processes disturbed least)")
    p.add_argument("--sequential-sample", type=int, default=None,
                   help="time only this many solo runs per count and scale to R (default: all R)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where replicas-latest.json goes")
    args = p.parse_args(argv)
    args.replicas = [int(n) for n in args.replicas.split(",") if n.strip()]
    return args


def workload_config(args: argparse.Namespace) -> dict:
    from bench.workloads import WORKLOADS

    workload = WORKLOADS["circles"].scaled(epochs=args.epochs, rows=args.rows)
    config = workload.clftrain_config(eval_every=1)
    config["device"] = args.device
    return config


def time_batched(config: dict, replicas: int) -> tuple[float, list[float]]:
    """Seconds of trainer.fit() for `replicas` seeds as one batch, and each replica's final test loss."""
    from clftrain.config import validate_config
    from clftrain.training import setup_group

    group = setup_group([validate_config({**config, "seeds": list(range(replicas))})])
    started = time.perf_counter()
    group.trainer.fit()
    seconds = time.perf_counter() - started
    return seconds, [row["test_loss"] for row in group.members[0].last_rows()]


def time_solo(config: dict, seed: int) -> tuple[float, float]:
    """Seconds of one solo run's trainer.fit() (with its BestTracker, as `clftrain fit`), and its final test loss."""
    from clftrain.config import validate_config
    from clftrain.training import setup_single

    run = setup_single(validate_config({**config, "seed": seed}))
    run.trainer.callbacks = [run.best]
    started = time.perf_counter()
    run.trainer.fit()
    return time.perf_counter() - started, run.trainer.history[-1]["test_loss"]


def measure(args: argparse.Namespace) -> list[dict]:
    import statistics

    config = workload_config(args)
    time_batched(config, 2)  # warm-up: imports, first optimizer, allocator
    rows = []
    for replicas in args.replicas:
        runs = [time_batched(config, replicas) for _ in range(args.reps)]
        batched, batched_losses = min(runs)
        sample = min(replicas, args.sequential_sample or replicas)
        solos = [min(time_solo(config, seed) for _ in range(args.reps)) for seed in range(sample)]
        sequential = sum(seconds for seconds, _ in solos) * replicas / sample
        difference = max(abs(loss - batched_losses[seed]) for seed, (_, loss) in enumerate(solos))
        rows.append({"replicas": replicas, "batched_s": batched, "sequential_s": sequential,
                     "sequential_measured": sample, "one_seed_s": solos[0][0],
                     "max_test_loss_difference": difference})
        print(f"  {replicas:4d} replicas: batched {batched:.2f} s, sequential {sequential:.2f} s", flush=True)
    one_seed = next((r["sequential_s"] for r in rows if r["replicas"] == 1), None)
    one_seed = one_seed or statistics.median(r["one_seed_s"] for r in rows)
    for row in rows:
        row["vs_one_seed"] = row["batched_s"] / one_seed
        row["throughput"] = row["sequential_s"] / row["batched_s"]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| replicas | batched s | sequential s | batched / one seed | throughput (sequential / batched) "
             "| max test-loss difference |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        estimated = "" if r["sequential_measured"] == r["replicas"] else f" (from {r['sequential_measured']})"
        lines.append(f"| {r['replicas']} | {r['batched_s']:.2f} | {r['sequential_s']:.2f}{estimated} "
                     f"| {r['vs_one_seed']:.2f}x | {r['throughput']:.1f}x | {r['max_test_loss_difference']:.1e} |")
    return "\n".join(lines)


def checks(rows: list[dict]) -> list[str]:
    target = next((r for r in rows if r["replicas"] == TARGET_REPLICAS), None)
    if target is None:
        return [f"(targets are for {TARGET_REPLICAS} replicas: not measured)"]
    return [
        f"{TARGET_REPLICAS} replicas in {target['vs_one_seed']:.2f}x the time of one seed (target < "
        f"{TARGET_VS_ONE_SEED:g}x): {'ok' if target['vs_one_seed'] < TARGET_VS_ONE_SEED else 'MISSED'}",
        f"{TARGET_REPLICAS} replicas at {target['throughput']:.1f}x the throughput of one after another (target >= "
        f"{TARGET_THROUGHPUT:g}x): {'ok' if target['throughput'] >= TARGET_THROUGHPUT else 'MISSED'}",
    ]


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device if args.device != "cuda" or not torch.cuda.is_available() else torch.cuda.get_device_name()
    header = (f"circles, {args.epochs or 1000} epochs full batch, on {device} with {torch.get_num_threads()} "
              f"torch thread(s), {platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"replicas benchmark: {header}", flush=True)
    rows = measure(args)
    print()
    print(table(rows))
    print()
    for line in checks(rows):
        print(line)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "replicas-latest.json").write_text(json.dumps({"setup": header, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
