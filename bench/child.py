"""One measurement in its own process: `python -m bench.child WORKLOAD TRAINER [--epochs N] [--rows N]`.

Prints one JSON object: the trainer's result plus data loading time, CPU time of the
training call, and memory: peak RSS at the end (getrusage ru_maxrss) and the peak before
the data was loaded (after the imports), so one trainer's memory never pollutes another's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

PROCESS_STARTED = time.perf_counter()


def rss_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    parser.add_argument("workload")
    parser.add_argument("trainer")
    parser.add_argument("--epochs", type=int, default=None, help="cap the workload's epochs (smoke tests)")
    parser.add_argument("--rows", type=int, default=None, help="cap the workload's rows (smoke tests)")
    parser.add_argument("--json", default=None, help="write the result here (default: stdout)")
    args = parser.parse_args(argv)

    from bench import trainers, workloads

    workload = workloads.WORKLOADS[args.workload].scaled(args.epochs, args.rows)
    run = trainers.TRAINERS[args.trainer]
    trainers.preload(args.trainer, workload)
    import torch

    if os.environ.get("BENCH_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))

    result: dict = {"workload": workload.name, "trainer": args.trainer, "torch_threads": torch.get_num_threads(),
                    "import_seconds": time.perf_counter() - PROCESS_STARTED, "rss_after_imports_mib": rss_peak_mib()}
    data = workloads.load(workload, via_clftrain=args.trainer in trainers.VIA_CLFTRAIN)
    result.update(load_seconds=data.load_seconds, data_source=data.source, n_train=len(data.X_train),
                  n_test=len(data.X_test), n_features=data.n_features,
                  data_float32_mib=(data.X_train.size + data.X_test.size + len(data.y_train) + len(data.y_test))
                  * 4 / 2**20,
                  rss_after_data_mib=rss_peak_mib())
    cpu_before = cpu_seconds()
    result.update(run(workload, data))
    result["cpu_seconds"] = cpu_seconds() - cpu_before
    result["rss_peak_mib"] = rss_peak_mib()
    result["rss_over_imports_mib"] = result["rss_peak_mib"] - result["rss_after_imports_mib"]
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
