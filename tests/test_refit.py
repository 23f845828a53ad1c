"""`clftrain sweep --refit`: the winner trained again on the rows the sweep held back, as its own run directory."""

from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
import yaml
from conftest import tiny_config
from trained_runs import invoke

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def stopping_config(**dataset) -> dict:
    return tiny_config(dataset={"name": "blobs", "centers": 3, "n_samples": 240, "cluster_std": 2.5, **dataset},
                       train={"epochs": 40, "log_every": 1, "batch_size": 32, "optimizer": "adam",
                              "early_stopping": {"monitor": "val_loss", "patience": 3}})


def sweep(tmp_path, config: dict, *args):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = invoke("sweep", path, "--grid", "train.lr=0.003,0.05", *args, "--refit", "-o", tmp_path / "s", "-q")
    assert result.exit_code == 0, result.output
    with (tmp_path / "s" / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    return result, rows


def read(path):
    return json.loads(path.read_text())


def test_refit_of_a_cross_validated_winner_trains_on_every_fold_for_their_median_best_epoch(tmp_path):
    result, rows = sweep(tmp_path, stopping_config(), "--cv", "3")
    winner, refit = tmp_path / "s" / rows[0]["run"], tmp_path / "s" / "refit"
    best_epochs = [replica["best"]["epoch"] for replica in read(winner / "summary.json")["replicas"]]
    expected = math.floor(statistics.median(best_epochs) + 0.5)
    config = yaml.safe_load((refit / "config.yaml").read_text())
    assert config["dataset"]["cv_folds"] is None and config["dataset"]["val_size"] == 0
    assert config["train"]["early_stopping"] is None and config["train"]["epochs"] == expected
    assert config["seeds"] is None and config["seed"] == 42
    summary = read(refit / "summary.json")
    sweep_summary = read(winner / "summary.json")
    # every row outside the test split trains it: a fold run's training rows plus its validation fold
    assert summary["data"]["train"] == sweep_summary["data"]["train"] + sweep_summary["data"]["val"]
    assert summary["data"]["test"] == sweep_summary["data"]["test"] and summary["epochs_run"] == expected
    record = read(tmp_path / "s" / "sweep.json")["refit"]
    assert record["from"] == rows[0]["run"] and record["epochs"] == expected
    assert f"refit: {rows[0]['run']}" in result.output
    evaluated = invoke("eval", refit)  # a run directory like any other
    assert evaluated.exit_code == 0, evaluated.output
    assert "Reproduces exactly the test metrics fit recorded" in evaluated.output


def test_refit_of_a_validated_winner_folds_the_validation_rows_back(tmp_path):
    _, rows = sweep(tmp_path, stopping_config(val_size=0.25))
    winner = read(tmp_path / "s" / rows[0]["run"] / "summary.json")
    refit = read(tmp_path / "s" / "refit" / "summary.json")
    assert winner["data"]["val"] > 0 and refit["data"]["val"] == 0
    assert refit["data"]["train"] == winner["data"]["train"] + winner["data"]["val"]


def test_refit_without_early_stopping_keeps_the_epochs(tmp_path):
    config = tiny_config(dataset={"name": "blobs", "centers": 2, "n_samples": 120}, train={"epochs": 7})
    _, rows = sweep(tmp_path, config, "--cv", "2")
    assert yaml.safe_load((tmp_path / "s" / "refit" / "config.yaml").read_text())["train"]["epochs"] == 7
