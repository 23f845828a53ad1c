"""`clftrain init DATA.csv --target COLUMN`: a commented config that fit runs as is, at least as accurate as
scikit-learn's MLPClassifier on the example tables."""

from __future__ import annotations

import json
import statistics
import warnings

import numpy as np
import pytest
import yaml

from clftrain.inference import TrainedRun
from conftest import CONFIGS
from trained_runs import invoke


def write_bundled(tmp_path, loader: str, target: str):
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader)()
    names = [n.replace(" ", "_").replace("(", "").replace(")", "").replace("/", "_") for n in bunch.feature_names]
    lines = [",".join([*names, target])]
    lines += [",".join([*(f"{v:.6g}" for v in row), str(bunch.target_names[label])])
              for row, label in zip(bunch.data, bunch.target)]
    path = tmp_path / f"{loader.removeprefix('load_')}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("table", ["heart", "wine", "breast_cancer"])
def test_an_initialised_config_trains_at_least_as_well_as_mlpclassifier(tmp_path, table):
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    if table == "heart":
        data, target = CONFIGS / "data" / "heart.csv", "disease"
    else:
        data, target = write_bundled(tmp_path, f"load_{table}", "kind"), "kind"
    result = invoke("init", data, "--target", target, "-o", tmp_path / "config.yaml")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    ours, theirs = [], []
    for seed in (0, 1, 2):
        run = tmp_path / f"run-{seed}"
        fitted = invoke("fit", tmp_path / "config.yaml", "--set", f"seed={seed}", "--out", run, "-q")
        assert fitted.exit_code == 0, fitted.output
        ours.append(json.loads((run / "summary.json").read_text())["final"]["test_acc"])
        data_split = TrainedRun.load(run).dataset  # the same rows, already encoded and scaled as fit had them
        mlp = MLPClassifier(hidden_layer_sizes=tuple(config["model"]["layers"]), max_iter=500, random_state=seed)
        with warnings.catch_warnings(), threadpool_limits(1):  # more BLAS threads: far slower on 2 busy cores
            warnings.simplefilter("ignore")  # "did not converge": its own business
            mlp.fit(data_split.X_train, data_split.y_train.reshape(-1))
        theirs.append(float(np.mean(mlp.predict(data_split.X_test) == data_split.y_test.reshape(-1))))
    assert statistics.fmean(ours) >= statistics.fmean(theirs) - 0.01, (ours, theirs)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_init_says_what_it_found_in_the_table(tmp_path, kind):
    rows = ["id,name,age,city,label"]
    rng = np.random.default_rng(0)
    for i in range(120):
        age = "" if i % 10 == 0 else str(20 + int(rng.integers(0, 50)))
        city = "NA" if i == 7 else ['york', 'leeds', 'hull'][i % 3]  # a text cell that reads as missing
        rows.append(f"{1000 + i},person {i},{age},{city},{'yes' if i % 2 else 'no'}")
    table = tmp_path / "people.csv"
    table.write_text("\n".join(rows) + "\n")
    if kind == "parquet":  # the same table, its gaps nulls (age, an int64 column) or the text 'NA' (city)
        import pyarrow.csv
        import pyarrow.parquet

        read = pyarrow.csv.read_csv(table, convert_options=pyarrow.csv.ConvertOptions(null_values=[""]))
        table = tmp_path / "people.parquet"
        pyarrow.parquet.write_table(read, table)
        assert read.column("age").null_count == 12 and read.column("city").null_count == 0
    result = invoke("init", table, "--target", "label", "-o", tmp_path / "people.yaml")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "people.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=clftrain.schema.json\n")
    assert (tmp_path / "clftrain.schema.json").is_file() and "and " in result.output
    assert "# task: binary from the values of 'label'" in text
    assert f"# Written by clftrain init from {table} (120 rows)" in text  # the table's rows, not the training split
    assert "'id': an identifier (a different whole number on every row)" in text
    assert "'name': free text (120 different values in 120 rows)" in text
    assert "# one-hot encoded (text columns): city" in text
    assert "# missing values: age (12), city (1); filled from the training rows" in text and "impute: median" in text
    assert f"  name: {kind}\n" in text and f'  path: "people.{kind}"' in text
    assert invoke("validate", tmp_path / "people.yaml").exit_code == 0
    again = invoke("init", table, "--target", "label", "-o", tmp_path / "people.yaml")
    assert again.exit_code == 2 and "already exists" in again.output  # never over the user's file
    missing = invoke("init", table, "--target", "disease", "-o", tmp_path / "other.yaml")
    assert missing.exit_code == 2 and "has no column(s) 'disease'" in missing.output
    assert not (tmp_path / "other.yaml").exists()
