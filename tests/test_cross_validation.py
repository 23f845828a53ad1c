"""Cross-validation (`dataset.cv_folds`, `clftrain sweep --cv K`): each fold's replica trains on the other folds
and is scored on its own, all folds of a run as one batched model."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import tiny_config
from trained_runs import invoke, metrics_rows

from clftrain.config import validate_config
from clftrain.data import build_dataset
from clftrain.training import setup_group
from clftrain.training.setup import build_trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOLERANCE = 1e-5  # one batched matmul against a small one per replica: float32 rounding, as in test_multiseed


def cv_config(**dataset) -> dict:
    # blobs draws 125 rows per centre; the stratified test split keeps 100 of each, so 4 folds of 25 + 25 rows:
    # every fold's replica trains on exactly its 150 rows, in the order its solo run would draw.
    return tiny_config(dataset={"name": "blobs", "centers": 2, "n_samples": 250, "cluster_std": 3.0,
                                "cv_folds": 4, **dataset},
                       train={"epochs": 6, "log_every": 1, "batch_size": 32, "optimizer": "adam", "lr": 0.01})


def test_folds_are_stratified_disjoint_and_cover_the_training_rows():
    config = validate_config(cv_config())
    dataset = build_dataset(config)
    folds = dataset.folds
    assert len(folds) == 4 and dataset.X_val is None
    every = np.sort(np.concatenate(folds))
    assert np.array_equal(every, np.arange(len(dataset.X_train)))  # each row in exactly one fold
    for rows in folds:
        assert np.bincount(dataset.y_train[rows].ravel().astype(int), minlength=2).tolist() == [25, 25]
    assert config.seeds == [42, 43, 44, 45]  # one replica per fold, seed..seed+3
    assert dataset.rows("train") == 150 and dataset.rows("val") == 50
    assert build_dataset(config).folds[2].tolist() == folds[2].tolist()  # the same plan every time (eval too)


def test_each_folds_replica_equals_a_run_trained_on_the_other_folds_alone():
    config = validate_config(cv_config())
    group = setup_group([config])
    group.trainer.fit()
    member = group.members[0]
    dataset = group.dataset
    for fold, seed in enumerate(config.seeds):
        held_out = dataset.folds[fold]
        kept = np.setdiff1d(np.arange(len(dataset.X_train)), held_out)
        alone = dataclasses.replace(dataset, X_train=dataset.X_train[kept], y_train=dataset.y_train[kept],
                                    X_val=dataset.X_train[held_out], y_val=dataset.y_train[held_out], folds=None)
        solo_config = validate_config({**cv_config(), "seed": seed, "seeds": None,
                                       "dataset": {**cv_config()["dataset"], "cv_folds": None, "val_size": 0.1}})
        solo = build_trainer(solo_config, alone, torch.device("cpu"))
        solo.fit()
        mine = [row for row in member.history if row["seed"] == seed]
        assert len(mine) == len(solo.history) == 6
        for ours, theirs in zip(mine, solo.history):
            for key in ("train_loss", "val_loss", "test_loss"):
                assert ours[key] == pytest.approx(theirs[key], abs=TOLERANCE), (fold, key)
            for key in ("train_acc", "val_acc", "test_acc"):  # counts: equal
                assert ours[key] == theirs[key], (fold, key)
    # the folds differ: not one model scored four times
    assert len({row["val_loss"] for row in member.history if row["epoch"] == 6}) == 4


def test_folds_of_different_sizes_train_on_as_many_rows_each():
    config = validate_config(cv_config(centers=3, n_samples=230, cv_folds=3))
    group = setup_group([config])
    sizes = [len(rows) for rows in group.dataset.folds]
    assert len(set(sizes)) > 1  # this data's folds are uneven
    group.trainer.fit()
    rows = [row for row in group.members[0].history if row["epoch"] == 6]
    assert len(rows) == 3 and all(0.0 <= row["val_acc"] <= 1.0 for row in rows)
    # a validation accuracy is a count over its own fold's rows
    for row, size in zip(rows, sizes):
        assert round(row["val_acc"] * size, 6) == round(row["val_acc"] * size)


def test_sweep_cv_ranks_by_the_folds_mean_and_eval_reproduces_a_fold_run(tmp_path):
    config = tmp_path / "cv.yaml"
    config.write_text(json.dumps(cv_config(cv_folds=None)))
    result = invoke("sweep", config, "--grid", "train.lr=0.001,0.05", "--cv", "4", "-o", tmp_path / "sweep", "-q")
    assert result.exit_code == 0, result.output
    assert "each run's 4 folds" in result.output
    with (tmp_path / "sweep" / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    record = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert record["cv"] == {"folds": 4}
    for row in rows:
        run = tmp_path / "sweep" / row["run"]
        finals = [r for r in metrics_rows(run) if r["epoch"] == 6]
        assert len(finals) == 4  # one row per fold
        values = [r["val_acc"] for r in finals]
        assert float(row["val_acc_mean"]) == pytest.approx(np.mean(values))
        assert float(row["val_acc_std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-9)
    assert float(rows[0]["val_acc_mean"]) >= float(rows[1]["val_acc_mean"])
    evaluated = invoke("eval", tmp_path / "sweep" / rows[0]["run"], "--seed", "43")
    assert evaluated.exit_code == 0, evaluated.output
    assert "Reproduces exactly the test metrics fit recorded" in evaluated.output


@pytest.mark.parametrize(("args", "message"), [
    (["--cv", "1"], "--cv 1: cross-validation deals the training rows into 2 to"),
    (["--cv", "60"], "class '0' has 40 training row(s), fewer than the folds"),
    (["--cv", "3", "--seeds", "0-1"], "dataset.cv_folds = 3 trains one replica per fold, but seeds lists 2"),
    (["--cv", "3", "--set", "dataset.val_size=0.2"], "in place of a validation split"),
    (["--cv", "3", "--set", "model.ensemble=3"], "cannot be used with model.ensemble"),
])
def test_bad_cross_validation_exits_2_before_anything_is_written(tmp_path, args, message):
    config = tmp_path / "cv.yaml"
    config.write_text(json.dumps(tiny_config(dataset={"name": "blobs", "centers": 2, "n_samples": 100})))
    result = invoke("sweep", config, "--grid", "train.lr=0.01,0.1", *args, "-o", tmp_path / "sweep", "-q")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not (tmp_path / "sweep").exists()
