"""`model.ensemble: K`: K members (seeds seed..seed+K-1) trained as one batched model that is one model, their mean
probability: eval, predict, plot, report and export use the ensemble; `--seed S` picks a member."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import statistics

import numpy as np
import pytest
import yaml

from clftrain.config import validate_config
from clftrain.errors import UserError
from clftrain.inference import TrainedRun, predict_csv
from clftrain.runs import fit_run as fit_in_process
from conftest import tiny_config
from trained_runs import fit_run, invoke, metrics_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENSEMBLE = tiny_config(name="ens", dataset={"name": "moons", "n_samples": 200, "noise": 0.3},
                       model={"layers": [8], "ensemble": 3}, train={"optimizer": "adam", "lr": 0.03})


# ---------------------------------------------------------------------- the config
@pytest.mark.parametrize("change, message", [
    ({"seeds": [0, 1]}, "model.ensemble = 3 cannot be used with seeds (0, 1)"),
    ({"model": {"ensemble": 1}}, "model.ensemble = 1: Input should be greater than or equal to 2"),
    ({"model": {"ensemble": 2.5}}, "model.ensemble = 2.5: Input should be a valid integer"),
    ({"model": {"ensemble": True}}, "model.ensemble = True: expected a number, not true"),
    ({"model": {"ensemble": "three"}}, "model.ensemble = 'three': Input should be a valid integer"),
    ({"seed": 2**32 - 2}, "needs seeds up to 4294967296"),
], ids=["with-seeds", "one", "fraction", "bool", "text", "past-the-last-seed"])
def test_bad_ensembles_are_config_errors(change, message):
    config = {**ENSEMBLE, **change, "model": {**ENSEMBLE["model"], **change.get("model", {})}}
    with pytest.raises(UserError) as raised:
        validate_config(config)
    assert message in str(raised.value)


def test_the_ensemble_resolves_its_members_seeds_and_config_yaml_keeps_model_ensemble():
    config = validate_config({**ENSEMBLE, "seed": 7})
    assert config.seeds == [7, 8, 9] and config.model.ensemble == 3
    written = config.to_dict()
    assert written["seeds"] is None and written["model"]["ensemble"] == 3  # what config.yaml holds
    assert validate_config(written).seeds == [7, 8, 9]  # and loads back to the same members
    assert validate_config(tiny_config()).model.ensemble is None


def test_fit_with_seeds_and_an_ensemble_exits_2_before_writing(tmp_path):
    (tmp_path / "ens.yaml").write_text(yaml.safe_dump(ENSEMBLE))
    result = invoke("fit", tmp_path / "ens.yaml", "--seeds", "0-2", "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert "model.ensemble = 3 cannot be used with seeds (0, 1, 2)" in result.output
    assert "remove seeds (or --seeds)" in result.output and not (tmp_path / "run").exists()
    result = invoke("validate", tmp_path / "ens.yaml", "--set", "model.ensemble=1")
    assert result.exit_code == 2 and "model.ensemble = 1" in result.output


# ---------------------------------------------------------------------- one model: eval, predict, report, export
@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    return fit_run(root, ENSEMBLE)


def member_probabilities(run_dir, X):
    return [TrainedRun.load(run_dir, seed=seed).predict(X)[0] for seed in (42, 43, 44)]


def test_the_run_is_its_ensemble_and_summary_json_says_so(ensemble_run):
    summary = json.loads((ensemble_run / "summary.json").read_text())
    assert summary["ensemble"]["members"] == 3 and summary["ensemble"]["seeds"] == [42, 43, 44]
    assert summary["seeds"] == [42, 43, 44] and [r["seed"] for r in summary["replicas"]] == [42, 43, 44]
    rows = metrics_rows(ensemble_run)
    assert {row["seed"] for row in rows} == {42, 43, 44}  # metrics.csv: each member's rows, as seeds write them
    # final: the ensemble's own test metrics, from the mean of the members' probabilities
    run = TrainedRun.load(ensemble_run)
    X, y = run.dataset.X_test, run.dataset.y_test
    mean = np.mean(member_probabilities(ensemble_run, X), axis=0)
    assert summary["final"]["test_acc"] == pytest.approx(np.mean((mean[:, 0] >= 0.5) == (y[:, 0] >= 0.5)))
    members = [r["final"]["test_loss"] for r in summary["replicas"]]
    assert summary["members"]["final"]["test_loss"] == pytest.approx(statistics.fmean(members))
    assert summary["final"]["test_loss"] != pytest.approx(summary["members"]["final"]["test_loss"], abs=1e-9)


def test_eval_and_predict_use_the_mean_of_the_members_probabilities(ensemble_run, tmp_path):
    run = TrainedRun.load(ensemble_run)
    assert run.replicas.seed is None and run.replicas.why == "ensemble"
    X = run.dataset.X_test
    np.testing.assert_allclose(run.predict(X)[0], np.mean(member_probabilities(ensemble_run, X), axis=0), atol=1e-6)

    result = invoke("eval", ensemble_run, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["replica"]["chosen"] == "the ensemble of 3 members (seeds 42-44), their mean probability"
    assert report["fit_check"]["match"] is True  # eval reproduces the ensemble's metrics fit reported
    summary = json.loads((ensemble_run / "summary.json").read_text())
    assert report["metrics"]["loss"] == summary["final"]["test_loss"]
    member = json.loads(invoke("eval", ensemble_run, "--json", "--seed", 43).output)
    assert member["replica"]["chosen"].startswith("member seed 43 of the ensemble") and member["fit_check"]["match"]

    lines = ["x1,x2"] + [f"{a:.6f},{b:.6f}" for a, b in np.random.default_rng(0).normal(size=(20, 2))]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    by_seed = [[float(r["prob_1"]) for r in csv.DictReader(io.StringIO(predict_csv(ensemble_run, tmp_path / "rows.csv",
                                                                                    seed=seed)[0]))]
               for seed in (42, 43, 44)]
    text, notes = predict_csv(ensemble_run, tmp_path / "rows.csv")
    ensemble = [float(r["prob_1"]) for r in csv.DictReader(io.StringIO(text))]
    np.testing.assert_allclose(ensemble, np.mean(by_seed, axis=0), atol=1e-6)
    assert not any("--ensemble" in note for note in notes)  # no hint to pick: the ensemble is the model


def test_the_report_and_plots_show_the_ensemble(ensemble_run, tmp_path):
    result = invoke("report", ensemble_run, "-o", tmp_path / "page.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "page.html").read_text()
    assert "the ensemble of 3 members (seeds 42-44), their mean probability" in page
    assert (ensemble_run / "report.html").is_file() and (ensemble_run / "plots" / "decision_boundary.png").is_file()


needs_onnx = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
                                reason="the export extra (pip install 'clftrain[export]') is not installed")


def onnx_outputs(path, numeric):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities", "labels"], {"numeric": numeric.astype(np.float32)})


def raw_test_rows(run):
    pre, X = run.inputs.preprocessor, run.dataset.X_test
    return X.astype(np.float64) * np.asarray(pre.std) + np.asarray(pre.mean) if pre.mean is not None else X


@needs_onnx
def test_the_onnx_export_averages_the_members_in_the_graph_as_predict_does(ensemble_run, tmp_path):
    import onnx

    result = invoke("export", ensemble_run, "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    assert "ReduceMean" in {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    run = TrainedRun.load(ensemble_run)
    expected_p, expected_labels = run.predict(run.dataset.X_test)
    probabilities, labels = onnx_outputs(tmp_path / "m.onnx", raw_test_rows(run))
    np.testing.assert_allclose(probabilities, expected_p, rtol=1e-5, atol=1e-5)
    assert np.array_equal(labels.reshape(expected_labels.shape), expected_labels)
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["ensemble"]["members"] == 3 and sidecar["replica"]["why"] == "ensemble"
    assert sidecar["metrics"] == json.loads((ensemble_run / "summary.json").read_text())["final"]


@needs_onnx
def test_an_early_stopped_multiclass_ensemble_keeps_each_members_best_and_exports(tmp_path):
    config = {**tiny_config(name="wine", model={"layers": [4], "ensemble": 3}, report=False,
                            train={"optimizer": "adam", "lr": 0.05, "epochs": 60, "early_stopping": {"patience": 3}}),
              "dataset": {"name": "wine"}}
    run_dir = fit_run(tmp_path, config)
    summary = json.loads((run_dir / "summary.json").read_text())
    stops = [r["epochs_run"] for r in summary["replicas"]]
    assert summary["stopped_early"] and len(set(stops)) > 1  # each member stopped on its own
    assert [r["best"]["epoch"] for r in summary["replicas"]] == [r["final"]["epoch"] for r in summary["replicas"]]
    assert summary["weights"]["restored_best"] and summary["best"]["test_acc"] == summary["final"]["test_acc"]
    assert set(summary["final"]) == {"epoch", "val_loss", "val_acc", "test_loss", "test_acc"}
    assert invoke("report", run_dir, "-o", tmp_path / "page.html").exit_code == 0
    page = (tmp_path / "page.html").read_text()  # no one epoch for "final": the members ended at their own
    assert "Final: the weights training ended with (each member at its own best epoch)" in page
    assert f"(best, median epoch {summary['best']['epoch']})" in page and "loss (epoch" not in page
    result = invoke("export", run_dir)
    assert result.exit_code == 0, result.output
    run = TrainedRun.load(run_dir)
    probabilities, labels = onnx_outputs(run_dir / "model.onnx", raw_test_rows(run))
    expected_p, expected_labels = run.predict(run.dataset.X_test)
    np.testing.assert_allclose(probabilities, expected_p, rtol=1e-5, atol=1e-5)
    assert np.array_equal(labels.reshape(expected_labels.shape), expected_labels)
    assert np.mean(labels == run.dataset.y_test.reshape(-1)) == pytest.approx(summary["final"]["test_acc"])


# ---------------------------------------------------------------------- is it worth it?
def test_an_ensemble_of_5_is_at_least_as_accurate_as_its_average_member(tmp_path, capsys):
    """wine, 13-4-3, Adam, 15 epochs, members trained to different accuracies; three ensembles of 5 with disjoint
    members (seeds 0-4, 5-9, 10-14)."""
    found = []
    for seed in (0, 5, 10):
        config = validate_config({**tiny_config(name="wine5", seed=seed, report=False), "dataset": {"name": "wine"},
                                  "model": {"layers": [4], "ensemble": 5},
                                  "train": {"optimizer": "adam", "lr": 0.02, "epochs": 15, "log_every": 15}})
        summary = fit_in_process(config, out=tmp_path / f"seed{seed}").summary
        members = [r["final"]["test_acc"] for r in summary["replicas"]]
        found.append((summary["final"]["test_acc"], statistics.fmean(members)))
    with capsys.disabled():
        print("\nensemble of 5 vs its mean member, wine test accuracy: " +
              ", ".join(f"{e:.2%} vs {m:.2%}" for e, m in found))
    assert all(ensemble >= member for ensemble, member in found)
    assert statistics.fmean(e for e, _ in found) > statistics.fmean(m for _, m in found)
