"""The benchmark (bench/, `make bench`) runs end to end on a tiny workload and reports what it measured."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import run, workloads  # noqa: E402


def test_bench_driver_end_to_end(tmp_path, capsys):
    results = tmp_path / "results"
    code = run.main(["--workloads", "circles", "--trainers", "bare,clftrain,clftrain-default,clftrain-end",
                     "--epochs", "3", "--rows", "200",
                     "--reps", "1", "--startup-reps", "0", "--results", str(results)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| workload | trainer | train s (median) |" in out
    assert "clftrain <= 1.10x bare" in out  # the targets are checked and printed
    record = json.loads((results / "latest.json").read_text())
    rows = {r["trainer"]: r for r in record["summary"] if "seconds" in r}
    assert set(rows) == {"bare", "clftrain", "clftrain-end"}
    # 3 epochs: the default cadence evaluates every epoch, so its row would repeat clftrain's and is skipped
    (default,) = [r for r in record["summary"] if r["trainer"] == "clftrain-default"]
    assert default["note"].startswith("same as clftrain")
    for row in rows.values():
        assert row["seconds"] > 0 and row["epochs"] == 3
        assert row["rss_peak_mib"] > row["rss_over_imports_mib"] >= 0
    assert rows["bare"]["evaluations"] == rows["clftrain"]["evaluations"] == 3 and rows["clftrain-end"]["evaluations"] == 1
    assert rows["bare"]["ratio"] == pytest.approx(1.0)
    # Same data, same initial weights, same arithmetic: the hand-written loop and clftrain agree.
    assert rows["clftrain"]["test_acc"] == pytest.approx(rows["bare"]["test_acc"], abs=1e-6)
    assert rows["clftrain-end"]["test_acc"] == pytest.approx(rows["bare"]["test_acc"], abs=1e-6)
    assert [r["rep"] for r in record["runs"]] == [0, 0, 0, 0]


def test_csv_workload_gives_every_trainer_clftrains_arrays(tmp_path, monkeypatch):
    from bench import trainers

    monkeypatch.setattr(workloads, "DATA_DIR", tmp_path)
    workload = workloads.WORKLOADS["wide"].scaled(epochs=2, rows=2000)
    via_clftrain = workloads.load(workload)  # clftrain's own CSV dataset
    by_bench = workloads.load(workload, via_clftrain=False)  # the benchmark's reader, clftrain's split
    assert via_clftrain.clftrain_dataset is not None and by_bench.clftrain_dataset is None
    assert (len(by_bench.X_train), len(by_bench.X_test)) == (1600, 400)
    for name in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(by_bench, name), getattr(via_clftrain, name))
    by_hand = trainers.TRAINERS["bare"](workload, by_bench)
    mine = trainers.TRAINERS["clftrain"](workload, via_clftrain)
    assert mine["epochs"] == by_hand["epochs"] == 2
    assert mine["test_acc"] == pytest.approx(by_hand["test_acc"], abs=1e-6)
    assert mine["test_acc"] > 0.6  # it learns


def test_csv_reader_matches_numpy(tmp_path, monkeypatch):
    monkeypatch.setattr(workloads, "DATA_DIR", tmp_path)
    workload = workloads.WORKLOADS["wide"].scaled(rows=1000)
    path = workloads.ensure_csv(workload)
    X, y = workloads.read_csv(path, n_features=20, chunk_rows=300)  # several chunks, a short last one
    reference = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    assert X.dtype == np.float32 and X.shape == (1000, 20) and X.flags.c_contiguous
    np.testing.assert_array_equal(X, reference[:, :20])
    np.testing.assert_array_equal(y, reference[:, 20].astype(np.int64))
    assert set(np.unique(y)) == {0, 1}


def test_startup_probe_reports_heavy_imports(tmp_path):
    out = tmp_path / "help.json"
    subprocess.run([sys.executable, "-m", "bench.probe", "modules", str(out), "--", "clftrain", "--help"],
                   cwd=ROOT, check=True, capture_output=True, timeout=60)
    probe = json.loads(out.read_text())
    assert probe["exit_code"] == 0
    assert probe["modules"] == []  # --help imports no torch, sklearn or matplotlib


def test_unknown_names_are_refused():
    with pytest.raises(SystemExit, match="unknown workload"):
        run.parse_args(["--workloads", "circls"])
    with pytest.raises(SystemExit, match="choose from: .*lightning"):
        run.parse_args(["--trainers", "keras"])
