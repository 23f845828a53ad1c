"""The user's own CSV files: columns, categories, missing values, task inference and every bad-file case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clftrain.config import load_config
from clftrain.data import build_dataset

HEART = """age,sex,smoking,weight,disease
61,male,current,90.5,yes
45,female,never,61.0,no
70,male,former,80.2,yes
33,female,never,55.1,no
52,male,never,77.0,no
66,female,current,72.3,yes
58,male,former,88.8,yes
29,female,never,50.0,no
"""


def csv_config(tmp_path, text: str = HEART, **dataset) -> dict:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "table.csv").write_text(text)
    return {"name": "csv", "dataset": {"name": "csv", "path": "data/table.csv", "target": "disease",
                                       "test_size": 0.25, **dataset},
            "model": {"layers": [8]}, "train": {"epochs": 5, "log_every": 5}}


def build(write_config, tmp_path, text=HEART, **dataset):
    path = write_config(csv_config(tmp_path, text, **dataset))
    return build_dataset(load_config(path))


def test_string_labels_become_class_names_and_categories_are_one_hot(write_config, tmp_path):
    data = build(write_config, tmp_path, categorical=["sex", "smoking"])
    assert data.task.name == "binary" and data.class_names == ["no", "yes"]
    assert data.feature_names[:2] == ["age", "weight"]
    assert set(data.feature_names[2:]) <= {"sex=female", "sex=male", "smoking=current", "smoking=former", "smoking=never"}
    onehot = data.X_train[:, 2:]
    assert set(np.unique(onehot)) <= {0.0, 1.0}


def test_categorical_auto_detects_text_columns(write_config, tmp_path):
    data = build(write_config, tmp_path, categorical="auto")
    assert set(data.preprocessor.categorical) == {"sex", "smoking"}


def test_features_option_picks_columns(write_config, tmp_path):
    data = build(write_config, tmp_path, features=["age", "weight"])
    assert data.feature_names == ["age", "weight"]


def test_path_is_relative_to_the_config_file(write_config, tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    config = load_config(write_config(csv_config(tmp_path, categorical="auto")))
    assert config.dataset.path == str((tmp_path / "data" / "table.csv").resolve())


def test_task_inference_from_targets(write_config, tmp_path):
    three = HEART + "40,male,never,70.0,maybe\n41,female,never,60.0,maybe\n"
    data = build(write_config, tmp_path, three, categorical="auto", test_size=0.3)
    assert data.task.name == "multiclass" and data.class_names == ["maybe", "no", "yes"]
    floats = "x,y\n" + "".join(f"{i % 9},{i * 0.7 + 0.31}\n" for i in range(20))
    data = build(write_config, tmp_path, floats, target="y")
    assert data.task.name == "regression" and data.class_names == []


def test_several_target_columns_make_a_multilabel_task(write_config, tmp_path):
    text = "a,b,red,round\n" + "".join(f"{i},{i % 3},{i % 2},{int(i % 3 == 0)}\n" for i in range(24))
    data = build(write_config, tmp_path, text, target=["red", "round"])
    assert data.task.name == "multilabel" and data.class_names == ["red", "round"]
    assert data.y_train.shape[1] == 2


def test_missing_values_are_imputed_from_training_rows_when_asked(write_config, tmp_path):
    text = HEART.replace("45,female,never,61.0", "NA,female,,61.0")
    data = build(write_config, tmp_path, text, categorical="auto", impute="median")
    pre = data.preprocessor
    assert "age" in pre.fill and pre.fill["smoking"] in {"current", "former", "never"}
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()


@pytest.mark.parametrize(
    ("text", "dataset", "expected"),
    [
        ("", {}, "is empty"),
        ("age,disease\n", {}, "has a header but no data rows"),
        (HEART, {}, "line 2, column 'sex': 'male' is not a number; declare the column in dataset.categorical"),
        (HEART, {"target": "outcome", "categorical": "auto"}, "dataset.target: .* has no column\\(s\\) 'outcome'; its columns are: age, sex"),
        (HEART.replace("yes", "no"), {"categorical": "auto"}, "the target column 'disease' has a single class \\('no'\\)"),
        (HEART.replace("45,female,never,61.0", "45,female,never,"), {"categorical": "auto"},
         "missing values in 'weight' \\(1 of 8 rows\\); set dataset.impute"),
        (HEART.replace("45,female,never,61.0,no", "45,female,never,61.0,"), {"categorical": "auto"},
         "line 3: the target column 'disease' is empty"),
        (HEART, {"features": ["age", "disease"]}, "includes the target column\\(s\\) 'disease'"),
        (HEART, {"features": ["age", "bmi"]}, "dataset.features: .* has no column\\(s\\) 'bmi'"),
        (HEART, {"categorical": ["colour"]}, "dataset.categorical names 'colour', which are not feature columns"),
        (HEART.replace("61,male,current,90.5,yes", "61,male,current,90.5"), {}, "line 2: 4 values for 5 columns"),
        ("a,a,disease\n1,2,yes\n3,4,no\n", {}, "column\\(s\\) 'a' appear more than once"),
        ("x,r,g\n1,1,0\n2,maybe,1\n", {"target": ["r", "g"]}, "line 3, column 'r': 'maybe' is not 0/1"),
        ("a,disease\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(20)) + "1e309,1\n", {"categorical": "auto"},
         "line 22, column 'a': '1e309' is not a finite number"),
        ("a,disease\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(20)) + "inf,1\n", {"categorical": "auto"},
         "line 22, column 'a': 'inf' is not a finite number"),
        ("a,b,disease\n1e300,1,0\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(20)), {"standardize": False},
         "column 'a', data row 1: the value does not fit in float32"),
        ("disease\n" + "0\n1\n" * 10, {}, "has no feature columns besides the target"),
    ],
    ids=["empty", "header-only", "non-numeric", "absent-target", "single-class", "missing-values", "missing-target",
         "target-as-feature", "absent-feature", "unknown-categorical", "ragged-row", "duplicate-header", "multilabel-not-01",
         "beyond-float64", "infinite-cell", "beyond-float32", "only-the-target"],
)
def test_bad_csv_files_exit_2_naming_the_column_or_row(cli, write_config, tmp_path, text, dataset, expected):
    result = cli("fit", write_config(csv_config(tmp_path, text, **dataset)))
    assert result.exit_code == 2, result.output
    assert __import__("re").search(expected, result.output), result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_csv_file_not_found_is_a_config_error(cli, write_config, tmp_path):
    config = csv_config(tmp_path)
    config["dataset"]["path"] = "data/nope.csv"
    result = cli("fit", write_config(config))
    assert result.exit_code == 2 and "dataset.path = 'data/nope.csv': CSV file not found" in result.output


def test_csv_run_end_to_end_with_predict_on_unseen_categories(cli, write_config, tmp_path):
    result = cli("fit", write_config(csv_config(tmp_path, categorical="auto")), "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["classes"] == ["no", "yes"] and summary["task"] == "binary"
    assert "task: binary" in (tmp_path / "run" / "config.yaml").read_text()  # resolved from the data
    (tmp_path / "new.csv").write_text("age,sex,smoking,weight,patient\n50,male,vaping,80,p1\n40,other,never,60,p2\n")
    result = cli("predict", tmp_path / "run", tmp_path / "new.csv")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()  # the CSV; notes on unseen categories go to stderr
    assert "'vaping' not seen in training" in result.stderr and "'other' not seen in training" in result.stderr
    assert lines[0] == "age,sex,smoking,weight,patient,prob_no,prob_yes,predicted"
    assert [line.split(",")[-1] for line in lines[1:]] in (["no", "no"], ["no", "yes"], ["yes", "no"], ["yes", "yes"])


def test_predict_names_column_and_row_of_bad_values(cli, write_config, tmp_path):
    cli("fit", write_config(csv_config(tmp_path, categorical="auto")), "--out", tmp_path / "run", "-q")
    (tmp_path / "bad.csv").write_text("age,sex,smoking,weight\n50,male,never,heavy\n")
    result = cli("predict", tmp_path / "run", tmp_path / "bad.csv")
    assert result.exit_code == 2 and "line 2, column 'weight': 'heavy' is not a finite number" in result.output
    (tmp_path / "short.csv").write_text("age,sex\n50,male\n")
    result = cli("predict", tmp_path / "run", tmp_path / "short.csv")
    assert result.exit_code == 2 and "no column(s) 'weight', 'smoking'" in result.output


def test_numeric_tables_take_the_fast_parser_and_agree_with_the_careful_one(write_config, tmp_path, monkeypatch):
    from clftrain.data import arrow_tables, tabular

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).round(4)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    text = "a,b,c,d,label\n" + "".join(",".join(map(str, [*row, int(t)])) + "\n" for row, t in zip(X, y))
    path = write_config(csv_config(tmp_path, text, target="label"))
    fast = build_dataset(load_config(path))

    monkeypatch.setattr(tabular, "read_numeric", lambda cfg: None)  # force the careful path
    monkeypatch.setattr(arrow_tables, "read_csv_typed", lambda cfg: None)
    careful = build_dataset(load_config(path))
    assert fast.task.name == careful.task.name == "multiclass"
    assert fast.class_names == careful.class_names == ["0", "1", "2"]
    np.testing.assert_allclose(fast.X_train, careful.X_train, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fast.y_test, careful.y_test)

    monkeypatch.undo()
    monkeypatch.setattr(tabular.CsvTable, "read", lambda p: (_ for _ in ()).throw(AssertionError("slow path used")))
    build_dataset(load_config(path))  # succeeds without the per-cell reader


def test_a_huge_finite_value_is_standardised_in_float64_and_trains(write_config, tmp_path):
    """1e308 is finite, but its square is not: the statistics are computed on the scaled column."""
    text = "a,b,disease\n1e308,1,0\n" + "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40))
    data = build(write_config, tmp_path, text)
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()
    assert np.isfinite(data.preprocessor.mean).all() and np.isfinite(data.preprocessor.std).all()


def test_class_ids_that_float32_would_merge_stay_apart(write_config, tmp_path):
    text = "a,disease\n" + "".join(f"{i % 7},{16777216 + i % 2}\n" for i in range(20))
    data = build(write_config, tmp_path, text)
    assert data.class_names == ["16777216", "16777217"] and data.task.name == "binary"


def test_rows_starting_with_a_hash_are_rows(write_config, tmp_path):
    """numpy's reader would skip them as comments; a table has no comments."""
    text = "a,b,disease\n" + "".join(f"{i % 9},{i % 5},{i % 2}\n" for i in range(19)) + "#7,1,0\n"
    result_rows = lambda data: len(data.X_train) + len(data.X_test)  # noqa: E731
    data = build(write_config, tmp_path, text, categorical="auto")
    assert result_rows(data) == 20 and "a" in data.preprocessor.categorical  # '#7' is text: a category
    numeric = "a,b,disease\n" + "".join(f"{i % 9},{i % 5},{i % 2}\n" for i in range(20))
    assert result_rows(build(write_config, tmp_path, numeric)) == 20


def test_a_csv_path_that_is_a_fifo_is_refused_without_reading(cli, write_config, tmp_path):
    import os

    config = csv_config(tmp_path)
    os.mkfifo(tmp_path / "data" / "pipe.csv")
    config["dataset"]["path"] = "data/pipe.csv"
    result = cli("fit", write_config(config))
    assert result.exit_code == 2 and "is not a regular file (a directory, FIFO, socket or device)" in result.output


@pytest.mark.parametrize(
    ("text", "task", "expected"),
    [
        ("a,disease\n" + "".join(f"{i % 13},{i % 10}\n" for i in range(60)), "binary",
         r"task = 'binary' does not fit the targets of .*table.csv: they hold 10 classes \(0: 6, 1: 6, 2: 6, 3: 6, 4: 6, "
         r"5: 6, \.\.\. 4 more\); binary needs exactly 2; use task: auto or multiclass"),
        (HEART, "multilabel", r"task = 'multilabel' does not fit the targets of .*: they hold 2 classes \(no: 4, yes: 4\); "
                              r"use task: auto or binary"),
        ("a,disease\n" + "".join(f"{i % 7},{i * 0.37}\n" for i in range(20)), "binary",
         r"they hold a regression task; use task: auto or regression"),
    ],
    ids=["binary-on-ten-classes", "multilabel-on-one-column", "binary-on-values"],
)
def test_a_forced_task_the_targets_contradict_is_refused_with_what_they_hold(cli, write_config, tmp_path, text, task,
                                                                            expected):
    config = csv_config(tmp_path, text, categorical="auto")
    config["task"] = task
    result = cli("fit", write_config(config))
    assert result.exit_code == 2 and __import__("re").search(expected, result.output), result.output
    assert not (tmp_path / "runs").exists()


def test_two_classes_train_as_binary_or_as_two_way_multiclass(write_config, tmp_path):
    for task in ("binary", "multiclass"):
        config = csv_config(tmp_path, categorical="auto")
        config["task"] = task
        assert build_dataset(load_config(write_config(config))).task.name == task


PEOPLE = "id,name,age,city,bought\n" + "".join(
    f"{1000 + i},person{i},{20 + i % 40},{['Paris', 'Lyon', 'Nice'][i % 3]},{int(i % 3 == 0 or i % 7 == 0)}\n"
    for i in range(60))


def test_identifier_and_free_text_columns_are_left_out_with_a_note(cli, write_config, tmp_path):
    config = csv_config(tmp_path, PEOPLE, target="bought", categorical="auto")
    result = cli("fit", write_config(config), "--out", "run", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["features"] == ["age", "city=Lyon", "city=Nice", "city=Paris"]  # no 'name=person0', ...
    note = summary["notes"][0]
    assert "left out of the inputs, 'id': an identifier (a different whole number on every row); 'name': free text " \
           "(60 different values in 60 rows); to use them anyway, list the input columns in dataset.features" in note
    assert "note: " in cli("fit", write_config(config), "--out", "run2").output


def test_chosen_features_are_kept_and_exclude_drops_columns(write_config, tmp_path):
    data = build(write_config, tmp_path, PEOPLE, target="bought", features=["id", "age"])
    assert data.feature_names == ["id", "age"] and data.notes == []
    data = build(write_config, tmp_path, PEOPLE, target="bought", categorical="auto", exclude=["city"])
    assert data.feature_names == ["age"]
    numeric = "row,a,b,y\n" + "".join(f"{i},{i % 7},{(i * 3) % 5},{i % 2}\n" for i in range(60))
    data = build(write_config, tmp_path, numeric, target="y")  # the fast numeric path too
    assert data.feature_names == ["a", "b"] and "'row': an identifier" in data.notes[0]


def test_a_categorical_column_with_too_many_categories_is_refused(cli, write_config, tmp_path):
    text = "code,x,y\n" + "".join(f"c{i % 300},{i},{i % 2}\n" for i in range(900))
    result = cli("fit", write_config(csv_config(tmp_path, text, target="y", categorical=["code"])))
    assert result.exit_code == 2 and "column 'code' has 300 categories; one-hot encoding more than 200 would drown " \
        "the other inputs: leave it out with dataset.exclude: ['code']" in result.output
