"""`clftrain eval`: reproduces fit's test metrics exactly, sklearn metrics, eval.json, --json, --data, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_config
from trained_runs import fit_run, invoke, metrics_rows, read_csv, write_csv

# Each exercises something that could make eval drift from fit: probabilities out of the model (bce),
# standardisation, dropout and batch norm (eval mode), mini-batches, several classes, regression,
# class weights and label smoothing in the loss, several labels per row, one-hot columns and imputation.
CONFIGS = {
    "binary": tiny_config(name="binary", dataset={"val_size": 0.2}),
    "bce-standardized": tiny_config(name="bce-standardized", dataset={"standardize": True, "val_size": 0.2},
                                    model={"dropout": 0.2}, train={"loss": "bce", "batch_size": 32}),
    "multiclass": tiny_config(name="multiclass", dataset={"name": "blobs", "centers": 3, "n_features": 3, "val_size": 0.2},
                              model={"batch_norm": True}, train={"optimizer": "adam", "lr": 0.01}),
    "regression": tiny_config(name="regression", task="regression", dataset={"name": "linear", "n_samples": 50,
                                                                           "val_size": 0.2},
                              model={"layers": []}, train={"lr": 0.01}),
    "weighted": tiny_config(name="weighted", dataset={"name": "blobs", "centers": 3, "val_size": 0.2},
                            train={"class_weight": "balanced", "label_smoothing": 0.1}),
    "multilabel": tiny_config(name="multilabel", dataset={"name": "multilabel", "n_features": 4, "n_classes": 3,
                                                          "val_size": 0.2}),
}
RUNS = [*CONFIGS, "table"]


def write_patients(path):
    """A table with a text column and missing numbers: the CSV-dataset path through eval and predict."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        colour, x1, x2 = rng.choice(["red", "green", "blue"]), rng.normal(), rng.normal()
        sick = "yes" if x1 + (colour == "red") + 0.3 * rng.normal() > 0.5 else "no"
        rows.append([colour, "" if i % 17 == 0 else f"{x1:.4f}", f"{x2:.4f}", sick])
    return write_csv(path, ["colour", "x1", "x2", "sick"], rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    table = {**tiny_config(name="table"), "dataset": {"name": "csv", "path": str(write_patients(root / "patients.csv")),
                                                      "target": "sick", "categorical": ["colour"], "impute": "mean",
                                                      "val_size": 0.2}}
    return {name: fit_run(root, config) for name, config in {**CONFIGS, "table": table}.items()}


def eval_json(*args):
    result = invoke("eval", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", RUNS)
@pytest.mark.parametrize("checkpoint", ["last", "best"])
def test_eval_reproduces_the_test_metrics_fit_recorded_exactly(runs, name, checkpoint):
    run = runs[name]
    summary = json.loads((run / "summary.json").read_text())
    epoch = summary["epochs_run"] if checkpoint == "last" else int(summary["best"]["epoch"])
    (row,) = [r for r in metrics_rows(run) if r["epoch"] == epoch]
    metric = "test_mae" if name == "regression" else "test_acc"

    report = eval_json(run, "--checkpoint", checkpoint)  # on the device fit used, as the config resolves it

    check = report["fit_check"]
    assert check["epoch"] == report["epoch"] == epoch
    assert check["reproduced"] == {"test_loss": row["test_loss"], metric: row[metric]}  # bit for bit
    assert check["match"] is True
    assert report["metrics"]["loss"] == row["test_loss"]
    # sklearn's float64 score is the same fraction fit stored as float32
    sklearn_score = report["metrics"][{"regression": "mae", "multilabel": "subset_accuracy"}.get(name, "accuracy")]
    assert sklearn_score == pytest.approx(row[metric], rel=1e-6)


def test_binary_metrics_come_with_a_per_class_table_and_confusion_matrix(runs):
    report = eval_json(runs["binary"])
    metrics = report["metrics"]
    assert set(metrics) == {"accuracy", "positive_class", "precision", "recall", "f1", "roc_auc", "log_loss", "loss"}
    assert metrics["positive_class"] == "1"
    counts = np.array(report["confusion_matrix"]["counts"])
    assert report["confusion_matrix"]["labels"] == ["0", "1"] and counts.sum() == report["data"]["rows"] == 40
    assert np.trace(counts) / counts.sum() == pytest.approx(metrics["accuracy"])
    tp, fp, fn = counts[1, 1], counts[0, 1], counts[1, 0]
    assert metrics["precision"] == pytest.approx(tp / (tp + fp)) and metrics["recall"] == pytest.approx(tp / (tp + fn))
    assert [row["support"] for row in report["per_class"]] == list(counts.sum(axis=1))
    assert 0 <= metrics["roc_auc"] <= 1 and metrics["log_loss"] > 0


def test_multiclass_metrics_are_macro_and_weighted_with_one_vs_rest_auc(runs):
    metrics = eval_json(runs["multiclass"])["metrics"]
    for name in ("precision", "recall", "f1"):
        assert {f"{name}_macro", f"{name}_weighted"} <= set(metrics)
    assert 0 <= metrics["roc_auc_ovr"] <= 1 and "roc_auc" not in metrics


def test_regression_metrics_are_mae_mse_r2(runs):
    report = eval_json(runs["regression"])
    assert set(report["metrics"]) == {"mae", "mse", "r2", "loss"}
    assert "confusion_matrix" not in report and report["task"] == "regression"


def test_eval_writes_eval_json_and_json_flag_prints_only_it(runs):
    run = runs["binary"]
    result = invoke("eval", run, "--json")
    printed = json.loads(result.stdout)  # stdout is the JSON and nothing else
    assert printed == json.loads((run / "eval.json").read_text())
    assert printed["checkpoint"] == "last" and printed["data"]["source"] == "test split"
    assert printed["device"] == json.loads((run / "summary.json").read_text())["device"]  # where fit ran
    assert printed["run"] == "binary" and "timestamp" in printed


def test_eval_console_shows_tables_and_the_reproduction(runs):
    result = invoke("eval", runs["multiclass"])
    assert result.exit_code == 0, result.output
    for text in ("Metrics", "F1 (macro)", "Per class", "Confusion matrix", "support", "Reproduces exactly",
                 "the test metrics fit recorded at epoch 20", "wrote "):
        assert text in result.output, text


def export_test_split(run, path, target="target", extra=True):
    """The run's test split as a CSV a user could have written: features, class names, an id column."""
    from clftrain.inference import TrainedRun

    trained = TrainedRun.load(run)
    X, y = trained.test_split()
    names = trained.inputs.feature_names
    labels = [trained.inputs.class_names[int(v)] for v in y.reshape(len(y), -1)[:, 0]]
    header = ["id", target, *reversed(names)]  # another column order than the model's
    rows = [[f"row{i}", label, *(repr(float(v)) for v in reversed(x))] for i, (x, label) in enumerate(zip(X, labels))]
    return write_csv(path, header if extra else header[1:], rows if extra else [r[1:] for r in rows])


def test_eval_on_a_csv_of_the_test_split_gives_the_test_split_metrics(runs, tmp_path):
    run = runs["multiclass"]
    data = export_test_split(run, tmp_path / "external.csv")
    on_split = eval_json(run)
    on_csv = eval_json(run, "--data", data)
    assert on_csv["data"] == {"source": "csv", "path": str(data), "rows": 40, "target": "target"}
    assert on_csv["metrics"] == on_split["metrics"]
    assert on_csv["confusion_matrix"] == on_split["confusion_matrix"]
    assert "fit_check" not in on_csv


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda rows: [r[:2] + r[3:] for r in rows], "has no column(s) 'x3': the run was trained on features x1, x2, x3"),
        (lambda rows: [r[:1] + r[2:] for r in rows], "has no column(s) 'target'"),
        (lambda rows: rows[:2] + [rows[2][:1] + ["7"] + rows[2][2:]] + rows[3:],
         "line 3, column 'target': '7' is not a class this run was trained on; its classes are: 0, 1, 2"),
        (lambda rows: rows[:3] + [rows[3][:2] + ["abc"] + rows[3][3:]] + rows[4:],
         "line 4, column 'x3': 'abc' is not a finite number"),
    ],
    ids=["missing-feature", "missing-target", "unknown-class", "not-a-number"],
)
def test_eval_data_errors_name_the_column_and_line(runs, tmp_path, edit, expected):
    import csv

    source = export_test_split(runs["multiclass"], tmp_path / "good.csv")
    edited = edit(list(csv.reader(source.open())))
    bad = write_csv(tmp_path / "bad.csv", edited[0], edited[1:])
    result = invoke("eval", runs["multiclass"], "--data", bad)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{tmp}/nowhere"], "run directory not found"),
        (["{tmp}"], "is not a clftrain run directory (no config.yaml)"),
        (["{run}", "--data", "{tmp}/missing.csv"], "CSV file not found"),
        (["{run}", "--device", "gpu"], "--device 'gpu': use auto, cpu, cuda, cuda:N or mps"),
        (["{run}", "--checkpoint", "middle"], "Invalid value for '--checkpoint'"),
    ],
)
def test_eval_user_errors(runs, tmp_path, args, expected):
    args = [a.format(tmp=tmp_path, run=runs["binary"]) for a in args]
    result = invoke("eval", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    run = fit_run(tmp_path, tiny_config(name="lost", train={"epochs": 2}, dataset={"val_size": 0.2}))
    (run / "checkpoints" / "best.pt").unlink()
    result = invoke("eval", run, "--checkpoint", "best")
    assert result.exit_code == 2 and "checkpoint not found" in result.output and "best.pt" in result.output


def test_a_run_on_a_missing_gpu_says_how_to_evaluate_it_here(tmp_path):
    run = fit_run(tmp_path, tiny_config(name="gpu", train={"epochs": 2}))
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("device: auto", "device: cuda:0"))
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke("eval", run)
    assert result.exit_code == 2
    assert "no CUDA GPU is available here" in result.output and "pass --device cpu" in result.output
    assert invoke("eval", run, "--device", "cpu").exit_code == 0


def test_data_that_no_longer_matches_the_checkpoint_is_refused(tmp_path):
    """The code that builds the dataset changed since training (simulated: blobs now draws a fourth class)."""
    from clftrain.data import DATASETS, RawData

    run = fit_run(tmp_path, tiny_config(name="drift", dataset={"name": "blobs", "centers": 3}, train={"epochs": 2}))
    blobs = DATASETS.get("blobs")
    DATASETS.unregister("blobs")
    DATASETS.register("blobs")(lambda cfg: RawData(blobs(cfg).X, np.arange(cfg.n_samples) % 4, ["x1", "x2"],
                                                   ["0", "1", "2", "3"]))
    try:
        result = invoke("eval", run)
    finally:
        DATASETS.unregister("blobs")
        DATASETS.register("blobs")(blobs)
    assert result.exit_code == 2
    assert "no longer matches the checkpoint: class names ['0', '1', '2', '3'] now, ['0', '1', '2'] when trained" \
        in result.output


def test_a_config_edited_since_training_is_refused(tmp_path):
    run = fit_run(tmp_path, tiny_config(name="edited", dataset={"name": "blobs", "centers": 3}, train={"epochs": 2}))
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("centers: 3", "centers: 4"))
    for command in ("eval", "plot"):
        result = invoke(command, run)
        assert result.exit_code == 2
        assert "belongs to another run: its config differs from config.yaml at dataset.centers (3 in the " \
               "checkpoint, 4 in config.yaml)" in result.output


def test_multilabel_metrics_and_external_label_columns(runs, tmp_path):
    from clftrain.inference import TrainedRun

    report = eval_json(runs["multilabel"])
    metrics = report["metrics"]
    assert {"subset_accuracy", "hamming_loss", "f1_micro", "f1_macro", "f1_samples", "roc_auc_macro"} <= set(metrics)
    per_label = np.array(report["confusion_matrix"]["per_label"])
    assert per_label.shape == (3, 2, 2) and (per_label.sum(axis=(1, 2)) == 40).all()
    # external rows: one 0/1 column per label, named after the labels
    run = TrainedRun.load(runs["multilabel"])
    X, Y = run.test_split()
    rows = [[repr(float(v)) for v in x] + [int(v) for v in y] for x, y in zip(X, Y)]
    data = write_csv(tmp_path / "labels.csv", run.inputs.input_columns + run.inputs.class_names, rows)
    on_csv = eval_json(runs["multilabel"], "--data", data)
    assert on_csv["data"]["target"] == "label1, label2, label3"
    assert on_csv["metrics"] == metrics


def test_a_csv_dataset_run_evaluates_its_own_table_with_gaps_and_text_columns(runs, tmp_path):
    import yaml

    table = runs["table"]
    patients = yaml.safe_load((table / "config.yaml").read_text())["dataset"]["path"]
    report = eval_json(table, "--data", patients)  # every row, gaps imputed as in training
    assert report["data"]["rows"] == 200 and report["data"]["target"] == "sick"
    assert report["metrics"]["positive_class"] == "yes"
    unseen = write_csv(tmp_path / "unseen.csv", ["colour", "x1", "x2", "sick"],
                       [["purple", "0.1", "0.2", "yes"], ["red", "", "0.0", "yes"]])
    result = invoke("eval", table, "--data", unseen)
    assert result.exit_code == 0, result.output
    assert "column 'colour': 'purple' not seen in training" in result.output
    assert "ROC-AUC undefined" in result.output  # only one class among the true labels
    assert json.loads((table / "eval.json").read_text())["metrics"]["roc_auc"] is None


@pytest.mark.parametrize("name", ["multiclass", "weighted"])
def test_splits_evaluated_in_chunks_are_still_reproduced_exactly(tmp_path, monkeypatch, name):
    from clftrain.training import model

    monkeypatch.setattr(model, "EVAL_ROWS", 16)  # the test split (40 rows) in three chunks, in fit and in eval
    run = fit_run(tmp_path, CONFIGS[name])
    row = metrics_rows(run)[-1]
    check = eval_json(run)["fit_check"]
    assert check["reproduced"] == {"test_loss": row["test_loss"], "test_acc": row["test_acc"]}
    assert check["match"] is True


def test_eval_data_and_predict_need_nothing_of_the_training_file(tmp_path):
    """The loss's class weights are in the checkpoint: a CSV run whose training table is gone still
    evaluates other data, and predicts."""
    import shutil

    patients = write_patients(tmp_path / "patients.csv")
    config = {**tiny_config(name="weighted-table"), "train": {"epochs": 20, "pos_weight": "balanced"},
              "dataset": {"name": "csv", "path": str(patients), "target": "sick", "categorical": ["colour"],
                          "impute": "mean"}}
    run = fit_run(tmp_path, config)
    elsewhere = shutil.copy(patients, tmp_path / "copy.csv")
    with_training_file = eval_json(run, "--data", elsewhere)
    patients.rename(tmp_path / "moved.csv")
    without = eval_json(run, "--data", elsewhere)
    assert without["metrics"] == with_training_file["metrics"]  # the weighted loss included
    predicted = invoke("predict", run, elsewhere)
    assert predicted.exit_code == 0, predicted.output
    result = invoke("eval", run)  # the test split itself is rebuilt from the training file: a clear error
    assert result.exit_code == 2 and "patients.csv" in result.output


def test_the_positive_class_and_a_threshold_choose_what_precision_and_labels_are_about(tmp_path):
    run = fit_run(tmp_path, tiny_config(name="credit", dataset={"val_size": 0.2, "positive_class": "0"},
                                        train={"epochs": 30, "optimizer": "adam", "lr": 0.05}))
    assert json.loads((run / "summary.json").read_text())["positive_class"] == "0"
    report = json.loads(invoke("eval", run, "--json").stdout)
    assert report["metrics"]["positive_class"] == "0"
    counts = np.array(report["confusion_matrix"]["counts"])  # rows true, columns predicted
    assert report["metrics"]["recall"] == pytest.approx(counts[0, 0] / counts[0].sum())  # recall of class '0'
    hint = report["threshold_hint"]
    assert 0 < hint["threshold"] < 1 and hint["positive_class"] == "0" and 0 <= hint["validation_f1"] <= 1
    lenient = json.loads(invoke("eval", run, "--threshold", "0.01", "--json").stdout)
    assert lenient["threshold"] == 0.01 and lenient["metrics"]["recall"] == 1.0  # every row is called '0'
    result = invoke("eval", run, "--threshold", "0.3")
    assert "decision threshold: a row is '0' from probability 0.3 (not 0.5)" in result.output
    assert "hint: on the validation split, threshold" in result.output
    inputs = write_csv(tmp_path / "in.csv", ["x1", "x2"], [["0.1", "0.2"], ["0.9", "-0.5"]])
    predicted = [r["predicted"] for r in read_csv(invoke("predict", run, inputs, "--threshold", "0.01").stdout)]
    assert predicted == ["0", "0"]


@pytest.mark.parametrize(
    ("dataset", "args", "expected"),
    [
        ({"positive_class": "yes"}, [], "dataset.positive_class = 'yes' is not a class of dataset 'circles'; "
                                        "its classes are: '0', '1'"),
        ({"name": "blobs", "centers": 3, "positive_class": "1"}, [],
         "dataset.positive_class = '1' needs a task of two classes; this one is multiclass with 3 classes"),
        ({"name": "blobs", "centers": 3}, ["--threshold", "0.3"], "--threshold applies to two classes"),
        ({}, ["--threshold", "1.5"], "--threshold 1.5: give a probability between 0 and 1"),
    ],
    ids=["unknown-positive", "positive-of-three", "threshold-of-three", "threshold-out-of-range"],
)
def test_positive_class_and_threshold_errors(tmp_path, dataset, args, expected):
    config = tiny_config(name="p", dataset={"name": "circles", **dataset}, train={"epochs": 2})
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps(config))
    result = invoke("fit", path, "--out", tmp_path / "run", "-q")
    if not args:
        assert result.exit_code == 2 and expected in result.output, result.output
        return
    result = invoke("eval", tmp_path / "run", *args)
    assert result.exit_code == 2 and expected in result.output, result.output
