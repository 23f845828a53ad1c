"""`clftrain predict`: the run's feature order and scaling, a probability per class, class names, errors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from trained_runs import fit_run, invoke, read_csv, write_csv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "binary": fit_run(root, tiny_config(name="binary")),
        # standardize: predict must scale raw CSV features with the training split's mean and std
        "blobs": fit_run(root, tiny_config(name="blobs", dataset={"name": "blobs", "centers": 3, "standardize": True},
                                           train={"optimizer": "adam", "lr": 0.01})),
        "regression": fit_run(root, tiny_config(name="regression", task="regression", dataset={"name": "linear"},
                                                model={"layers": []})),
        "multilabel": fit_run(root, tiny_config(name="multilabel", dataset={"name": "multilabel", "n_features": 3,
                                                                             "n_classes": 3})),
        "table": fit_run(root, {**tiny_config(name="table"), "dataset": {
            "name": "csv", "path": str(write_csv(root / "pets.csv", ["kind", "weight", "legs", "adopted"], PETS)),
            "target": "adopted", "categorical": ["kind"]}}),
    }


# A table with a text column: kind is one-hot encoded, the weight standardised; no imputation.
PETS = [[kind, str(weight), str(legs), "yes" if (kind == "dog") != (weight > 10) else "no"]
        for kind in ("dog", "cat", "bird") for weight in range(2, 20) for legs in (2, 4)]


def raw_test_split(run):
    """The run's test rows before scaling (the same split: it depends on dataset.seed only)."""
    from clftrain.config import load_config, validate_config
    from clftrain.data import build_dataset

    config = load_config(run / "config.yaml").to_dict()
    config["dataset"]["standardize"] = False
    data = build_dataset(validate_config(config))
    return data.X_test, data.y_test


def predict(*args):
    result = invoke("predict", *args)
    assert result.exit_code == 0, result.output
    return result


def test_predict_writes_a_probability_per_class_and_the_class_name(runs, tmp_path):
    from clftrain.inference import TrainedRun

    X, _ = raw_test_split(runs["blobs"])
    path = write_csv(tmp_path / "in.csv", ["id", "x2", "x1", "note"],  # other order, extra columns
                     [[f"r{i}", repr(float(x[1])), repr(float(x[0])), "keep me"] for i, x in enumerate(X)])
    rows = read_csv(predict(runs["blobs"], path).stdout)

    assert list(rows[0]) == ["id", "x2", "x1", "note", "prob_0", "prob_1", "prob_2", "predicted"]
    assert len(rows) == len(X) and [r["id"] for r in rows] == [f"r{i}" for i in range(len(X))]
    assert {r["note"] for r in rows} == {"keep me"}
    probs = np.array([[float(r[f"prob_{k}"]) for k in range(3)] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert [r["predicted"] for r in rows] == [str(k) for k in probs.argmax(axis=1)]
    # the same as the model on the scaled test split it was evaluated on
    run = TrainedRun.load(runs["blobs"])
    expected, _ = run.predict(run.test_split()[0])
    assert np.allclose(probs, expected, atol=1e-5)


def test_binary_gets_both_class_probabilities(runs, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["x1", "x2"], [["0.0", "0.0"], ["1", "0.1"], ["-0.5", "2e-1"]])
    rows = read_csv(predict(runs["binary"], path).stdout)
    assert list(rows[0]) == ["x1", "x2", "prob_0", "prob_1", "predicted"]
    for row in rows:
        assert float(row["prob_0"]) + float(row["prob_1"]) == pytest.approx(1, abs=1e-6)
        assert row["predicted"] == ("1" if float(row["prob_1"]) >= 0.5 else "0")


def test_regression_predicts_values(runs, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["x"], [["0.1"], ["0.5"]])
    rows = read_csv(predict(runs["regression"], path).stdout)
    assert list(rows[0]) == ["x", "predicted"]
    assert all(np.isfinite(float(r["predicted"])) for r in rows)


def test_out_option_writes_the_file(runs, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["x1", "x2"], [["0", "0"], ["1", "1"]])
    out = tmp_path / "sub" / "out.csv"
    result = predict(runs["binary"], path, "-o", out)
    assert "wrote 2 predictions to" in result.output
    assert len(read_csv(out.read_text())) == 2


@pytest.mark.parametrize(
    ("header", "rows", "expected"),
    [
        (["x1", "y"], [["0", "1"]], "has no column(s) 'x2': the run was trained on features x1, x2"),
        (["x1", "x2"], [["0", "0"], ["0", "abc"]], "in.csv line 3, column 'x2': 'abc' is not a finite number"),
        (["x1", "x2"], [["", "0"]], "in.csv line 2, column 'x1': an empty value is not a finite number"),
        (["x1", "x2"], [["nan", "0"]], "in.csv line 2, column 'x1': 'nan' is not a finite number"),
        (["x1", "x2"], [["0", "0", "9"]], "in.csv line 2: 3 values for 2 columns"),
        (["x1", "x2"], [], "in.csv has a header but no data rows"),
        (["x1", "x2", "x1"], [["0", "0", "0"]], "column(s) 'x1' appear more than once"),
        (["x1", "x2", "predicted"], [["0", "0", "a"]], "already has column(s) 'predicted', which predict adds"),
    ],
    ids=["missing-column", "not-a-number", "empty", "nan", "ragged", "no-rows", "duplicate", "clash"],
)
def test_bad_input_is_a_clear_error_naming_column_and_row(runs, tmp_path, header, rows, expected):
    path = write_csv(tmp_path / "in.csv", header, rows)
    result = invoke("predict", runs["binary"], path)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output


def test_missing_or_empty_input_and_overwriting_the_input_are_refused(runs, tmp_path):
    result = invoke("predict", runs["binary"], tmp_path / "none.csv")
    assert result.exit_code == 2 and "CSV file not found" in result.output
    (tmp_path / "empty.csv").write_text("")
    result = invoke("predict", runs["binary"], tmp_path / "empty.csv")
    assert result.exit_code == 2 and "is empty; it needs a header row" in result.output
    path = write_csv(tmp_path / "in.csv", ["x1", "x2"], [["0", "0"]])
    result = invoke("predict", runs["binary"], path, "-o", path)
    assert result.exit_code == 2 and "already exists; choose another path, or pass --force" in result.output
    result = invoke("predict", runs["binary"], path, "-o", path, "--force")
    assert result.exit_code == 2 and "is the input file" in result.output
    assert path.read_text().splitlines() == ["x1,x2", "0,0"]


def test_a_byte_order_mark_from_a_spreadsheet_is_ignored(runs, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("\ufeffx1,x2\n0,0\n", encoding="utf-8")
    assert read_csv(predict(runs["binary"], path).stdout)[0]["x1"] == "0"


def test_multilabel_predicts_each_label_and_lists_those_predicted(runs, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["x1", "x2", "x3"], [["0", "10", "3"], ["20", "1", "2"]])
    rows = read_csv(predict(runs["multilabel"], path).stdout)
    assert list(rows[0]) == ["x1", "x2", "x3", "prob_label1", "prob_label2", "prob_label3", "predicted"]
    for row in rows:
        expected = [name for name in ("label1", "label2", "label3") if float(row[f"prob_{name}"]) >= 0.5]
        assert row["predicted"] == ";".join(expected)


def test_a_csv_dataset_run_takes_the_raw_columns_and_names_its_classes(runs, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["legs", "kind", "weight"], [["4", "dog", "3"], ["2", "bird", "15"]])
    rows = read_csv(predict(runs["table"], path).stdout)
    assert list(rows[0])[-3:] == ["prob_no", "prob_yes", "predicted"]
    assert {row["predicted"] for row in rows} <= {"no", "yes"}


def test_an_unseen_category_is_a_note_and_a_gap_without_imputation_an_error(runs, tmp_path):
    path = write_csv(tmp_path / "in.csv", ["kind", "weight", "legs"], [["hamster", "1", "4"]])
    result = predict(runs["table"], path)
    assert "note: " in result.stderr and "column 'kind': 'hamster' not seen in training" in result.stderr
    assert "known: 'bird', 'cat', 'dog'" in result.stderr and len(read_csv(result.stdout)) == 1
    path = write_csv(tmp_path / "gap.csv", ["kind", "weight", "legs"], [["dog", "", "4"]])
    result = invoke("predict", runs["table"], path)
    assert result.exit_code == 2
    assert "line 2, column 'weight': an empty value is not a finite number; the run was trained without " \
           "dataset.impute" in result.output


def test_checkpoints_from_before_the_preprocessor_still_predict(runs, tmp_path):
    """Early checkpoints kept only `scaler` (mean, std) and the feature names."""
    import shutil

    from clftrain.store import rundir

    run = tmp_path / "old"
    shutil.copytree(runs["blobs"], run)
    last = rundir.checkpoint_path(run, "last")
    payload = rundir.load_checkpoint(last)
    pre = payload.pop("preprocessor")
    payload.pop("format")
    rundir.save_checkpoint(last, {**payload, "scaler": {"mean": pre["mean"], "std": pre["std"]}})
    path = write_csv(tmp_path / "in.csv", ["x1", "x2"], [["0.5", "-1"], ["3", "2"]])
    assert predict(run, path).stdout == predict(runs["blobs"], path).stdout


def test_an_output_file_is_never_overwritten_unless_forced_nor_written_into_checkpoints(runs, tmp_path):
    inputs = write_csv(tmp_path / "in.csv", ["x1", "x2"], [["0", "0"]])
    last = runs["binary"] / "checkpoints" / "last.pt"
    before = last.read_bytes()
    for force in ([], ["--force"]):
        result = invoke("predict", runs["binary"], inputs, "-o", last, *force)
        assert result.exit_code == 2 and "is inside the run directory" in result.output
    assert last.read_bytes() == before
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    result = invoke("predict", runs["binary"], inputs, "-o", out)
    assert result.exit_code == 2 and out.read_text() == "keep me"
    assert invoke("predict", runs["binary"], inputs, "-o", out, "--force").exit_code == 0
    assert out.read_text().startswith("x1,x2,prob_0")
    for command in (["activations", "-o", out], ["compare", runs["binary"], runs["binary"], "-o", out]):
        result = invoke(*command)
        assert result.exit_code == 2 and "already exists" in result.output, command


def test_predict_of_a_diverged_run_is_refused_instead_of_printing_nan(write_config, cli, tmp_path):
    config = {"name": "blowup", "task": "regression", "dataset": {"name": "linear"},
              "train": {"loss": "mse", "lr": 1e6, "epochs": 50}}
    assert cli("fit", write_config(config), "--out", "run", "-q").exit_code == 2  # diverged
    inputs = write_csv(tmp_path / "in.csv", ["x"], [["0.5"]])
    result = cli("predict", "run", inputs)
    assert result.exit_code == 2 and "gives outputs that are not numbers (NaN or infinite): its training diverged" \
        in result.output and "nan" not in result.stdout
