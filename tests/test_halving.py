"""`clftrain sweep --halving`: successive halving inside a batched model; pruned runs leave the batched work."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from conftest import tiny_config
from trained_runs import invoke, metrics_rows

from clftrain.runs.sweep import plan_sweep, run_sweep
from clftrain.training import Callback
from clftrain.training.halving import rung_epochs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 27
LRS = "0.0003,0.001,0.003,0.01,0.03,0.1,0.0001,0.3,0.05"  # 9 runs of one shape: rungs at epochs 3 and 9


def test_rungs_follow_the_runs_and_the_epochs():
    assert rung_epochs(9, 81) == [9, 27]
    assert rung_epochs(27, 256) == [10, 29, 86]
    assert rung_epochs(3, 10) == [4]
    assert rung_epochs(2, 100) == [] and rung_epochs(9, 1) == []


class ActiveReplicas(Callback):
    """How many replicas the batched model computes, after each evaluated epoch."""

    def __init__(self, trainer) -> None:
        self.trainer, self.counts = trainer, []

    def on_epoch_end(self, trainer, row) -> None:
        active = trainer.model.active_replicas()
        self.counts.append(trainer.model.replicas if active is None else len(active))


@pytest.fixture(scope="module")
def halved(tmp_path_factory):
    root = tmp_path_factory.mktemp("halving")
    config = tiny_config(dataset={"name": "blobs", "centers": 3, "n_samples": 300, "cluster_std": 2.0},
                         train={"epochs": EPOCHS, "log_every": 1, "optimizer": "adam", "batch_size": 64})
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    plan = plan_sweep(path, [f"train.lr={LRS}"], halving=True)
    seen = []

    def watch(number, group):
        seen.append(ActiveReplicas(group.trainer))
        return seen[-1:]

    result = run_sweep(plan, root / "sweep", on_batch=watch)
    with (result.sweep_dir / "sweep.csv").open() as f:
        return result.sweep_dir, list(csv.DictReader(f)), seen[0].counts


def test_a_third_of_the_runs_go_on_at_each_rung(halved):
    sweep_dir, rows, _ = halved
    epochs = sorted(int(row["epochs_run"]) for row in rows)
    assert epochs == [3] * 6 + [9] * 2 + [EPOCHS]
    assert [row["status"] for row in rows] == ["completed"] + ["pruned"] * 8  # the survivor ranks first
    for row in rows:
        run = sweep_dir / row["run"]
        assert max(r["epoch"] for r in metrics_rows(run)) == int(row["epochs_run"])  # rows end where it stopped
        assert json.loads((run / "summary.json").read_text())["status"] == row["status"]
    assert json.loads((sweep_dir / "sweep.json").read_text())["halving"] == {"rate": 3, "rungs": [[3, 9]]}


def test_the_pruned_were_the_worst_at_their_rung(halved):
    sweep_dir, rows, _ = halved

    def score_at(row, epoch):
        found = next(r for r in metrics_rows(sweep_dir / row["run"]) if r["epoch"] == epoch)
        return (found["val_acc"], -found["val_loss"])

    for rung, pruned_here in ((3, [r for r in rows if r["epochs_run"] == "3"]),
                              (9, [r for r in rows if r["epochs_run"] == "9"])):
        on = [r for r in rows if int(r["epochs_run"]) > rung]
        assert max(score_at(r, rung) for r in pruned_here) <= min(score_at(r, rung) for r in on)


def test_pruned_runs_leave_the_batched_work(halved):
    _, _, counts = halved
    assert counts[:3] == [9, 9, 9]  # the first rung prunes at the end of epoch 3
    assert counts[3:9] == [3] * 6 and counts[9:] == [1] * (EPOCHS - 9)


def test_the_survivor_equals_its_run_trained_alone(halved, tmp_path):
    sweep_dir, rows, _ = halved
    survivor = sweep_dir / rows[0]["run"]
    result = invoke("fit", survivor / "config.yaml", "-o", tmp_path / "alone", "-q")
    assert result.exit_code == 0, result.output
    for ours, theirs in zip(metrics_rows(survivor), metrics_rows(tmp_path / "alone"), strict=True):
        for key in ("train_loss", "val_loss", "test_loss"):
            assert ours[key] == pytest.approx(theirs[key], abs=1e-5)
        assert ours["val_acc"] == theirs["val_acc"]


def test_a_pruned_run_is_complete(halved):
    sweep_dir, rows, _ = halved
    result = invoke("fit", "--resume", sweep_dir / rows[-1]["run"])
    assert result.exit_code == 2 and "was pruned at epoch" in result.output
