"""bench/replicas.py (`make bench-replicas`) runs end to end on a tiny workload and reports what it measured."""

from __future__ import annotations

import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import replicas  # noqa: E402


def test_replicas_benchmark_end_to_end(tmp_path, capsys):
    code = replicas.main(["--replicas", "1,2,32", "--epochs", "3", "--rows", "100", "--sequential-sample", "2",
                          "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| replicas | batched s | sequential s | batched / one seed | throughput (sequential / batched) |" in out
    assert "| 32 |" in out and "(from 2)" in out  # 32 solo runs estimated from 2
    assert "32 replicas in " in out and "the time of one seed (target < 8x)" in out
    record = json.loads((tmp_path / "replicas-latest.json").read_text())
    rows = {row["replicas"]: row for row in record["rows"]}
    assert rows[1]["throughput"] > 0 and rows[2]["sequential_measured"] == 2
    assert all(row["max_test_loss_difference"] < 1e-5 for row in rows.values())  # the same runs, batched or not
