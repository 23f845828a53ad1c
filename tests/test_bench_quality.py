"""bench/quality.py (`make bench-quality`): end to end on iris (one seed, few epochs) and its verdicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import quality  # noqa: E402


def test_iris_one_seed_end_to_end(tmp_path, capsys):
    code = quality.main(["--tables", "iris", "--seeds", "1", "--models", "clftrain,mlp,hgb", "--clftrain-epochs",
                         "60", "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("quality-*.json")]
    assert len(list(tmp_path.glob("quality-*.md"))) == 1
    runs = record["runs"]
    assert sorted((r["model"], r["seed"]) for r in runs) == [("clftrain", 0), ("hgb", 0), ("mlp", 0)]
    for r in runs:
        assert "error" not in r, r
        assert (r["train_rows"], r["test_rows"]) == (120, 30)
        assert 0.6 <= r["accuracy"] <= 1 and r["seconds"] > 0, r  # iris: far above chance (1/3) for all three
    [mine] = [r for r in runs if r["model"] == "clftrain"]
    # Its test split is the held-out 30 rows; its validation rows come out of the other 120.
    assert mine["same_test_rows"] and mine["rows"] == {"train": 97, "val": 23, "test": 30}
    assert mine["accuracy"] == mine["fit_test_acc"] and mine["epochs_run"] <= 60 and mine["train_seconds"] > 0
    assert mine["features"] == 4 and mine["recipe"]["model"]["layers"] and mine["recipe"]["train"]["epochs"] == 60
    iris = record["tables"]["iris"]
    assert iris["rows"] == 150 and iris["classes"] == {"setosa": 50, "versicolor": 50, "virginica": 50}
    summary = record["summary"]["iris"]
    assert summary["clftrain"]["n"] == 1 and summary["clftrain"]["std"] == 0.0
    assert summary["mlp"]["mean"] == next(r["accuracy"] for r in runs if r["model"] == "mlp")
    targets = record["targets"]
    assert [t.split(":")[0] in ("PASS", "FAIL") for t in targets[:2]] == [True, True]
    assert targets[2].startswith("n.a.") and "RealMLP-TD" in targets[2]  # not asked for
    assert "| iris | 150 | 4 + 0 | 0 | 3 |" in out and "clftrain >= MLPClassifier on every table" in out


def test_the_one_command_fit_on_the_held_out_split(tmp_path, capsys):
    """`auto`: clftrain fit table.csv --target ... with a short budget; its test split is the held-out 30 rows."""
    code = quality.main(["--tables", "iris", "--seeds", "1", "--models", "auto", "--budget", "15s",
                         "--results", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("quality-*.json")]
    [run] = record["runs"]
    assert "error" not in run, run
    assert run["same_test_rows"] and run["rows"]["test"] == 30 and run["accuracy"] == run["fit_test_acc"]
    assert run["accuracy"] >= 0.8 and 1 <= run["members"] <= 8 and run["train_seconds"] > 0
    assert any(line.startswith("n.a.: clftrain fit DATA >= MLPClassifier") for line in record["targets"])


def test_verdicts():
    def entry(mean):
        return {"n": 3, "mean": mean}

    summary = {"a": {"clftrain": entry(0.90), "mlp": entry(0.89), "hgb": entry(0.91), "realmlp": entry(0.905)},
               "b": {"clftrain": entry(0.80), "mlp": entry(0.80), "hgb": entry(0.79), "realmlp": entry(0.80)}}
    mlp, hgb, realmlp = quality.check_targets(summary, ["a", "b"])
    assert mlp.startswith("PASS") and "a +1.00, b +0.00 points" in mlp
    assert hgb.startswith("FAIL") and "1 of 2" in hgb  # most = more than half
    assert realmlp.startswith("PASS") and "-0.25 points" in realmlp
    tie = [0.9855072463768116, 0.9710144927536232, 1.0]  # 204 of 207 held-out rows, as the other's 3 x 68 of 69
    summary["b"] |= {"clftrain": entry(sum(tie) / 3), "mlp": entry(0.9855072463768116)}
    assert summary["b"]["clftrain"]["mean"] < summary["b"]["mlp"]["mean"]  # in the last bit
    assert quality.check_targets(summary, ["a", "b"])[0].endswith("a +1.00, b +0.00 points")
    summary["b"] |= {"clftrain": entry(0.80), "mlp": entry(0.81)}
    summary["b"]["realmlp"] = entry(0.81)
    mlp, _, realmlp = quality.check_targets(summary, ["a", "b"])
    assert mlp.startswith("FAIL") and "behind on 1 of 2: b" in mlp
    assert realmlp.startswith("FAIL") and "-0.75 points" in realmlp
    summary["b"]["realmlp"] = {"n": 0, "note": "not installed (pytabkit)"}
    assert quality.check_targets(summary, ["a", "b"])[2] == ("n.a.: clftrain's mean accuracy within 0.5 points of "
                                                              "RealMLP-TD or better (RealMLP-TD: not installed "
                                                              "(pytabkit))")
    assert quality.losses(summary, ["a", "b"], ["clftrain", "mlp", "hgb"])[0].startswith("INFO: a: clftrain -1.00")
    summary["a"]["clftrain"] |= {"accuracies": [0.90, 0.88, 0.92], "seeds": [0, 1, 2]}
    summary["a"]["hgb"] |= {"accuracies": [0.92, 0.91, 0.90], "seeds": [0, 1, 2]}  # -2, -3, +2 points
    assert quality.losses(summary, ["a"], ["clftrain", "mlp", "hgb"]) == [
        "INFO: a: clftrain -1.00 points against the best other model (HistGB); paired over 3 splits: standard "
        "error 1.53 points, behind on 2, ahead on 1, level on 0"]
    summary["a"]["hgb"]["seeds"] = [0, 1, 3]  # another split: not paired
    assert quality.losses(summary, ["a"], ["clftrain", "hgb"])[0].endswith("(HistGB)")


def test_split_csv_and_held_out_check(tmp_path):
    table = quality.Table("t", "made here", "label",
                          {"x": np.array([1.0, np.nan, 2.5, 3.0] * 5), "c": np.array(["a", np.nan, "b", "a"] * 5,
                                                                                     dtype=object)},
                          np.array(["no", "yes"] * 10, dtype=object))
    assert table.numeric == ["x"] and table.categorical == ["c"] and table.missing_cells() == 10
    train, test = quality.split(table, 3)
    assert len(test) == 4 and sorted([*train, *test]) == list(range(20))
    split = quality.Split(table, 3, train, test, tmp_path)
    assert quality.held_out_rows(split, ["no", "yes"])  # clftrain's split of the same seed: the same rows
    assert not quality.held_out_rows(quality.Split(table, 4, train, test, tmp_path), ["no", "yes"])
    path = quality.write_csv(tmp_path / "t.csv", table, np.array([0, 1, 2]))
    assert path.read_text().splitlines() == ["x,c,label", "1,a,no", ",,yes", "2.5,b,no"]
    assert quality.unavailable(quality.Model("x", quality.run_mlp, ("no_such_package_here",))).startswith(
        "not installed (no_such_package_here;")


def test_tables_are_named_with_their_sources():
    assert set(quality.TABLES) >= {"breast_cancer", "wine", "digits", "iris", "penguins", "chile", "pbc"}
    iris = quality.TABLES["iris"]()
    assert iris.source.startswith("scikit-learn ") and len(iris.y) == 150 and not iris.categorical
    assert Path(quality.RESULTS_DIR).name == "results"
