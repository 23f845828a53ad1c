"""`clftrain fit DATA.csv --target COLUMN [--budget 60s]`: no config; the tabular recipe, a small batched search
and an ensemble sized to the budget, written as the usual run directory (runs/auto_fit.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from clftrain.errors import UserError
from clftrain.runs.auto_fit import parse_budget
from conftest import tiny_config


@pytest.fixture
def table(tmp_path):
    """120 rows: two numbers that decide the class, a text column, a few gaps."""
    rng = np.random.default_rng(0)
    lines = ["x1,x2,colour,label"]
    for i in range(120):
        x1, x2 = rng.normal(size=2)
        label = "yes" if x1 + 0.5 * x2 > 0 else "no"
        colour = ["red", "green", "blue"][i % 3]
        lines.append(f"{x1:.4f},{'' if i % 17 == 5 else f'{x2:.4f}'},{colour},{label}")
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_table_and_a_target_make_a_run_directory_that_eval_uses(cli, table, tmp_path):
    run = tmp_path / "auto"
    result = cli("fit", table, "--target", "label", "--budget", "20s", "--out", run, "--no-report")
    assert result.exit_code == 0, result.output
    assert "final:" in result.output and "time used:" in result.output
    record = json.loads((run / "auto_fit.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["preset"] == "tabular" and config["dataset"]["target"] == "label"
    assert (run / "init.yaml").is_file()
    search = record["search"]
    # Where the machine is fast enough the stopping check fits in the 20 s too (mostly it does not), and every
    # epoch may win on this noiseless table: then there is no search (tests/test_stopping_check.py)
    if record["stopping_check"]["choice"] == "every_epoch":
        assert search["trials"] == 0 and config["train"]["early_stopping"] is None
    else:
        assert "winner:" in result.output
        assert search["trials"] >= 2 and len(search["candidates"]) == search["trials"]
        assert (run / "search" / "sweep.csv").is_file()
        winner = next(c for c in search["candidates"] if c["run"] == search["winner"])
        assert config["train"]["lr"] == winner["train.lr"]  # the config settled on is the winner's
    members = record["final"]["members"]
    # one member (a slow machine leaves no time for more) is written as model.ensemble: null
    assert (config["model"].get("ensemble") or 1) == members and 1 <= members <= 8
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    evaluated = cli("eval", run, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((run / "eval.json").read_text())
    # an ensemble's summary "final" is the ensemble's own (the members' mean probability), as eval scores it
    assert metrics["metrics"]["accuracy"] == pytest.approx(summary["final"]["test_acc"], abs=1e-6)
    assert metrics["metrics"]["accuracy"] > 0.8  # the classes follow x1 + x2 / 2: a good model finds it


@pytest.mark.parametrize(("args", "message"), [
    ([], "name the column to predict with --target COLUMN (its columns: x1, x2, colour, label)"),
    (["--target", "label", "--budget", "soon"], "--budget 'soon': expected a time such as 60s"),
    (["--target", "label", "--budget", "0s"], "the budget must be more than 0 seconds"),
    (["--target", "label", "--budget", "0.2s"], "is too small for"),
    (["--target", "label", "--seeds", "0-2"], "--seeds cannot be used with fit DATA"),
    (["--target", "label", "--set", "model.ensemble=3"], "--set model.ensemble: clftrain fit DATA decides it"),
    (["--target", "label", "--seed", "1", "--set", "seed=2"], "given both with --seed and with --set seed"),
    (["--target", "weight"], "has no column(s) 'weight': --target weight names the column to predict; the file's "
                             "columns are: x1, x2, colour, label"),
])
def test_bad_input_exits_2_and_writes_nothing(cli, table, tmp_path, args, message):
    result = cli("fit", table, *args, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_a_parquet_table_is_read_as_its_csv_is(cli, table, tmp_path):
    import pyarrow.csv
    import pyarrow.parquet

    parquet = tmp_path / "table.parquet"
    pyarrow.parquet.write_table(pyarrow.csv.read_csv(table), parquet)
    missing = cli("fit", parquet, "--out", tmp_path / "none")
    assert missing.exit_code == 2 and "(its columns: x1, x2, colour, label)" in " ".join(missing.output.split())
    run = tmp_path / "auto"
    result = cli("fit", parquet, "--target", "label", "--budget", "20s", "--set", "train.epochs=4", "--out", run,
                 "--no-report")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["dataset"]["name"] == "parquet" and config["dataset"]["impute"] == "median"
    data = json.loads((run / "summary.json").read_text())["data"]
    assert data["train"] + data["val"] + data["test"] == 120 and "colour=red" in " ".join(data["features"])


def test_the_final_run_stops_at_an_epochs_end_before_the_budget_runs_out(tmp_path):
    import time

    from clftrain.config import validate_config
    from clftrain.runs.auto_fit import BudgetStop, Clock
    from clftrain.runs.single import fit_single

    class Timed(BudgetStop):  # a budget of one second from the first epoch (the set-up's time varies with load)
        def on_fit_start(self, trainer) -> None:
            self.clock, self.stopped_after = Clock(time.monotonic(), 1.0), None
            super().on_fit_start(trainer)

        def on_epoch_end(self, trainer, row) -> None:
            super().on_epoch_end(trainer, row)
            if self.stopped_at is not None and self.stopped_after is None:
                self.stopped_after = self.clock.used()

    # 200,000 epochs of a tiny model take about a minute (3,000 took under a second in a warm process, and the
    # budget was never reached)
    ceiling = Timed(Clock(time.monotonic(), 1.0), reserve=0.2)
    config = validate_config(tiny_config(train={"epochs": 200_000, "log_every": 100_000}))
    summary = fit_single(config, out=tmp_path / "run", callbacks=[ceiling]).summary
    assert summary["status"] == "completed" and ceiling.stopped_at == summary["epochs_run"] < 200_000
    # stopped once the time left, less the reserve (0.2 s for the files), no longer held another epoch
    assert 0.5 < ceiling.stopped_after < 1.0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs_run"] == ceiling.stopped_at


def test_target_and_budget_are_for_a_table_only(cli, write_config):
    result = cli("fit", write_config(tiny_config()), "--budget", "10s")
    assert result.exit_code == 2 and "--budget is for fit DATA" in result.output


def test_budgets_read_as_people_write_them():
    assert [parse_budget(text) for text in ("60s", "90", "5m", "1.5h", " 2 min ")] == [60, 90, 300, 5400, 120]
    for bad in ("", "-3s", "1d", "8 days", "1e3"):
        with pytest.raises(UserError):
            parse_budget(bad)
