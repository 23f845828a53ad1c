"""fit DATA's stopping check (runs/stopping_check.py): early stopping replayed on a run trained every epoch, the
choice between the two, and the final run that follows it."""

from __future__ import annotations

import csv
import json
import statistics
from types import SimpleNamespace

import pytest
import yaml

from clftrain.config import validate_config
from clftrain.runs import fit_run
from clftrain.runs.stopping_check import compare, early_stopped
from conftest import tiny_config


def _metrics(run_dir) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def test_the_replay_stops_and_keeps_the_epoch_early_stopping_does(tmp_path):
    # The same run twice, with early stopping and without: stopping does not change the epochs before it, so
    # replaying it on the second run's rows must find the first run's stop and its kept epoch.
    base = tiny_config(dataset={"name": "circles", "n_samples": 200, "val_size": 0.25, "noise": 0.3},
                       model={"layers": [64, 64]},
                       train={"epochs": 80, "optimizer": "adam", "lr": 0.01, "batch_size": 32, "restore_best": True})
    stopping = {"monitor": "val_loss", "patience": 4}
    stopped = fit_run(validate_config({**base, "train": {**base["train"], "early_stopping": stopping}}),
                      out=tmp_path / "stopped").summary
    # else the replay is not put to the test: it stops well inside the 80 epochs, after later improvements
    assert stopped["stopped_early"] and 10 < stopped["epochs_run"] < 80 and stopped["weights"]["epoch"] > 5
    every = fit_run(validate_config(base), out=tmp_path / "every").summary
    assert every["epochs_run"] == 80
    rule = validate_config({**base, "train": {**base["train"], "early_stopping": stopping}}).train.early_stopping
    kept, stop = early_stopped(_metrics(tmp_path / "every"), rule, restore_best=True)
    assert stop == stopped["epochs_run"]
    assert kept["epoch"] == stopped["weights"]["epoch"]
    assert kept["val_acc"] == pytest.approx(stopped["best"]["val_acc"], abs=1e-9)
    last, _ = early_stopped(_metrics(tmp_path / "every"), rule, restore_best=False)
    assert last["epoch"] == stop  # without restore_best the run ends with the stop epoch's weights


RULE = SimpleNamespace(monitor="val_loss", patience=2, min_delta=0.0, mode="auto")


def _history(losses: list[float], scores: list[float], metric: str = "val_acc") -> list[dict]:
    return [{"epoch": e + 1, "val_loss": loss, metric: score} for e, (loss, score) in enumerate(zip(losses, scores))]


def test_every_epoch_wins_a_tie_and_loses_when_it_scores_less():
    # val_loss is best at epoch 2; two epochs later stopping would end there, keeping epoch 2's weights
    better_later = _history([0.9, 0.5, 0.6, 0.7, 0.8], [0.6, 0.7, 0.7, 0.75, 0.9])
    worse_later = _history([0.9, 0.5, 0.6, 0.7, 0.8], [0.6, 0.8, 0.7, 0.7, 0.6])
    tie = _history([0.9, 0.5, 0.6, 0.7, 0.8], [0.6, 0.7, 0.7, 0.7, 0.7])
    result = compare([better_later, worse_later], "val_acc", True, RULE, restore_best=True)
    assert result.early_stopping == [0.7, 0.8] and result.stopped_at == [4, 4] and result.every_epoch == [0.9, 0.6]
    assert result.choice == "every_epoch"  # 0.75 against 0.75: the unflattered estimate wins the tie
    assert compare([worse_later], "val_acc", True, RULE, restore_best=True).choice == "early_stopping"
    assert compare([tie], "val_acc", True, RULE, restore_best=True).choice == "every_epoch"
    assert "early stopping wins" in compare([worse_later], "val_acc", True, RULE, restore_best=True).why


def _fold(kept: float, last: float) -> list[dict]:
    """A fold whose early stopping keeps epoch 2 (scored `kept`) and whose last epoch scores `last`."""
    return _history([0.9, 0.5, 0.6, 0.7, 0.8], [0.5, kept, 0.5, 0.5, last])


def test_early_stopping_must_lead_by_more_than_one_standard_error():
    # bench-quality's cars, seed 0: early stopping led by 0.9 points, standard error 2.3 points
    noisy = [_fold(0.703704, 0.753086), _fold(0.802469, 0.790123), _fold(0.864198, 0.802469),
             _fold(0.851852, 0.839506)]
    result = compare(noisy, "val_acc", True, RULE, restore_best=True)
    assert result.lead == pytest.approx(0.00926, abs=1e-5) and result.standard_error == pytest.approx(0.0228, abs=1e-4)
    assert result.choice == "every_epoch" and "standard error 0.0228" in result.why
    # its pbc, seed 0: a 5.4-point lead, standard error 2.2: early stopping stays
    clear = [_fold(0.797619, 0.797619), _fold(0.72619, 0.666667), _fold(0.710843, 0.662651),
             _fold(0.783133, 0.674699)]
    assert compare(clear, "val_acc", True, RULE, restore_best=True).choice == "early_stopping"
    # the same lead on every fold has no error: any lead keeps early stopping
    steady = [_fold(0.81, 0.8)] * 3
    assert compare(steady, "val_acc", True, RULE, restore_best=True).choice == "early_stopping"
    # a lead exactly one standard error large (wine, seed 2: one fold of four a row ahead) is not more than it
    one_row = [_fold(1.0, 1.0), _fold(1.0, 1.0), _fold(1.0, 0.971429), _fold(0.971429, 0.971429)]
    assert compare(one_row, "val_acc", True, RULE, restore_best=True).choice == "every_epoch"


def test_for_an_error_lower_wins():
    rising_error = _history([0.9, 0.5, 0.6, 0.7], [0.3, 0.2, 0.25, 0.4], metric="val_mae")
    falling_error = _history([0.9, 0.5, 0.6, 0.7], [0.3, 0.2, 0.15, 0.1], metric="val_mae")
    assert compare([rising_error], "val_mae", False, RULE, restore_best=True).choice == "early_stopping"
    assert compare([falling_error], "val_mae", False, RULE, restore_best=True).choice == "every_epoch"


@pytest.fixture
def table(tmp_path):
    """160 rows of a class that two numbers decide."""
    import numpy as np

    rng = np.random.default_rng(1)
    lines = ["x1,x2,label"] + [f"{a:.4f},{b:.4f},{'yes' if a + 0.5 * b > 0 else 'no'}"
                               for a, b in rng.normal(size=(160, 2))]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_data_runs_the_check_and_its_final_run_follows_the_choice(cli, table, tmp_path):
    run = tmp_path / "auto"
    # 8 epochs: the check trains 16 on 4 folds, a few seconds, so the budget holds it
    result = cli("fit", table, "--target", "label", "--budget", "40s", "--set", "train.epochs=8", "--out", run,
                 "--no-report")
    assert result.exit_code == 0, result.output
    record = json.loads((run / "auto_fit.json").read_text())
    check = record["stopping_check"]
    assert check["folds"] == 4 and check["epochs"] == 16, check["why"]
    assert len(check["early_stopping_scores"]) == len(check["every_epoch_scores"]) == 4
    leads = [e - last for e, last in zip(check["early_stopping_scores"], check["every_epoch_scores"])]
    error = statistics.stdev(leads) / 2  # over sqrt(4) folds
    assert check["early_stopping_lead"] == pytest.approx(statistics.fmean(leads), abs=1e-5)
    assert check["standard_error"] == pytest.approx(error, abs=1e-5)
    long = statistics.fmean(leads) <= error + 1e-5
    assert check["choice"] == ("every_epoch" if long else "early_stopping")
    assert "stopping check: " + ("every epoch on every row" if long else "early stopping") in result.output
    config = yaml.safe_load((run / "config.yaml").read_text())
    if long:  # the recipe's members on every row for the check's epochs, no search
        assert config["dataset"]["val_size"] == 0 and config["train"]["early_stopping"] is None
        assert config["train"]["epochs"] <= 16 and record["search"]["trials"] == 0
        assert not (run / "search").exists()
    else:
        assert config["train"]["early_stopping"]["patience"] == 32 and record["search"]["trials"] >= 2
    evaluated = cli("eval", run, "--json")
    assert evaluated.exit_code == 0, evaluated.output
