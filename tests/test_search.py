"""`clftrain sweep --trials N`: a random search; distributions in --grid, trials drawn reproducibly, batched by shape."""

from __future__ import annotations

import csv
import json
import math
import random
import re

import pytest
import yaml
from conftest import tiny_config
from trained_runs import invoke

from clftrain.errors import UserError
from clftrain.runs.search_space import Distribution, draw_trials
from clftrain.runs.sweep import parse_grid, plan_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------- parsing
def test_each_distribution_parses_with_its_bounds():
    grid = parse_grid(["train.lr=loguniform(1e-4, 1e-1)", "model.dropout=uniform(0,0.5)", "train.epochs=int(2,10)",
                       "model.layers=choice([8,8],[16])", "train.optimizer=sgd,adam"], search=True)
    assert grid == {
        "train.lr": Distribution("loguniform", (1e-4, 0.1)), "model.dropout": Distribution("uniform", (0, 0.5)),
        "train.epochs": Distribution("int", (2, 10)), "model.layers": Distribution("choice", ([8, 8], [16])),
        "train.optimizer": ["sgd", "adam"],  # a plain list stays a list (a search draws from it as a choice)
    }
    assert [dist.text() for dist in list(grid.values())[:4]] == [
        "loguniform(0.0001, 0.1)", "uniform(0, 0.5)", "int(2, 10)", "choice([8, 8], [16])"]
    # brackets that are not one call stay values of a grid
    assert parse_grid(["name=a(1),b(2)"], search=True) == {"name": ["a(1)", "b(2)"]}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.lr=loguniform(0,1)", r"--grid train.lr=loguniform\(0,1\): loguniform's bounds must be above 0"),
        ("train.lr=loguniform(-1,1)", r"loguniform's bounds must be above 0 \(it draws evenly between their logarithms\); the low bound is -1"),
        ("train.lr=uniform(2,1)", r"--grid train.lr=uniform\(2,1\): the low bound 2 must be below the high bound 1"),
        ("train.lr=uniform(1,1)", r"the low bound 1 must be below the high bound 1 \(one value: give it plainly"),
        ("train.epochs=int(1.5,3)", r"--grid train.epochs=int\(1.5,3\): int's bounds must be whole numbers; 1.5 is not"),
        ("train.epochs=int(3,1)", r"the low bound 3 must be below the high bound 1"),
        ("train.lr=gauss(0,1)", (r"--grid train.lr=gauss\(0,1\): unknown distribution 'gauss'; the distributions "
                                 r"are loguniform\(low,high\), uniform\(low,high\), int\(low,high\), choice\(a,b,...\)")),
        ("train.lr=uniform(1)", r"--grid train.lr=uniform\(1\): uniform takes two bounds, uniform\(low,high\)"),
        ("train.lr=uniform(0,1,2)", r"uniform takes two bounds"),
        ("train.lr=uniform(x,1)", r"--grid train.lr=uniform\(x,1\): the bound x is not a finite number"),
        ("train.lr=uniform(0,inf)", r"the bound inf is not a finite number"),
        ("train.lr=choice()", r"--grid train.lr=choice\(\): choice needs one or more values"),
        ("train.lr=choice(0.1,0.1)", r"--grid train.lr: the value 0.1 is listed twice"),
    ],
)
def test_a_bad_distribution_names_its_value(item, message):
    with pytest.raises(UserError, match=message):
        parse_grid([item], search=True)


def test_a_distribution_without_trials_asks_for_them():
    with pytest.raises(UserError, match=r"--grid train.lr=loguniform\(1e-4,1e-1\): a distribution is drawn from, "
                                        r"not listed: add --trials N"):
        parse_grid(["train.lr=loguniform(1e-4,1e-1)"])
    assert parse_grid(["train.lr=0.1,0.01"]) == {"train.lr": [0.1, 0.01]}  # a grid is as it was


# ---------------------------------------------------------------------- drawing
SPACE = {"train.lr": Distribution("loguniform", (1e-4, 1e-1)), "train.epochs": Distribution("int", (1, 3)),
         "model.layers": Distribution("choice", ([8], [16], [8, 8]))}


def test_draws_are_reproducible_for_a_seed_and_differ_for_another():
    first, again, other = draw_trials(SPACE, 20, 0), draw_trials(SPACE, 20, 0), draw_trials(SPACE, 20, 1)
    assert first == again and len(first) == 20
    assert [t["train.lr"] for t in first] != [t["train.lr"] for t in other]
    assert set(first[0]) == set(SPACE)
    # each key has its own stream: adding a key leaves the other keys' draws as they were
    more = draw_trials({**SPACE, "model.dropout": Distribution("uniform", (0, 0.5))}, 20, 0)
    assert [{k: t[k] for k in SPACE} for t in more] == first
    # and the first trials of a longer search are the shorter search's trials
    assert draw_trials(SPACE, 30, 0)[:20] == first


def test_loguniform_draws_are_within_the_bounds_and_spread_over_the_decades():
    lrs = [t["train.lr"] for t in draw_trials({"train.lr": SPACE["train.lr"]}, 3000, 7)]
    assert all(1e-4 <= lr <= 1e-1 for lr in lrs)
    decades = [sum(lo <= lr < lo * 10 for lr in lrs) / len(lrs) for lo in (1e-4, 1e-3, 1e-2)]
    assert all(0.28 < share < 0.39 for share in decades), decades  # a third each (uniform: 90% in the top one)
    assert all(float(f"{lr:.4g}") == lr for lr in lrs)  # rounded to 4 significant digits
    logs = sorted(math.log10(lr) for lr in lrs)
    assert logs[len(logs) // 2] == pytest.approx(-2.5, abs=0.1)  # the median at the geometric middle


def test_uniform_int_and_choice_draws_stay_in_their_space():
    space = {"a": Distribution("uniform", (-1, 1)), "b": Distribution("int", (1, 3)),
             "c": Distribution("choice", ("x", "y"))}
    trials = draw_trials(space, 500, 3)
    assert all(-1 <= t["a"] <= 1 and isinstance(t["a"], float) for t in trials)
    assert min(t["a"] for t in trials) < -0.9 and max(t["a"] for t in trials) > 0.9
    assert {t["b"] for t in trials} == {1, 2, 3}  # both ends included
    assert {t["c"] for t in trials} == {"x", "y"}
    counts = [sum(t["b"] == v for t in trials) for v in (1, 2, 3)]
    assert min(counts) > 120, counts


def test_trials_of_one_shape_train_as_one_batch(write_config):
    plan = plan_sweep(write_config(tiny_config()), ["train.lr=loguniform(1e-3,1e-1)", "model.layers=[8],[16]",
                                                    "train.optimizer=choice(sgd,adam)"], trials=10, search_seed=2)
    assert [c.index for c in plan.combinations] == list(range(1, 11)) and plan.search == {"trials": 10, "seed": 2}
    layers = [[c.values["model.layers"] for c in batch] for batch in plan.batches]
    assert sorted(batch[0] for batch in layers) == [[8], [16]]  # the two shapes, each one batch
    assert all(len({json.dumps(v) for v in batch}) == 1 for batch in layers)
    assert sum(map(len, plan.batches)) == 10
    assert plan.combinations[0].config.train.lr == plan.combinations[0].values["train.lr"]


# ---------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    config = root / "base.yaml"
    config.write_text(yaml.safe_dump(tiny_config(train={"epochs": 4, "log_every": 2})))
    grid = ["train.lr=loguniform(1e-3,1e-1)", "model.layers=[8],[16]"]
    result = invoke("sweep", config, "--trials", "4", "--search-seed", "5", "--out", root / "sweep",
                    *(arg for item in grid for arg in ("--grid", item)))
    assert result.exit_code == 0, result.output
    return root / "sweep", result.output, plan_sweep(config, grid, trials=4, search_seed=5)


def test_a_search_trains_each_trial_into_its_run_directory(search_run):
    sweep, output, plan = search_run
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == sorted(c.dir_name for c in plan.combinations) and len(runs) == 4
    assert [name[:3] for name in runs] == ["01-", "02-", "03-", "04-"]
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    assert len(rows) == 4 and list(rows[0])[:4] == ["rank", "run", "train.lr", "model.layers"]
    drawn = {c.dir_name: c.values for c in plan.combinations}
    for row in rows:
        values = drawn[row["run"]]
        assert float(row["train.lr"]) == values["train.lr"] and 1e-3 <= values["train.lr"] <= 1e-1
        assert yaml.safe_load(row["model.layers"]) == values["model.layers"]
        config = yaml.safe_load((sweep / row["run"] / "config.yaml").read_text())
        assert (config["train"]["lr"], config["model"]["layers"]) == (values["train.lr"], values["model.layers"])
        assert row["status"] == "completed" and int(row["batch"]) >= 1
    scores = [float(r["val_acc_mean"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    record = json.loads((sweep / "sweep.json").read_text())
    assert record["search"] == {"trials": 4, "seed": 5}
    assert record["grid"] == {"train.lr": ["loguniform(0.001, 0.1)"], "model.layers": ["[8]", "[16]"]}
    assert record["batches"] == [[c.dir_name for c in batch] for batch in plan.batches]
    assert "runs ranked by final val accuracy" in output


def test_a_search_directory_reports_like_a_grid(search_run):
    sweep, _, plan = search_run
    result = invoke("report", sweep)
    assert result.exit_code == 0, result.output
    html = (sweep / "report.html").read_text()
    assert "loguniform(0.001, 0.1)" in html and plan.combinations[0].dir_name in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "2", "--grid", "train.lr=loguniform(0,1)"], r"loguniform\(0,1\): loguniform's bounds must be above 0"),
        (["--trials", "2", "--grid", "train.lr=uniform(2,1)"], r"the low bound 2 must be below the high bound 1"),
        (["--trials", "2", "--grid", "train.epochs=int(1.5,3)"], r"int's bounds must be whole numbers; 1.5 is not"),
        (["--trials", "2", "--grid", "train.lr=normal(0,1)"], r"unknown distribution 'normal'"),
        (["--trials", "0", "--grid", "train.lr=uniform(0.1,0.2)"], r"--trials 0: a search draws at least 1 trial"),
        (["--trials", "257", "--grid", "train.lr=uniform(0.1,0.2)"], r"--trials 257: a sweep trains at most 256 runs"),
        (["--trials", "2", "--grid", "train.lrr=uniform(0.1,0.2)"],
         r"train.lrr: unknown key \(did you mean 'lr'\?\) \(from --grid train.lrr\)"),
        (["--trials", "3", "--grid", "model.dropout=uniform(1,2)"],
         (r"invalid sweep of .* \(3 trials drawn with --search-seed 0\):\n  - model.dropout = 1\.\d+: .*"
          r"\(from --grid model.dropout\)")),
        (["--trials", "2", "--grid", "train.epochs=uniform(2,5)"],
         r"train.epochs = [\d.]+: Input should be a valid integer.*\(from --grid train.epochs\)"),
        (["--grid", "train.lr=loguniform(1e-3,1e-1)"], r"a distribution is drawn from, not listed: add --trials N"),
        (["--search-seed", "3", "--grid", "train.lr=0.1,0.2"], r"--search-seed 3: seeds the draws of a random search"),
    ],
    ids=["loguniform-zero", "uniform-reversed", "int-float", "unknown", "zero-trials", "too-many", "unknown-key",
         "refused-draw", "float-epochs", "no-trials", "seed-without-trials"],
)
def test_bad_searches_exit_2_and_write_nothing(write_config, cli, tmp_path, args, message):
    result = cli("sweep", write_config(tiny_config()), *args, "--out", tmp_path / "sweep")
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "runs").exists()


def test_the_draws_use_python_random_only():
    """The stream is random.Random's random() (stable across Python versions), seeded by text."""
    rng = random.Random("clftrain-search/0/x")
    u = rng.random()
    assert draw_trials({"x": Distribution("uniform", (0, 1))}, 1, 0) == [{"x": float(f"{u:.4g}")}]
