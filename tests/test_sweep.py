"""`clftrain sweep`: every grid combination gets a run directory; configs of one shape train as one batch."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from clftrain.config import validate_config
from clftrain.training import setup_group
from clftrain.runs import parse_grid, plan_sweep, shape_key
from conftest import CONFIGS, tiny_config
from trained_runs import invoke, metrics_rows


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    config = root / "base.yaml"
    config.write_text(yaml.safe_dump(tiny_config(train={"epochs": 6, "log_every": 3})))
    result = invoke("sweep", config, "--grid", "train.lr=0.1,0.03,0.01", "--grid", "model.layers=[8,8],[16]",
                    "--seeds", "0-1", "--out", root / "sweep")
    assert result.exit_code == 0, result.output
    return root / "sweep", result.output, config


def test_sweep_directory_layout(sweep_run):
    sweep, _, _ = sweep_run
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["01-lr=0.1-layers=8-8", "02-lr=0.1-layers=16", "03-lr=0.03-layers=8-8", "04-lr=0.03-layers=16",
                    "05-lr=0.01-layers=8-8", "06-lr=0.01-layers=16"]
    assert sorted(p.name for p in sweep.iterdir() if p.is_file()) == ["sweep.csv", "sweep.json"]
    for run in runs:
        files = {p.name for p in (sweep / run).iterdir()}
        assert {"config.yaml", "metrics.csv", "summary.json", "checkpoints", "plots"} <= files, run
    config = yaml.safe_load((sweep / "04-lr=0.03-layers=16" / "config.yaml").read_text())
    assert (config["train"]["lr"], config["model"]["layers"], config["seeds"]) == (0.03, [16], [0, 1])
    summary = json.loads((sweep / "04-lr=0.03-layers=16" / "summary.json").read_text())
    assert summary["batch"] == {"replicas": 6, "runs": 3}  # trained with the other [16] runs


def test_configs_of_one_shape_train_as_one_batch(sweep_run):
    sweep, output, _ = sweep_run
    record = json.loads((sweep / "sweep.json").read_text())
    assert record["batches"] == [["01-lr=0.1-layers=8-8", "03-lr=0.03-layers=8-8", "05-lr=0.01-layers=8-8"],
                                 ["02-lr=0.1-layers=16", "04-lr=0.03-layers=16", "06-lr=0.01-layers=16"]]
    assert record["grid"] == {"train.lr": ["0.1", "0.03", "0.01"], "model.layers": ["[8, 8]", "[16]"]}
    assert "batch 1/2: 3 runs, 6 replicas as one batched model" in output


def test_sweep_csv_is_ranked_and_the_console_shows_it(sweep_run):
    sweep, output, _ = sweep_run
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    assert len(rows) == 6 and [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    scores = [float(r["val_acc_mean"]) for r in rows]  # ranked on validation: the test split only reports
    assert scores == sorted(scores, reverse=True)
    for row in rows:
        summary = json.loads((sweep / row["run"] / "summary.json").read_text())
        assert float(row["test_acc_mean"]) == pytest.approx(summary["spread"]["final"]["test_acc"]["mean"])
        assert float(row["test_acc_min"]) <= float(row["test_acc_mean"]) <= float(row["test_acc_max"])
        assert row["seeds"] == "0 1" and row["status"] == "completed"
    assert list(rows[0])[:4] == ["rank", "run", "train.lr", "model.layers"]
    assert "runs ranked by final val accuracy" in output and "wrote " in output
    table = output[output.index("runs ranked by"):output.index("wrote ")].splitlines()
    assert max(len(line) for line in table if "─" in line or "%" in line) <= 80  # a pipe's console: readable there
    numbered = [line.split()[:2] for line in table if line.split() and line.split()[0].isdigit()]
    assert numbered == [[r["rank"], r["run"].split("-")[0]] for r in rows]  # a run is its number, best first
    for row in rows:  # each number whole, never cut to fit
        mean, std = float(row["val_acc_mean"]), float(row["val_acc_std"])
        assert f"{mean:.2%} ± {std:.2%}" in output and f"{float(row['test_loss_mean']):.4f}" in output
    assert f"run NN: {sweep}/NN-... (sweep.csv has every column)" in output.replace("\n", " ")


def test_a_run_trained_in_a_sweep_equals_it_trained_alone(sweep_run, tmp_path):
    sweep, _, base = sweep_run
    config = tmp_path / "alone.yaml"  # the sweep run's resolved config: its validation split was carved for ranking
    config.write_text((sweep / "04-lr=0.03-layers=16" / "config.yaml").read_text())
    assert invoke("fit", config, "--out", tmp_path / "alone", "-q").exit_code == 0
    mine, theirs = metrics_rows(sweep / "04-lr=0.03-layers=16"), metrics_rows(tmp_path / "alone")
    for a, b in zip(mine, theirs):
        for key in a:
            if key != "seconds":
                assert a[key] == pytest.approx(b[key], abs=1e-6), key


def test_sweep_run_directories_work_with_eval(sweep_run):
    sweep, _, _ = sweep_run
    result = invoke("eval", sweep / "02-lr=0.1-layers=16", "--seed", "1", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["fit_check"]["match"]


def test_shape_ignores_what_each_run_holds_alone():
    base = tiny_config(seeds=[0])
    a = validate_config(base)
    b = validate_config({**base, "seed": 3, "seeds": [5, 6], "model": {**base["model"], "init": "xavier_normal"},
                         "train": {**base["train"], "optimizer": "adam", "lr": 0.01, "grad_clip": 1.0,
                                   "scheduler": {"name": "cosine"}, "log_every": 7}})
    assert shape_key(a) == shape_key(b)
    for changed in ({"model": {"layers": [4]}}, {"train": {"batch_size": 10}}, {"train": {"epochs": 3}},
                    {"dataset": {"noise": 0.1}}, {"train": {"loss": "bce"}}):
        c = validate_config(tiny_config(seeds=[0], **changed))
        assert shape_key(c) != shape_key(a), changed


def test_runs_of_one_batch_have_their_own_optimizers():
    configs = [validate_config(tiny_config(seeds=[0], train={"optimizer": "adam", "lr": 0.01})),
               validate_config(tiny_config(seeds=[0, 1], train={"momentum": 0.9}))]
    batch = setup_group(configs)
    assert batch.trainer.model.replicas == 3
    assert [type(m.optimizer).__name__ for m in batch.members] == ["Adam", "SGD"]
    assert batch.members[1].optimizer.param_groups[0]["momentum"] == 0.9


# ---------------------------------------------------------------------- bad grids: exit 2, naming the key
@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["train.lrr=0.1,0.2"], r"train.lrr: unknown key \(did you mean 'lr'\?\) \(from --grid train.lrr\)"),
        (["train.lr="], r"--grid train.lr=: an empty value"),
        (["train.lr=0.1,,0.01"], r"--grid train.lr=0.1,,0.01: an empty value"),
        (["train.lr=0.1,-1"], r"train.lr = -1: Input should be greater than 0 \(from --grid train.lr\)"),
        (["model.layers=[8],[0]"], r"model.layers.0 = 0: Input should be greater than or equal to 1 "
                                   r"\(from --grid model.layers\)"),
        (["model.activation=relu,relux"], r"model.activation = 'relux': unknown activation .*\(from --grid "
                                          r"model.activation\)"),
        (["train.lr=0.1", "train.lr=0.2"], r"--grid train.lr is given twice"),
        (["train.lr=0.1,0.1"], r"--grid train.lr: the value 0.1 is listed twice"),
        (["lr"], r"--grid 'lr': expected KEY=V1,V2,..."),
        (["train.optimizer=sgd,adam", "train.momentum=0,0.9"],
         r"train.momentum = 0.9 is not used by optimizer 'adam'.* \(with train.optimizer=adam, train.momentum=0.9\)"),
        ([], r"sweep needs at least one --grid KEY=V1,V2"),
    ],
    ids=["unknown-key", "empty", "empty-value", "invalid-value", "invalid-item", "unknown-name", "key-twice",
         "value-twice", "no-equals", "combination", "no-grid"],
)
def test_bad_grids_exit_2_naming_the_key(write_config, cli, tmp_path, grid, message):
    import re

    args = [arg for item in grid for arg in ("--grid", item)]
    result = cli("sweep", write_config(tiny_config()), *args)
    assert result.exit_code == 2, result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "runs").exists()  # nothing written


def test_grid_and_set_of_one_key_exit_2(write_config, cli):
    result = cli("sweep", write_config(tiny_config()), "--grid", "train.lr=0.1,0.2", "--set", "train.lr=0.5")
    assert result.exit_code == 2 and "train.lr: given both with --set and --grid" in result.output
    result = cli("sweep", write_config(tiny_config()), "--grid", "seeds=[0],[1]", "--seeds", "0-2")
    assert result.exit_code == 2 and "seeds: given both with --seeds and with --grid or --set" in result.output


def test_grid_values_split_at_top_level_commas():
    assert parse_grid(["model.layers=[8,8],[16]", "train.lr=0.1,1e-3", "model.activation=relu"]) == {
        "model.layers": [[8, 8], [16]], "train.lr": [0.1, "1e-3"], "model.activation": ["relu"]}
    assert parse_grid(["train.scheduler={name: step, gamma: 0.5},null"]) == {
        "train.scheduler": [{"name": "step", "gamma": 0.5}, None]}


def test_a_config_without_seeds_trains_each_combination_as_one_replica(write_config):
    plan = plan_sweep(write_config(tiny_config()), ["train.lr=0.1,0.2", "seed=1,2"])
    assert [c.config.seeds for c in plan.combinations] == [[1], [2], [1], [2]]
    assert len(plan.batches) == 1  # lr and seed are each run's own: one batch of four


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_a_sweep_accepts_every_example_config_fit_accepts(config):
    plan = plan_sweep(config, ["train.lr=0.01,0.003"])
    assert [c.config.train.lr for c in plan.combinations] == [0.01, 0.003]


def test_the_readme_sweep_of_the_csv_example_trains(cli, tmp_path):
    """configs/heart.yaml stops early on validation: each run's replicas stop on their own."""
    result = cli("sweep", CONFIGS / "heart.yaml", "--grid", "train.lr=0.01,0.003", "--out", tmp_path / "sweep", "-q")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep.csv").open()))
    assert sorted(row["train.lr"] for row in rows) == ["0.003", "0.01"] and {row["status"] for row in rows} == {"completed"}
    for row in rows:
        summary = json.loads((tmp_path / "sweep" / row["run"] / "summary.json").read_text())
        assert summary["monitor"] == "val_loss" and summary["stopped_early"] == (summary["epochs_run"] < 300)


def test_a_grid_of_too_many_combinations_is_refused_before_anything(write_config, cli, tmp_path):
    lrs = ",".join(str(0.001 * (i + 1)) for i in range(30))
    result = cli("sweep", write_config(tiny_config()), "--grid", f"train.lr={lrs}", "--grid", "seed=1,2,3,4,5,6,7,8,9")
    assert result.exit_code == 2 and "the grid makes 270 combinations (30 train.lr x 9 seed); a sweep trains at " \
        "most 256: give fewer values" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_sweep_ranks_on_a_validation_split_it_carves_and_refuses_none(write_config, cli, tmp_path):
    plan = plan_sweep(write_config(tiny_config()), ["train.lr=0.1,0.2"])
    assert {c.config.dataset.val_size for c in plan.combinations} == {0.16}  # 20% of the training rows
    result = cli("sweep", write_config(tiny_config(dataset={"val_size": 0})), "--grid", "train.lr=0.1,0.2")
    assert result.exit_code == 2 and "dataset.val_size = 0 leaves no validation split, and a sweep's ranking " \
        "decides on one" in result.output
