"""`tracking: [tensorboard]`: event files read back with TensorBoard's own reader equal metrics.csv."""

from __future__ import annotations

import csv
import math

import pytest

from conftest import tiny_config
from trained_runs import fit_run, invoke

pytest.importorskip("tensorboard", reason="the tracking extra (pip install 'clftrain[tracking]') is not installed")


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_tensorboard_scalars_are_the_metrics_csv_values(tmp_path):
    run = fit_run(tmp_path, tiny_config(tracking=["tensorboard"], dataset={"val_size": 0.2},
                                        train={"epochs": 20, "log_every": 5}))
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    written = events(run / "tensorboard")
    assert set(written) == {k for k in rows[0] if k != "epoch"}  # every column, seconds and lr too
    for key, points in written.items():
        assert [step for step, _ in points] == [int(r["epoch"]) for r in rows]
        for (_, value), row in zip(points, rows):  # event files hold float32
            assert math.isclose(value, float(row[key]), rel_tol=1e-6, abs_tol=1e-7), key
    hparams = events(run / "tensorboard" / "hparams")
    final = list(csv.DictReader((run / "metrics.csv").open()))[-1]
    assert math.isclose(hparams["final/test_acc"][0][1], float(final["test_acc"]), rel_tol=1e-6)


def test_a_run_with_seeds_writes_one_scalar_per_seed_and_resume_goes_on(tmp_path, monkeypatch):
    from clftrain.runs.tracking import TensorBoardTracker

    monkeypatch.setattr(TensorBoardTracker, "FLUSH_S", 0.0)  # written as training goes, not only at its end
    run = fit_run(tmp_path, tiny_config(tracking=["tensorboard"], seeds=[3, 4], train={"epochs": 10, "log_every": 5}))
    written = events(run / "tensorboard")
    assert {"test_acc/seed_3", "test_acc/seed_4", "train_loss/seed_3"} <= set(written)
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r["seed"] == "4"]
    assert [v for _, v in written["test_acc/seed_4"]] == pytest.approx([float(r["test_acc"]) for r in rows])
    assert invoke("fit", "--resume", run, "--set", "train.epochs=20", "-q").exit_code == 0
    steps = [step for step, _ in events(run / "tensorboard")["test_acc/seed_4"]]
    epochs = [int(r["epoch"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["seed"] == "4"]
    assert steps == epochs and epochs[-1] == 20  # the resumed epochs added, none written twice


def test_a_tracker_that_is_not_installed_is_refused_before_anything_is_written(tmp_path, cli, write_config,
                                                                               monkeypatch):
    from clftrain.runs import tracking

    monkeypatch.setitem(tracking.EXTRAS, "tensorboard", ("no_such_package_here", "pip install 'clftrain[tracking]'"))
    result = cli("fit", write_config(tiny_config()), "--track", "tensorboard")
    assert result.exit_code == 2
    assert ("tracking: tensorboard needs the no_such_package_here package, which is not installed: "
            "pip install 'clftrain[tracking]'") in result.output
    assert not (tmp_path / "runs").exists()
    result = cli("fit", write_config(tiny_config()), "--track", "wandb")
    assert result.exit_code == 2 and "tracking" in result.output and "tensorboard" in result.output
