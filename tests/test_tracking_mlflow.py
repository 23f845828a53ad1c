"""`tracking: [mlflow]`: the MLflow store, read back with MLflow's own client, mirrors the run directory."""

from __future__ import annotations

import csv
import json
import math
import statistics

import pytest
import yaml

from conftest import tiny_config
from trained_runs import fit_run, invoke

pytest.importorskip("mlflow", reason="the tracking extra (pip install 'clftrain[tracking]') is not installed")
pytest.importorskip("sqlalchemy", reason="the tracking extra (pip install 'clftrain[tracking]') is not installed")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating one runs MLflow's migrations: about 2 s)."""
    from clftrain.runs.mlflow_tracking import sqlite_uri

    return sqlite_uri(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


@pytest.fixture
def tracked(store, monkeypatch, request):
    """MLFLOW_TRACKING_URI set to the module's store and an experiment of the test's own; its runs()."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", request.node.name)
    client = MlflowClient(tracking_uri=store)

    def runs():
        experiment = client.get_experiment_by_name(request.node.name)
        return client.search_runs([experiment.experiment_id]) if experiment else []

    return client, runs


def csv_rows(run, seed=None):
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return [r for r in rows if seed is None or r["seed"] == str(seed)]


def history(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def artifacts(client, run_id, path=None):
    found = []
    for info in client.list_artifacts(run_id, path):
        found += artifacts(client, run_id, info.path) if info.is_dir else [info.path]
    return found


def test_fit_track_mlflow_mirrors_the_run_directory_in_runs_mlflow_db(tmp_path, cli, write_config, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    config = write_config(tiny_config(dataset={"val_size": 0.2}, train={"epochs": 20, "log_every": 5}))
    result = cli("fit", config, "--track", "mlflow", "-q")
    assert result.exit_code == 0, result.output
    assert "mlflow" not in result.output.lower()  # MLflow's own INFO lines (creating its tables) are not shown
    (run,) = [p for p in (tmp_path / "runs").iterdir() if (p / "config.yaml").is_file()]
    assert (tmp_path / "runs" / "mlflow.db").is_file() and (tmp_path / "runs" / "mlartifacts").is_dir()
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    (mlrun,) = client.search_runs([client.get_experiment_by_name("clftrain").experiment_id])
    assert json.loads((run / "mlflow.json").read_text())["run_id"] == mlrun.info.run_id
    assert mlrun.info.run_name == run.name and mlrun.info.status == "FINISHED"
    assert mlrun.data.tags["clftrain.run_dir"] == str(run.resolve()) and mlrun.data.tags["clftrain.version"]

    rows = csv_rows(run)
    for column in rows[0]:
        if column == "epoch":
            continue
        points = history(client, mlrun.info.run_id, column)
        assert [step for step, _ in points] == [int(r["epoch"]) for r in rows], column
        for (_, value), row in zip(points, rows):
            assert math.isclose(value, float(row[column]), rel_tol=1e-9, abs_tol=1e-12), column

    params = mlrun.data.params
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert params["train.lr"] == str(resolved["train"]["lr"]) and params["model.layers"] == "[8]"
    assert params["dataset.val_size"] == "0.2" and params["dataset.name"] == "circles" and params["threads"] == "1"
    summary = json.loads((run / "summary.json").read_text())
    assert mlrun.data.metrics["final/test_acc"] == pytest.approx(summary["final"]["test_acc"])
    assert mlrun.data.metrics["best/val_loss"] == pytest.approx(summary["best"]["val_loss"])
    assert history(client, mlrun.info.run_id, "best/val_loss")[0][0] == summary["best"]["epoch"]

    logged = set(artifacts(client, mlrun.info.run_id))
    assert {"checkpoints/last.pt", "checkpoints/best.pt", "plots/curves.png", "plots/decision_boundary.png",
            "plots/confusion_matrix.png", "config.yaml", "summary.json", "metrics.csv"} <= logged
    assert ("report.html" in logged) == (run / "report.html").is_file()


def test_a_run_with_seeds_is_one_mlflow_run_and_resume_goes_on_in_it(tmp_path, tracked, monkeypatch):
    from clftrain.runs.mlflow_tracking import MLflowTracker

    client, runs = tracked
    monkeypatch.setattr(MLflowTracker, "FLUSH_S", 0.0)  # written as training goes, not only at its end
    run = fit_run(tmp_path, tiny_config(tracking=["mlflow"], seeds=[3, 4], train={"epochs": 10, "log_every": 5}))
    (first,) = runs()
    assert first.data.tags["clftrain.seeds"] == "3 4"
    assert invoke("fit", "--resume", run, "--set", "train.epochs=20", "-q").exit_code == 0
    (mlrun,) = runs()  # the same run, not a second one
    assert mlrun.info.run_id == first.info.run_id and mlrun.info.status == "FINISHED"
    assert "clftrain.resumed" in mlrun.data.tags

    def check():
        run_id = mlrun.info.run_id
        for seed in (3, 4):
            rows = csv_rows(run, seed)
            points = history(client, run_id, f"test_acc/seed_{seed}")
            assert [s for s, _ in points] == list(range(1, 21))  # the resumed epochs added, none twice
            assert [v for _, v in points] == pytest.approx([float(r["test_acc"]) for r in rows])
        means = history(client, run_id, "train_loss/mean")
        by_epoch = {}
        for row in csv_rows(run):
            by_epoch.setdefault(int(row["epoch"]), []).append(float(row["train_loss"]))
        assert means == [(e, pytest.approx(statistics.fmean(v))) for e, v in sorted(by_epoch.items())]
        summary = json.loads((run / "summary.json").read_text())
        metrics = client.get_run(run_id).data.metrics
        assert metrics["final/test_acc"] == pytest.approx(summary["final"]["test_acc"])  # the mean over seeds
        for replica in summary["replicas"]:
            assert metrics[f"final/test_acc/seed_{replica['seed']}"] == pytest.approx(replica["final"]["test_acc"])

    check()
    # A run stopped before its first save trains again from the start in place: the epochs already in MLflow
    # are not written twice.
    (run / "checkpoints" / "last.pt").unlink()
    assert invoke("fit", "--resume", run, "-q").exit_code == 0
    assert [r.info.run_id for r in runs()] == [mlrun.info.run_id]
    check()


def test_a_sweep_is_a_parent_run_with_a_child_per_combination(tmp_path, tracked, write_config, cli):
    client, runs = tracked
    config = write_config(tiny_config(train={"epochs": 10, "log_every": 5}))
    result = cli("sweep", config, "--grid", "train.lr=0.1,0.03", "--track", "mlflow", "--out", tmp_path / "sw", "-q")
    assert result.exit_code == 0, result.output
    found = runs()
    (parent,) = [r for r in found if r.data.tags.get("clftrain.sweep") == "true"]
    children = sorted((r for r in found if r is not parent), key=lambda r: r.info.run_name)
    assert parent.info.run_name == "sw" and parent.info.status == "FINISHED"
    assert parent.data.params["grid.train.lr"] == "0.1, 0.03"
    assert {"sweep.csv", "sweep.json"} <= set(artifacts(client, parent.info.run_id))
    assert [c.info.run_name for c in children] == ["01-lr=0.1", "02-lr=0.03"]
    assert [c.data.tags["mlflow.parentRunId"] for c in children] == [parent.info.run_id] * 2
    assert [c.data.params["train.lr"] for c in children] == ["0.1", "0.03"]
    for child in children:
        assert child.info.status == "FINISHED" and "checkpoints/last.pt" in artifacts(client, child.info.run_id)
        rows = csv_rows(tmp_path / "sw" / child.info.run_name)
        assert [v for _, v in history(client, child.info.run_id, "val_acc/seed_42")] == pytest.approx(
            [float(r["val_acc"]) for r in rows])


def test_a_store_that_cannot_be_used_is_a_clear_error(tmp_path, cli, write_config, monkeypatch):
    from clftrain.runs import tracking

    config = write_config(tiny_config())
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    result = cli("fit", config, "--track", "mlflow")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tracking: mlflow: the MLflow store" in result.output and "cannot be created" in result.output
    assert not (tmp_path / "runs").exists()  # refused before anything was written

    (tmp_path / "garbage.db").write_bytes(b"this is not a SQLite database" * 100)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'garbage.db'}")
    result = cli("fit", config, "--track", "mlflow", "-q")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "tracking: mlflow: cannot open the MLflow store" in result.output
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_run"] == 0  # before its first epoch

    monkeypatch.setitem(tracking.EXTRAS, "mlflow", ("mlflow no_such_package_here", "pip install 'clftrain[tracking]'"))
    result = cli("fit", config, "--track", "mlflow")
    assert result.exit_code == 2
    assert ("tracking: mlflow needs the no_such_package_here package, which is not installed: "
            "pip install 'clftrain[tracking]'") in result.output


def test_a_store_failing_during_training_stops_the_tracker_not_the_run_and_a_failed_run_is_failed(
        tmp_path, tracked, write_config, monkeypatch):
    from clftrain.config import load_config
    from clftrain.errors import UserError
    from clftrain.runs import fit_run as fit
    from clftrain.runs.mlflow_tracking import MLflowTracker
    from clftrain.training import Callback

    client, runs = tracked
    monkeypatch.setattr(MLflowTracker, "FLUSH_S", 0.0)

    class At(Callback):
        def __init__(self, epoch, act):
            self.epoch, self.act = epoch, act

        def on_epoch_end(self, trainer, row):
            if trainer.epoch == self.epoch:
                self.act()

    config = load_config(write_config(tiny_config(tracking=["mlflow"])))

    def run_id(run):
        return json.loads((run / "mlflow.json").read_text())["run_id"]

    deleted = tmp_path / "deleted"
    result = fit(config, out=deleted, callbacks=[At(5, lambda: client.delete_run(run_id(deleted)))])
    assert result.summary["status"] == "completed" and result.summary["epochs_run"] == 20
    notes = json.loads((deleted / "summary.json").read_text())["notes"]
    assert any(n.startswith("mlflow: stopped writing to") and "metrics.csv has every row" in n for n in notes)

    def fail():
        raise UserError("a failure in training")

    failed = tmp_path / "failed"
    with pytest.raises(UserError):
        fit(config, out=failed, callbacks=[At(5, fail)])
    mlrun = client.get_run(run_id(failed))
    assert mlrun.info.status == "FAILED"
    assert [s for s, _ in history(client, mlrun.info.run_id, "train_loss")] == [1, 2, 3, 4, 5]
