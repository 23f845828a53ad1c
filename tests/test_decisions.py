"""The test split decides nothing: decisions (best checkpoint, early stopping, plateau, a sweep's ranking) are made
on a validation split, carved from the training rows when the config asks for a decision and has none; and a run
that stopped early ends with the weights it chose."""

from __future__ import annotations

import json

import pytest
import torch

from clftrain.config import validate_config
from clftrain.store import rundir
from conftest import tiny_config
from trained_runs import metrics_rows

STOPPING = tiny_config(train={"epochs": 400, "optimizer": "adam", "lr": 0.05,
                              "early_stopping": {"monitor": "val_loss", "patience": 10}})


def test_a_run_without_decisions_keeps_every_training_row_and_no_best():
    config = validate_config(tiny_config())
    assert config.dataset.val_size == 0


def test_early_stopping_carves_a_validation_split_and_says_so(write_config, cli, tmp_path):
    result = cli("fit", write_config(STOPPING), "--out", "run")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["validation"] == {"fraction": 0.16, "carved": True}
    assert summary["data"]["val"] == 32 and summary["data"]["train"] == 128  # 20% of the 160 training rows
    assert "validation: 32 rows carved from the training rows for the run's decisions (dataset.val_size: auto)" \
        in result.output
    assert "val_loss" in metrics_rows(tmp_path / "run")[0]


def test_without_a_validation_split_no_best_checkpoint_is_kept(write_config, cli, tmp_path):
    result = cli("fit", write_config(tiny_config()), "--out", "run")
    assert result.exit_code == 0 and "best.pt: none (no validation split chose a best epoch" in result.output
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["best"] == {} and summary["monitor"] is None


def test_a_stopped_run_ends_with_its_best_weights_and_eval_reports_them(write_config, cli, tmp_path):
    result = cli("fit", write_config(STOPPING), "--out", "run", "-q")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_early"] and summary["weights"]["restored_best"]
    best_epoch = summary["best"]["epoch"]
    assert summary["weights"]["epoch"] == best_epoch < summary["epochs_run"]
    assert summary["final"] == summary["best"]  # the final metrics are the chosen weights'
    assert f"the run ends with the best epoch's weights (epoch {best_epoch}; train.restore_best)" in result.output
    last = rundir.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    best = rundir.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert all(torch.equal(last["model"][k], best["model"][k]) for k in best["model"])
    report = json.loads(cli("eval", "run", "--json").stdout)
    assert report["epoch"] == best_epoch and report["fit_check"]["match"]


def test_restore_best_false_keeps_the_last_weights(write_config, cli, tmp_path):
    config = tiny_config(train={**STOPPING["train"], "restore_best": False})
    assert cli("fit", write_config(config), "--out", "run", "-q").exit_code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert not summary["weights"]["restored_best"] and summary["weights"]["epoch"] == summary["epochs_run"]
    assert summary["final"]["epoch"] == summary["epochs_run"] != summary["best"]["epoch"]


def test_every_replica_of_a_stopped_run_ends_with_its_own_best_weights(write_config, cli, tmp_path):
    assert cli("fit", write_config({**STOPPING, "seeds": [0, 1, 2]}), "--out", "run", "-q").exit_code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["weights"]["restored_best"]
    for replica in summary["replicas"]:
        assert replica["final"] == replica["best"]
    last = rundir.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    best = rundir.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert all(torch.equal(last["model"][k], best["model"][k]) for k in best["model"])
    report = json.loads(cli("eval", "run", "--seed", "1", "--json").stdout)
    assert report["fit_check"]["match"] and report["epoch"] == summary["replicas"][1]["best"]["epoch"]


@pytest.mark.parametrize("monitor", ["test_loss", "test_acc"])
def test_a_test_monitor_is_refused_with_why(monitor):
    with pytest.raises(Exception, match="the test split only reports, it never decides"):
        validate_config(tiny_config(train={"early_stopping": {"monitor": monitor}}))
