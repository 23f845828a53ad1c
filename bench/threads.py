"""`threads: auto` against 1 and N threads, quiet and under load: `python -m bench.threads` (`make bench-threads`).

The workload is the one issue 14 reported: 12 seeds of a [32, 32] ReLU MLP as one batched model on a 214-row
table (9 numeric features, 6 classes, generated once), Adam, full batch. Each measurement is a whole
`clftrain fit` process; the figure kept is the training time its summary.json records (`seconds`), so imports,
data and plots do not blur it. Settings are measured in turn (auto, 1, N, auto, 1, N, ...) so that a change in
the machine's load falls on all of them alike; the median of --reps counts.

Three conditions:
  quiet  nothing else running
  half   one other process multiplying matrices with torch on 1 thread (one core of two busy)
  load   two other processes, each multiplying matrices with torch on 2 threads (a plain busy loop does not
         show the problem: the spinning OpenMP threads of the other torch processes do)

Target (issue 14): in each condition, auto's median at most 1.15x the better of 1 and N threads' medians.
Writes bench/results/threads-<time>.json and .md.
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
from contextlib import contextmanager
from pathlib import Path

from bench.run import RESULTS_DIR, clftrain_command, machine_info

TARGET = 1.15
# Another torch program on the same machine: intra-op threads multiplying 256x256 matrices without end.
LOAD = ("import torch\ntorch.set_num_threads({threads})\na = torch.randn(256, 256)\n"
        "while True:\n    a = torch.tanh(a @ a)\n")
# condition -> (other processes, threads each)
CONDITIONS = {"quiet": (0, 0), "half": (1, 1), "load": (2, 2)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="runs of each setting in each condition; the median counts")
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--many", type=int, default=os.cpu_count() or 2, help="N, the thread count compared with 1")
    p.add_argument("--conditions", default="quiet,half,load", help=f"of {', '.join(CONDITIONS)}")
    p.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    unknown = set(args.conditions.split(",")) - set(CONDITIONS)
    if unknown:
        p.error(f"--conditions: unknown {', '.join(sorted(unknown))}; choose from {', '.join(CONDITIONS)}")
    return args


def write_workload(folder: Path, epochs: int) -> Path:
    """The 214-row table and the config that trains 12 seeds of [32, 32] on it."""
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=214, n_features=9, n_informative=6, n_classes=6, n_clusters_per_class=1,
                               random_state=0)
    lines = [",".join([*(f"x{i}" for i in range(9)), "kind"])]
    lines += [",".join([*(f"{v:.5f}" for v in row), f"k{label}"]) for row, label in zip(x, np.asarray(y))]
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    config = folder / "config.yaml"
    config.write_text(f"""name: threads-bench
seeds: [{", ".join(str(s) for s in range(12))}]
dataset: {{name: csv, path: table.csv, target: kind}}
model: {{layers: [32, 32], activation: relu}}
train: {{optimizer: adam, lr: 0.01, epochs: {epochs}, log_every: 1000}}
""")
    return config


@contextmanager
def load(condition: str):
    """The other torch processes of `condition` (none for `quiet`), computing until the block ends."""
    count, threads = CONDITIONS[condition]
    procs = [subprocess.Popen([sys.executable, "-c", LOAD.format(threads=threads)]) for _ in range(count)]
    try:
        time.sleep(2.0 if procs else 0.0)  # let them start computing
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def fit_once(config: Path, threads: str, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | {"CLFTRAIN_PLOT_PROCESSES": "0"}
    proc = subprocess.run([*clftrain_command(), "fit", str(config), "--set", f"threads={threads}", "--out", str(out),
                           "-q"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"clftrain fit failed:\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"training_s": summary["seconds"], "threads": summary["threads"]}


def measure(config: Path, condition: str, settings: list[str], reps: int, tmp: Path) -> dict:
    runs: dict[str, list[dict]] = {s: [] for s in settings}
    with load(condition):
        for rep in range(reps):
            for setting in settings:
                runs[setting].append(fit_once(config, setting, tmp / f"{condition}-{setting}-{rep}"))
    medians = {s: statistics.median(r["training_s"] for r in runs[s]) for s in settings}
    best_fixed = min(medians[s] for s in settings if s != "auto")
    return {"median_training_s": medians, "auto_vs_better_fixed": medians["auto"] / best_fixed, "runs": runs}


def chosen(threads) -> str:
    return str(threads["chosen"] if isinstance(threads, dict) else threads)


def markdown(results: dict, settings: list[str]) -> str:
    lines = ["| condition | " + " | ".join(f"{s} (s)" for s in settings) + " | auto / better fixed | auto chose |",
             "|---|" + "---:|" * len(settings) + "---:|---|"]
    for condition, r in results.items():
        picks = ", ".join(chosen(run["threads"]) for run in r["runs"]["auto"])
        lines.append(f"| {condition} | " + " | ".join(f"{r['median_training_s'][s]:.2f}" for s in settings)
                     + f" | {r['auto_vs_better_fixed']:.2f}x | {picks} |")
    return "\n".join(lines)


def verdicts(results: dict) -> list[str]:
    return [f"{condition}: auto {r['auto_vs_better_fixed']:.2f}x the better fixed count "
            f"(target <= {TARGET}x): {'PASS' if r['auto_vs_better_fixed'] <= TARGET else 'FAIL'}"
            for condition, r in results.items()]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = ["auto", "1", str(args.many)]
    with tempfile.TemporaryDirectory(prefix="clftrain-threads-") as folder:
        tmp = Path(folder)
        config = write_workload(tmp, args.epochs)
        results = {c: measure(config, c, settings, args.reps, tmp) for c in args.conditions.split(",")}
    table, checks = markdown(results, settings), verdicts(results)
    print(table, *checks, sep="\n")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    args.results.mkdir(parents=True, exist_ok=True)
    record = {"workload": "12 seeds x [32, 32] relu, 214 rows x 9 features, 6 classes, adam, full batch",
              "epochs": args.epochs, "reps": args.reps, "machine": machine_info(argparse.Namespace(threads=None)),
              "results": results, "checks": checks}
    (args.results / f"threads-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.results / f"threads-{stamp}.md").write_text(table + "\n\n" + "\n".join(checks) + "\n")
    return 0 if all(c.endswith("PASS") for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
