"""Streamed tables (dataset.stream): the first pass, the hashed split, training through the shuffle buffer,
evaluation a block at a time, resume, predict of a large input, and the errors, on small generated tables
(a streamed run and an in-memory run of one table must agree)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import tiny_config
from test_parquet import write_csv
from test_resume import InterruptAtStep, metrics_without_time, weights

from clftrain.config import load_config
from clftrain.data import build_dataset, table_batches
from clftrain.data.hashed_split import hashed_parts, split_codes
from clftrain.runs import fit_run, resume_run


def table(rows: int, seed: int = 0) -> pa.Table:
    """Numbers with gaps, a category with gaps, an identifier, text labels that depend on all three."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows) * 10 + 3
    colour = rng.choice(["red", "green", "blue"], size=rows)
    label = np.where(x1 + x2 / 10 + (colour == "red") > 0.6, "sick", "well")
    x2_gaps = [None if i % 13 == 0 else round(float(v), 4) for i, v in enumerate(x2)]
    colour_gaps = [None if i % 17 == 0 else str(c) for i, c in enumerate(colour)]
    return pa.table({"id": np.arange(rows), "x1": np.round(x1, 5), "x2": pa.array(x2_gaps, pa.float64()),
                     "colour": pa.array(colour_gaps, pa.string()), "label": label})


def config_of(path, train=None, **dataset) -> dict:
    name = "csv" if str(path).endswith(".csv") else "parquet"
    config = tiny_config(train={"epochs": 6, "log_every": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.01,
                                **(train or {})})
    config["dataset"] = {"name": name, "path": str(path), "target": "label", "categorical": "auto",
                         "impute": "median", "split": "hash", **dataset}
    return config


@pytest.fixture
def small_csv(tmp_path):
    path = tmp_path / "t.csv"
    write_csv(table(1500), path)
    return path


def test_hashed_split_is_a_function_of_position_and_seed():
    a = split_codes(np.arange(100_000), seed=3, test_size=0.2, val_size=0.1)
    assert np.array_equal(a[500:600], split_codes(np.arange(500, 600), 3, 0.2, 0.1))  # any block alone: the same
    assert abs((a == 2).mean() - 0.2) < 0.005 and abs((a == 1).mean() - 0.1) < 0.005
    assert not np.array_equal(a, split_codes(np.arange(100_000), 4, 0.2, 0.1))
    parts = hashed_parts(1000, 3, 0.2, 0.0)
    assert set(parts) == {"train", "test"} and len(parts["train"]) + len(parts["test"]) == 1000


def test_streamed_and_in_memory_give_the_same_split_preprocessing_and_metrics(write_config, tmp_path, small_csv):
    memory = load_config(write_config(config_of(small_csv, stream=False, val_size=0.2), "memory.yaml"))
    streamed = load_config(write_config(config_of(small_csv, stream=True, val_size=0.2), "streamed.yaml"))
    a, b = build_dataset(memory), build_dataset(streamed)
    assert b.stream is not None and a.stream is None
    assert {s: a.rows(s) for s in ("train", "val", "test")} == b.stream.sizes
    pa_, pb = a.preprocessor, b.preprocessor
    assert pa_.numeric == pb.numeric == ["x1", "x2"] and pa_.categorical == pb.categorical
    assert pa_.fill["colour"] == pb.fill["colour"]
    np.testing.assert_allclose([pa_.fill["x1"], pa_.fill["x2"], *pa_.mean, *pa_.std],
                               [pb.fill["x1"], pb.fill["x2"], *pb.mean, *pb.std], rtol=1e-6)
    np.testing.assert_allclose(a.X_train, b.X_train, atol=1e-6)  # small splits: the sample is the whole split
    assert np.array_equal(a.y_train, b.y_train) and a.notes and b.notes  # 'id' left out by both

    fit_run(memory, out=tmp_path / "memory")
    fit_run(streamed, out=tmp_path / "streamed")  # the training rows fit in the shuffle buffer: in-memory order
    rows_a, rows_b = metrics_without_time(tmp_path / "memory"), metrics_without_time(tmp_path / "streamed")
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for key in ra:
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-5, abs=1e-7), key
    summary = json.loads((tmp_path / "streamed" / "summary.json").read_text())
    assert summary["data"]["stream"]["streamed"] is True and summary["data"]["train"] == a.rows("train")


@pytest.mark.parametrize("impute", ["median", "mean"])
def test_robust_clip_streamed_is_the_in_memory_one(write_config, small_csv, impute):
    """robust_clip's quartiles from exact order statistics of the spill (with the imputed cells), as np.quantile."""
    config = {**config_of(small_csv, numeric_transform="robust_clip", impute=impute)}
    a = build_dataset(load_config(write_config({**config, "dataset": {**config["dataset"], "stream": False}}, "a.yaml")))
    b = build_dataset(load_config(write_config({**config, "dataset": {**config["dataset"], "stream": True}}, "b.yaml")))
    assert a.preprocessor.numeric_transform == b.preprocessor.numeric_transform == "robust_clip"
    np.testing.assert_allclose(a.preprocessor.mean + a.preprocessor.std, b.preprocessor.mean + b.preprocessor.std,
                               rtol=1e-6)
    np.testing.assert_allclose(a.X_train, b.X_train, atol=1e-6)


def test_the_shuffle_buffer_sees_every_training_row_once_an_epoch_and_learns(write_config, tmp_path, monkeypatch):
    monkeypatch.setattr(table_batches, "BLOCK_BYTES", 20_000)  # many blocks
    path = tmp_path / "t.csv"
    write_csv(table(6000), path)
    config = load_config(write_config(config_of(path, stream=True, shuffle_buffer=700, test_size=0.25,
                                                features=["id", "x1", "x2", "colour"], standardize=False,
                                                train={"epochs": 12, "log_every": 12})))
    from clftrain.training import setup_single

    setup = setup_single(config)
    trainer = setup.trainer
    assert type(trainer.splits["train"]).__name__ == "StreamSplit" and len(setup.dataset.stream.blocks) > 5
    ids = [X[:, 0] for X, _ in trainer.shuffled_batches()]  # feature 0: the row's id, unscaled
    seen = torch.cat(ids).numpy()
    train_ids = np.flatnonzero(split_codes(np.arange(6000), config.dataset.seed, 0.25, 0.0) == 0)
    assert np.array_equal(np.sort(seen), train_ids)  # every training row once
    assert all(len(b) == 64 for b in ids[:-1])
    assert np.corrcoef(np.arange(len(seen)), seen)[0, 1] < 0.5  # not file order
    result = fit_run(config, out=tmp_path / "run")
    assert result.summary["final"]["test_acc"] > 0.8


def test_a_streamed_epoch_interrupted_between_steps_resumes_bit_for_bit(write_config, tmp_path, monkeypatch):
    monkeypatch.setattr(table_batches, "BLOCK_BYTES", 20_000)
    path = tmp_path / "t.csv"
    write_csv(table(3000), path)
    config_path = write_config(config_of(path, stream=True, shuffle_buffer=500, val_size=0.1,
                                          train={"epochs": 4, "log_every": 1}))
    fit_run(load_config(config_path), out=tmp_path / "straight")
    result = fit_run(load_config(config_path), out=tmp_path / "stopped", callbacks=[InterruptAtStep(50)])
    assert result.summary["status"] == "interrupted" and "epoch_in_progress" in result.summary
    resumed = resume_run(tmp_path / "stopped")
    assert resumed.summary["status"] == "completed"
    assert metrics_without_time(tmp_path / "stopped") == metrics_without_time(tmp_path / "straight")
    mine, theirs = weights(tmp_path / "stopped"), weights(tmp_path / "straight")
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_parquet_folder_streams_like_the_csv(write_config, tmp_path, small_csv):
    data = table(1500)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, 1500, 400)):  # four files, in name order
        pq.write_table(data.slice(start, 400), folder / f"part-{i}.parquet", row_group_size=150)
    a = build_dataset(load_config(write_config(config_of(small_csv, stream=True), "csv.yaml")))
    b = build_dataset(load_config(write_config(config_of(folder, stream=True), "parquet.yaml")))
    assert a.stream.sizes == b.stream.sizes and a.preprocessor.categorical == b.preprocessor.categorical
    np.testing.assert_allclose(a.X_test, b.X_test, atol=1e-6)
    assert np.array_equal(a.y_test, b.y_test) and len(b.stream.blocks) == 4  # a block per file


def test_eval_and_predict_of_a_streamed_run(write_config, tmp_path, small_csv, cli):
    config = write_config(config_of(small_csv, stream=True))
    assert cli("fit", config, "--out", tmp_path / "run", "-q").exit_code == 0
    result = cli("eval", tmp_path / "run")
    assert result.exit_code == 0 and "Reproduces exactly" in result.output
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["data"]["rows"] == build_dataset(load_config(config)).rows("test")

    assert cli("predict", tmp_path / "run", small_csv, "-o", tmp_path / "whole.csv").exit_code == 0
    assert cli("predict", tmp_path / "run", small_csv, "--stream", "-o", tmp_path / "streamed.csv").exit_code == 0
    parquet = tmp_path / "t.parquet"
    pq.write_table(table(1500), parquet)
    assert cli("predict", tmp_path / "run", parquet, "-o", tmp_path / "out.parquet").exit_code == 0
    whole = list(csv.DictReader((tmp_path / "whole.csv").read_text().splitlines()))
    streamed = list(csv.DictReader((tmp_path / "streamed.csv").read_text().splitlines()))
    from_parquet = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert len(whole) == len(streamed) == len(from_parquet) == 1500
    from clftrain.inference import evaluate_run

    on_csv, on_parquet = evaluate_run(tmp_path / "run", data=small_csv), evaluate_run(tmp_path / "run", data=parquet)
    assert on_parquet["data"]["streamed"] and on_parquet["data"]["rows"] == on_csv["data"]["rows"] == 1500
    assert on_parquet["metrics"]["accuracy"] == on_csv["metrics"]["accuracy"]
    assert on_parquet["metrics"]["loss"] == pytest.approx(on_csv["metrics"]["loss"], rel=1e-6)
    for w, s, p in zip(whole, streamed, from_parquet):
        assert w["predicted"] == s["predicted"] == p["predicted"]
        assert float(s["prob_sick"]) == pytest.approx(float(w["prob_sick"]), abs=1e-6)
        assert p["prob_sick"] == pytest.approx(float(w["prob_sick"]), abs=1e-6)


def test_a_bad_cell_deep_in_the_file_is_named_and_nothing_is_written(write_config, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(table_batches, "BLOCK_BYTES", 50_000)  # the bad cell many blocks after the first
    path = tmp_path / "t.csv"
    write_csv(table(30_000), path)
    lines = path.read_text().splitlines()
    cells = lines[25_000].split(",")
    cells[1] = "abc"  # data row 25,000, column x1
    lines[25_000] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    result = cli("fit", write_config(config_of(path, stream=True)), "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert "row 25,000, column 'x1'" in result.output and str(path) in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.parametrize("dataset, train, expected", [
    ({"stream": True}, {"batch_size": None}, "do not fit in dataset.shuffle_buffer"),
    ({"memory_limit": "lots"}, {}, "is not a size"),
    ({"stream": True, "impute": None}, {}, "missing values in 'x2'"),
])
def test_streamed_config_errors(write_config, tmp_path, small_csv, cli, dataset, train, expected):
    config = config_of(small_csv, train=train, shuffle_buffer=100, **dataset)
    result = cli("fit", write_config(config), "--out", tmp_path / "run")
    assert result.exit_code == 2 and expected in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_seeds_and_sweeps_of_a_streamed_table_are_refused(write_config, tmp_path, small_csv, cli):
    config = write_config(config_of(small_csv, stream=True))
    result = cli("fit", config, "--seeds", "0-1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "one seed, in one process" in result.output and not (tmp_path / "r").exists()
    result = cli("sweep", config, "--grid", "train.lr=0.01,0.02", "--out", tmp_path / "s")
    assert result.exit_code == 2 and "sweeps need it in memory" in result.output and not (tmp_path / "s").exists()


def test_stream_auto_streams_past_the_memory_limit(write_config, tmp_path, small_csv):
    data = build_dataset(load_config(write_config(config_of(small_csv, memory_limit="10kB"))))
    assert data.stream is not None
    assert build_dataset(load_config(write_config(config_of(small_csv), "default.yaml"))).stream is None


def test_the_spill_file_leaves_nothing_in_the_temporary_folder(write_config, small_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    tempfile.tempdir = None  # read TMPDIR again
    try:
        data = build_dataset(load_config(write_config(config_of(small_csv, stream=True))))
        assert data.stream.blocks and not list((tmp_path / "tmp").iterdir())  # unlinked while open
    finally:
        tempfile.tempdir = None


# ---------------------------------------------------------------------- under torchrun (2 gloo ranks)
SHARES = """
import json, sys
import torch
from clftrain.config import load_config
from clftrain.training import setup_single

setup = setup_single(load_config(sys.argv[1]))
trainer, rank = setup.trainer, setup.trainer.world.rank
ids = torch.cat([X[:, 0] for X, _, counted in trainer._epoch_batches() if counted]).tolist()
held = {name: [int(v) for X, _ in split.batches() for v in X[:, 0].tolist()]
        for name, split in trainer.splits.items() if name != "train"}
steps = sum(1 for _ in trainer._epoch_batches())
json.dump({"train": ids, "steps": steps, **held}, open(f"{sys.argv[2]}-{rank}.json", "w"))
"""


def parquet_parts(tmp_path, rows: int = 4000, files: int = 5):
    folder = tmp_path / "parts"
    folder.mkdir()
    data = table(rows)
    for i in range(files):
        pq.write_table(data.slice(i * rows // files, rows // files), folder / f"part-{i}.parquet")
    return folder


def test_each_rank_reads_a_disjoint_share_and_together_every_row(write_config, tmp_path):
    import subprocess
    import sys

    from test_distributed import ENV

    folder = parquet_parts(tmp_path)
    config = write_config(config_of(folder, stream=True, shuffle_buffer=300, val_size=0.1, standardize=False,
                                    features=["id", "x1", "x2", "colour"]))
    script = tmp_path / "shares.py"
    script.write_text(SHARES)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
               str(config), str(tmp_path / "seen")]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((tmp_path / f"seen-{r}.json").read_text()) for r in (0, 1)]
    codes = split_codes(np.arange(4000), 42, 0.2, 0.1)
    assert seen[0]["steps"] == seen[1]["steps"] > 0  # every rank the same number of steps
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        a, b = set(seen[0][name]), set(seen[1][name])
        assert not a & b and len(seen[0][name]) + len(seen[1][name]) == len(a | b), name  # disjoint, once each
        assert a | b == set(np.flatnonzero(codes == code).tolist()), name  # together: the whole split


def test_a_streamed_run_under_torchrun(write_config, tmp_path):
    from test_distributed import assert_same_numbers, one_process, torchrun

    folder = parquet_parts(tmp_path)
    # The training rows fit in the buffer: the ranks shard each global batch, as in memory, and the numbers are
    # one process's.
    whole = write_config(config_of(folder, stream=True, val_size=0.1), "whole.yaml")
    assert torchrun(whole, "--out", tmp_path / "ranks", "-q").returncode == 0
    assert one_process(whole, "--out", tmp_path / "one", "-q").returncode == 0
    assert_same_numbers(tmp_path / "ranks", tmp_path / "one", rel=1e-5)
    # Past the buffer: each rank streams its share; one run directory, evaluated in one process like any run.
    shares = write_config(config_of(folder, stream=True, shuffle_buffer=300, val_size=0.1,
                                    train={"epochs": 8, "log_every": 4}), "shares.yaml")
    result = torchrun(shares, "--out", tmp_path / "shares")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "shares" / "summary.json").read_text())
    assert summary["distributed"]["world_size"] == 2 and summary["final"]["test_acc"] > 0.8
    from clftrain.inference import evaluate_run

    report = evaluate_run(tmp_path / "shares")
    recorded, reproduced = report["fit_check"]["recorded"], report["fit_check"]["reproduced"]
    assert reproduced["test_acc"] == recorded["test_acc"]
    assert reproduced["test_loss"] == pytest.approx(recorded["test_loss"], rel=1e-6)
