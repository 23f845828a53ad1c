"""`dataset: {name: parquet}`: a Parquet file or a folder of them, read by pyarrow with the CSV reader's keys, choices
and checks; the same table as CSV and as Parquet gives the same dataset and the same run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clftrain.config import load_config
from clftrain.data import build_dataset
from conftest import tiny_config


def table(rows: int = 120, seed: int = 0) -> pa.Table:
    """Numbers with gaps, a dictionary-encoded category, an identifier, text labels."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    label = np.where(x1 + x2 + (colour == "red") > 0.3, "sick", "well")
    gaps = [None if i % 11 == 0 else float(v) for i, v in enumerate(x2)]
    return pa.table({"id": np.arange(rows), "x1": x1, "x2": pa.array(gaps, pa.float64()),
                     "colour": pa.array(colour).dictionary_encode(), "label": label})


def write_csv(data: pa.Table, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(data.column_names)
        for row in data.to_pylist():
            writer.writerow(["" if row[k] is None else row[k] for k in data.column_names])


def config(path, **dataset) -> dict:
    name = "csv" if str(path).endswith(".csv") else "parquet"
    return {**tiny_config(train={"epochs": 6, "log_every": 3}),
            "dataset": {"name": name, "path": str(path), "target": "label", "categorical": "auto", "impute": "mean",
                        **dataset}}


def build(write_config, path, **dataset):
    return build_dataset(load_config(write_config(config(path, **dataset))))


def test_a_table_as_parquet_as_a_folder_of_parquet_and_as_csv_is_one_dataset(tmp_path, write_config, cli):
    data = table()
    pq.write_table(data, tmp_path / "t.parquet")
    (tmp_path / "parts").mkdir()
    pq.write_table(data.slice(0, 50), tmp_path / "parts" / "a.parquet")
    pq.write_table(data.slice(50), tmp_path / "parts" / "b.parquet")
    write_csv(data, tmp_path / "t.csv")
    built = {name: build(write_config, tmp_path / name) for name in ("t.parquet", "parts", "t.csv")}
    reference = built["t.csv"]
    for name, dataset in built.items():
        assert dataset.feature_names == reference.feature_names == ["x1", "x2", "colour=blue", "colour=green",
                                                                    "colour=red"], name
        assert dataset.class_names == ["sick", "well"] and dataset.notes[0].endswith(reference.notes[0].split(": ", 1)[1])
        for split in ("X_train", "y_train", "X_test", "y_test"):
            assert np.array_equal(getattr(dataset, split), getattr(reference, split)), (name, split)
    # the same run from either file
    runs = {}
    for name in ("t.parquet", "t.csv"):
        out = f"run-{name}"
        assert cli("fit", write_config(config(tmp_path / name), f"{name}.yaml"), "--out", out, "-q").exit_code == 0
        runs[name] = [{k: v for k, v in r.items() if k != "seconds"}
                      for r in csv.DictReader((tmp_path / out / "metrics.csv").open())]
    assert runs["t.parquet"] == runs["t.csv"]
    # a Parquet run is a run: eval and predict take a CSV with its columns
    assert cli("eval", "run-t.parquet").exit_code == 0
    predicted = cli("predict", "run-t.parquet", tmp_path / "t.csv", "-o", tmp_path / "out.csv")
    assert predicted.exit_code == 0, predicted.output
    assert len(list(csv.DictReader((tmp_path / "out.csv").open()))) == 120


def test_regression_multilabel_and_boolean_columns(tmp_path, write_config):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "flag": x[:, 0] > 0, "label": x[:, 0] * 2.5 + 0.1}),
                   tmp_path / "r.parquet")
    regression = build(write_config, tmp_path / "r.parquet")
    assert regression.task.name == "regression" and regression.feature_names == ["a", "b", "flag"]
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "up": x[:, 0] > 0, "right": (x[:, 1] > 0).astype(int)}),
                   tmp_path / "m.parquet")
    multilabel = build(write_config, tmp_path / "m.parquet", target=["up", "right"])
    assert multilabel.task.name == "multilabel" and multilabel.class_names == ["up", "right"]
    assert set(np.unique(multilabel.y_train)) == {0.0, 1.0}


@pytest.mark.parametrize(("change", "dataset", "expected"), [
    ("gaps", {"impute": None}, "has missing values in 'x2' (11 of 120 rows); set dataset.impute"),
    ("text", {"categorical": []}, "column 'colour' holds string values, not numbers; declare it in dataset.categorical"),
    ("inf", {}, "column 'x1', row 4: inf is not a finite number"),
    ("one class", {}, "the target column 'label' has a single class ('well')"),
    ("no target", {"target": "nope"}, "dataset.target: "),
    ("empty label", {}, "row 3: the target column 'label' is empty"),
])
def test_bad_tables_are_clear_errors(tmp_path, write_config, cli, change, dataset, expected):
    data = table()
    if change == "inf":
        x1 = data.column("x1").to_numpy().copy()
        x1[3] = np.inf
        data = data.set_column(1, "x1", pa.array(x1))
    elif change == "one class":
        data = data.set_column(4, "label", pa.array(["well"] * 120))
    elif change == "empty label":
        data = data.set_column(4, "label", pa.array([None if i == 2 else "well" if i % 2 else "sick"
                                                     for i in range(120)]))
    pq.write_table(data, tmp_path / "t.parquet")
    result = cli("fit", write_config(config(tmp_path / "t.parquet", **dataset)))
    assert result.exit_code == 2 and expected in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()


def test_paths_that_are_not_parquet(tmp_path, write_config, cli):
    (tmp_path / "empty").mkdir()
    result = cli("fit", write_config(config(tmp_path / "empty")))
    assert result.exit_code == 2 and "holds no .parquet files" in result.output
    (tmp_path / "fake.parquet").write_text("a,b\n1,2\n")
    result = cli("fit", write_config(config(tmp_path / "fake.parquet")))
    assert result.exit_code == 2 and "cannot read Parquet" in result.output
    result = cli("validate", write_config(config(tmp_path / "missing.parquet")))
    assert result.exit_code == 2 and "Parquet file or folder not found" in result.output
    summary = json.dumps(config(tmp_path / "missing.parquet"))  # the schema names the new dataset
    assert "parquet" in summary and "parquet" in cli("schema").output


# CSV files pyarrow's typed reader must read as the careful one does, or leave to it (None)
TRICKY = {
    "plain mixed": ("a,b,colour,label\n" + "".join(f"{i * 0.5},{i % 3},{'red' if i % 2 else 'blue'},{i % 2}\n"
                                                  for i in range(30)), True),
    "gaps spelled many ways": ("a,colour,label\n" + "".join(f"{['', 'NA', 'n/a', 'NaN', 'null', 'None', '?', '1.5'][i % 8]},"
                                                         f"{'x' if i % 3 else 'NULL'},{'yes' if i % 2 else 'no'}\n"
                                                         for i in range(32)), True),
    "byte-order mark": ("\ufeffa,colour,label\n" + "".join(f"{i},{'u' if i % 2 else 'v'},{i % 2}\n" for i in range(10)), True),
    "an identifier and free text": ("id,name,a,colour,label\n" + "".join(f"{i},person {i},{i % 4},{'p' if i % 3 else 'q'},{i % 2}\n"
                                                                      for i in range(40)), True),
    "fractional target": ("a,colour,label\n" + "".join(f"{i},{'u' if i % 2 else 'v'},{i / 3:.3f}\n" for i in range(12)), True),
    "whole numbers written 1.0": ("a,colour,label\n" + "".join(f"{i},{'u' if i % 2 else 'v'},{i % 2}.0\n" for i in range(12)), True),
    "padded text": ("a,colour,label\n" + "".join(f"{i}, {'u' if i % 2 else 'v'},{i % 2}\n" for i in range(12)), False),
    "padded number": ("a,colour,label\n" + "".join(f" {i},{'u' if i % 2 else 'v'},{i % 2}\n" for i in range(12)), None),
    "true/false text": ("a,flag,label\n" + "".join(f"{i},{'true' if i % 2 else 'false'},{i % 2}\n" for i in range(12)), True),
    "dates": ("a,day,label\n" + "".join(f"{i},2024-01-{i + 1:02d},{i % 2}\n" for i in range(12)), False),
    "ragged": ("a,colour,label\n1,u,0\n2,v\n3,u,1\n", None),
    "inf": ("a,colour,label\n" + "".join(f"{'inf' if i == 5 else i},{'u' if i % 2 else 'v'},{i % 2}\n" for i in range(12)), None),
    "blank-ish line": ("a,colour,label\n" + "".join(f"{i},{'u' if i % 2 else 'v'},{i % 2}\n" for i in range(12)) + " , , \n", None),
}


@pytest.mark.parametrize("case", list(TRICKY))
def test_the_typed_csv_reader_reads_as_the_careful_one_or_leaves_the_file_to_it(tmp_path, case):
    from types import SimpleNamespace

    from clftrain.data import arrow_tables, tabular
    from clftrain.errors import UserError

    text, typed_expected = TRICKY[case]
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    cfg = SimpleNamespace(path=str(tmp_path / "t.csv"), target="label", features=None, exclude=[],
                          categorical="auto", impute="mean")
    typed = arrow_tables.read_csv_typed(cfg)
    try:
        careful = tabular.read_careful(cfg)
    except UserError:
        careful = None  # then the typed reader must have left it too: the careful one says what is wrong
    if typed_expected is not None:
        assert (typed is not None) == typed_expected, case
    if typed is None:
        return
    assert careful is not None
    assert (typed.feature_names, typed.class_names, typed.categorical, typed.task, typed.notes) == \
        (careful.feature_names, careful.class_names, careful.categorical, careful.task, careful.notes)
    assert np.array_equal(typed.y, careful.y)
    for name, values in careful.X.items():
        if values.dtype == object:
            assert list(typed.X[name]) == list(values), name
        else:
            assert np.array_equal(typed.X[name], values, equal_nan=True), name


def test_column_names_come_from_the_schema_of_a_file_or_a_folder(tmp_path):
    from clftrain.data.arrow_tables import read_column_names

    data = table()
    pq.write_table(data, tmp_path / "one.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(data.slice(0, 60), folder / "a.parquet")
    pq.write_table(data.slice(60), folder / "b.parquet")
    names = ["id", "x1", "x2", "colour", "label"]
    assert read_column_names(tmp_path / "one.parquet") == names
    assert read_column_names(folder) == names
