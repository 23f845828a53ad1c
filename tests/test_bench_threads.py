"""bench/threads.py (`make bench-threads`) runs end to end on a tiny workload and reports what it measured."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import threads  # noqa: E402


def test_threads_benchmark_end_to_end(tmp_path, capsys):
    code = threads.main(["--reps", "1", "--epochs", "15", "--many", "2", "--conditions", "quiet",
                         "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert "| condition | auto (s) | 1 (s) | 2 (s) | auto / better fixed | auto chose |" in out
    assert "quiet: auto " in out and "the better fixed count (target <= 1.15x)" in out
    assert code == (0 if out.rstrip().endswith("PASS") else 1)
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("threads-*.json")]
    quiet = record["results"]["quiet"]
    assert set(quiet["median_training_s"]) == {"auto", "1", "2"}
    assert all(v > 0 for v in quiet["median_training_s"].values())
    assert [run["threads"] for run in quiet["runs"]["1"]] == [1]  # a fixed count is what summary.json records


def test_threads_benchmark_refuses_an_unknown_condition(capsys):
    with pytest.raises(SystemExit) as exit_info:
        threads.main(["--conditions", "quiet,stormy"])
    assert exit_info.value.code == 2
    assert "--conditions: unknown stormy; choose from quiet, half, load" in capsys.readouterr().err
