"""bench/distributed.py (`make bench-distributed`) runs end to end on a tiny workload and reports what it measured."""

from __future__ import annotations

import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import distributed  # noqa: E402


def test_distributed_benchmark_end_to_end(tmp_path, capsys):
    # Two of the three workloads (each costs two launches, one of 1 and one of 2 processes): `big` is a fit with a
    # speed target, `sweep` the sweep command; `seeds` is a fit like `big` with --seeds.
    code = distributed.main(["--reps", "1", "--rows", "2000", "--epochs", "1", "--sweep-epochs", "5",
                             "--workloads", "big,sweep", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    for row in ("| big, batch 256 | 2 |", "| sweep, 2 batches x 16 seeds | 2 |"):
        assert row in out
    assert "| fit --seeds 0-31 (32 replicas) |" not in out  # not chosen, not run
    assert "big, batch 256: 2 processes " in out and "sweep, 2 batches x 16 seeds: 2 processes " in out
    assert code == (0 if out.count("PASS") == 1 else 1)
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("distributed-*.json")]
    assert record["steps"] == 7  # 1,600 training rows in batches of 256, one epoch
    assert set(record["speedup"]) == {"big", "sweep"} and all(v > 0 for v in record["speedup"].values())
    assert all(len(record["training_s"][name]["2"]) == 1 for name in ("big", "sweep"))
