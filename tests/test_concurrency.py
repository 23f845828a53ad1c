"""Two `fit` processes started together with the same config never share a run directory."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import tiny_config


def test_simultaneous_runs_get_separate_directories(write_config, tmp_path):
    path = write_config(tiny_config(train={"epochs": 30}))
    command = [sys.executable, "-m", "clftrain", "fit", str(path), "-q"]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs_run"] == 30
        assert len((run / "metrics.csv").read_text().splitlines()) == 31  # header + one row per epoch, no mixing
    # each process printed its own directory
    assert {line.split(": ", 1)[1] for out in outputs for line in out.splitlines() if line.startswith("Run directory")} \
        == {f"runs/{run.name}" for run in runs}
