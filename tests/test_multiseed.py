"""Many seeds as one batched model: each replica is the run its seed makes alone (to float rounding).

The equality tests train in memory (no run directory, no plots) to stay fast; the run-directory,
console, eval/predict/plot and resume tests go through the real CLI or fit_run.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from clftrain.store import rundir
from clftrain.config import validate_config
from clftrain.errors import UserError
from clftrain.runs import fit_run, resume_run
from clftrain.training import setup_single
from clftrain.training import setup_group
from clftrain.training import Callback
from conftest import tiny_config
from test_resume import InterruptAt, InterruptAtStep
from trained_runs import invoke, metrics_rows, read_csv, write_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SEEDS = [0, 1, 2]
# Float32 rounding differs between one batched matmul and R small ones; over a few dozen steps it stays
# around 1e-7. Accuracies are counts: they must be equal.
TOLERANCE = 1e-5


def solo_history(config: dict, seed: int):
    session = setup_single(validate_config({**config, "seed": seed}))
    session.trainer.fit()
    return session.trainer.history, session.trainer.model.state_dict()


def batched(config: dict, seeds=SEEDS):
    batch = setup_group([validate_config({**config, "seeds": seeds})])
    batch.trainer.fit()
    return batch


def differences(config: dict) -> dict[str, float]:
    """Max |batched - solo| per metrics.csv column and for the weights, over every seed and evaluated epoch."""
    batch = batched(config)
    member, worst = batch.members[0], {}
    state = batch.trainer.model.part_state(0)
    for r, seed in enumerate(SEEDS):
        history, weights = solo_history(config, seed)
        mine = [row for row in member.history if row["seed"] == seed]
        assert [row["epoch"] for row in mine] == [row["epoch"] for row in history]
        for theirs, ours in zip(history, mine):
            for key, value in theirs.items():
                if key != "seconds":
                    worst[key] = max(worst.get(key, 0.0), abs(value - ours[key]))
        for key, value in weights.items():
            worst["weights"] = max(worst.get("weights", 0.0), (value.float() - state[key][r].float()).abs().max().item())
    return worst


EQUALITY_CASES = {
    # the issue's two: SGD with momentum and Adam
    "sgd-momentum": tiny_config(train={"momentum": 0.9, "weight_decay": 1e-3}),
    "adam-multiclass-minibatch": tiny_config(dataset={"name": "blobs", "n_samples": 150, "centers": 3},
                                             train={"optimizer": "adam", "lr": 0.01, "batch_size": 32}),
    # per-replica dropout streams, batch norm, the last short batch, nesterov, gradient clipping, a schedule
    "dropout-batchnorm-clip": tiny_config(
        model={"layers": [8, 8], "dropout": 0.3, "batch_norm": True},
        train={"batch_size": 33, "momentum": 0.9, "nesterov": True, "grad_clip": 0.05,
               "scheduler": {"name": "step", "step_size": 5}}),
    "rmsprop-class-weights-smoothing": tiny_config(
        dataset={"name": "blobs", "n_samples": 150, "centers": 3},
        train={"optimizer": "rmsprop", "lr": 0.01, "momentum": 0.5, "class_weight": "balanced",
               "label_smoothing": 0.1, "batch_size": 20}),
    "multilabel-pos-weight-onecycle": tiny_config(
        dataset={"name": "multilabel", "n_samples": 150},
        train={"pos_weight": "balanced", "batch_size": 50, "scheduler": {"name": "onecycle"}}),
    "regression-validation-cosine": tiny_config(
        dataset={"name": "linear", "val_size": 0.2}, model={"layers": [4], "init": "xavier_uniform"},
        train={"loss": "mse", "eval_every": 3, "scheduler": {"name": "cosine"}}),
    "bce-adamw-tanh": tiny_config(model={"activation": "tanh"}, train={"loss": "bce", "optimizer": "adamw", "lr": 0.01}),
}


@pytest.mark.parametrize("config", EQUALITY_CASES.values(), ids=EQUALITY_CASES.keys())
def test_each_replica_equals_its_seed_trained_alone(config):
    worst = differences(config)
    for key, value in worst.items():
        if key.endswith("_acc") or key in ("epoch", "lr"):
            assert value == 0, (key, value)
        else:
            assert value < TOLERANCE, (key, value)


def test_replicas_differ_from_each_other():
    """Own initialisation and own data order: no two replicas train alike."""
    batch = batched(tiny_config(train={"batch_size": 32}))
    weights = batch.trainer.model.part_state(0)["0.weight"]
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


# ---------------------------------------------------------------------- per-replica decisions
def solo_run(config: dict, seed: int):
    """A one-seed run trained in memory with the callbacks that decide (best weights, early stopping)."""
    run = setup_single(validate_config({**config, "seed": seed}))
    run.trainer.callbacks = [run.best, *([run.stopper] if run.stopper else [])]
    run.trainer.fit()
    return run


def batched_run(config: dict, seeds=SEEDS):
    group = setup_group([validate_config({**config, "seeds": seeds})])
    group.trainer.callbacks = group.deciders()
    group.trainer.fit()
    return group


DECISION_CASES = {
    # on val_loss, Adam: replicas stop at 4 different epochs, two never
    "early-stopping-val-loss": tiny_config(dataset={"val_size": 0.2}, train={
        "epochs": 120, "optimizer": "adam", "lr": 0.05, "early_stopping": {"monitor": "val_loss", "patience": 10}}),
    # on accuracy (max), mini-batches with momentum and a min_delta
    "early-stopping-val-acc": tiny_config(dataset={"val_size": 0.2, "noise": 0.2}, train={
        "epochs": 200, "lr": 0.5, "momentum": 0.9, "batch_size": 32,
        "early_stopping": {"monitor": "val_acc", "patience": 8, "min_delta": 0.001}}),
    # each replica's learning rate halves on its own plateau of val_loss
    "plateau": tiny_config(dataset={"val_size": 0.2}, train={
        "epochs": 80, "optimizer": "adam", "lr": 0.05, "scheduler": {"name": "plateau", "patience": 3}}),
    "plateau-sgd-momentum-minibatch": tiny_config(train={
        "epochs": 60, "lr": 0.2, "momentum": 0.9, "batch_size": 50, "weight_decay": 1e-3,
        "scheduler": {"name": "plateau", "patience": 2, "factor": 0.3}}),
}


@pytest.mark.parametrize("config", DECISION_CASES.values(), ids=DECISION_CASES.keys())
def test_each_replica_stops_and_slows_down_on_its_own_as_its_solo_run(config):
    seeds = [0, 1, 2, 3]
    group = batched_run(config, seeds)
    member = group.members[0]
    state = group.trainer.model.part_state(0)
    stopped_epochs = set()
    for i, seed in enumerate(seeds):
        run = solo_run(config, seed)
        mine = [row for row in member.history if row["seed"] == seed]
        theirs = run.trainer.history
        assert [row["epoch"] for row in mine] == [row["epoch"] for row in theirs], seed  # same epochs run
        for ours, solo in zip(mine, theirs):
            for key, value in solo.items():
                if key.endswith("_acc") or key in ("epoch", "lr"):
                    assert ours[key] == value, (seed, key)
                elif key != "seconds":
                    assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (seed, key)
        assert member.best.rows[i]["epoch"] == run.best.best_row["epoch"], seed  # same best epoch
        assert (member.stopped_at[i] is not None) == run.trainer.stopped_early, seed
        for key, value in run.trainer.model.state_dict().items():  # a stopped replica was held where it stopped
            assert torch.allclose(state[key][i].float(), value.float(), rtol=1e-4, atol=1e-5), (seed, key)
        stopped_epochs.add(len(mine))
    if "early_stopping" in config["train"]:
        assert len(stopped_epochs) > 1  # the replicas stopped at different epochs: the test has teeth
    else:
        assert len({row["lr"] for row in member.history}) > 2  # learning rates moved, each on its own


def test_a_run_whose_replicas_all_stop_early_is_complete(write_config, cli):
    config = tiny_config(seeds=[0, 1], dataset={"val_size": 0.2},
                         train={"epochs": 400, "lr": 1e-6, "early_stopping": {"monitor": "val_loss", "patience": 3}})
    result = cli("fit", write_config(config), "--out", "run", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(open("run/summary.json").read())
    assert summary["status"] == "completed" and summary["stopped_early"]
    assert summary["epochs_run"] < 400 and all(r["stopped_early"] for r in summary["replicas"])
    result = cli("fit", "--resume", "run")
    assert result.exit_code == 2 and "stopped early at epoch" in result.output


# ---------------------------------------------------------------------- the run directory
@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    config = root / "c.yaml"
    config.write_text(json.dumps(tiny_config(train={"epochs": 30, "log_every": 10, "optimizer": "adam", "lr": 0.05},
                                             dataset={"val_size": 0.2})))
    result = invoke("fit", config, "--seeds", "0-4", "--out", root / "run")
    assert result.exit_code == 0, result.output
    return root / "run", result.output


def test_run_directory_records_every_replica(seeds_run):
    run, _ = seeds_run
    rows = metrics_rows(run)
    assert list(rows[0])[:2] == ["epoch", "seed"]
    assert [(int(r["epoch"]), int(r["seed"])) for r in rows[:6]] == [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 0)]
    assert len(rows) == 30 * 5
    assert "seeds:\n- 0\n- 1\n- 2\n- 3\n- 4\n" in (run / "config.yaml").read_text()
    last = rundir.load_checkpoint(rundir.checkpoint_path(run, "last"))
    assert last["seeds"] == [0, 1, 2, 3, 4] and last["model"]["0.weight"].shape == (5, 8, 2)
    best = rundir.load_checkpoint(rundir.checkpoint_path(run, "best"))
    assert [row["seed"] for row in best["metrics"]] == [0, 1, 2, 3, 4]
    for name in ("decision_boundary", "curves", "confusion_matrix"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 10_000


def test_summary_reports_mean_std_min_max_over_the_seeds(seeds_run):
    run, _ = seeds_run
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 30 and summary["seeds"] == [0, 1, 2, 3, 4]
    finals = [r for r in metrics_rows(run) if r["epoch"] == 30]
    accuracies = [r["test_acc"] for r in finals]
    stats = summary["spread"]["final"]["test_acc"]
    assert stats["mean"] == pytest.approx(sum(accuracies) / 5) == pytest.approx(summary["final"]["test_acc"])
    assert stats["min"] == min(accuracies) and stats["max"] == max(accuracies)
    mean = stats["mean"]
    assert stats["std"] == pytest.approx(math.sqrt(sum((a - mean) ** 2 for a in accuracies) / 4))
    for r, replica in zip(finals, summary["replicas"]):
        assert replica["final"]["test_loss"] == r["test_loss"]
        assert replica["best"]["val_loss"] <= r["val_loss"]  # best by the validation loss
    best = summary["spread"]["best"]["test_loss"]
    assert best["mean"] == pytest.approx(sum(x["best"]["test_loss"] for x in summary["replicas"]) / 5)
    assert isinstance(summary["best"]["epoch"], int)


def test_console_shows_the_spread_and_each_seed(seeds_run):
    _, output = seeds_run
    assert "5 replicas trained as one batched model" in output
    assert "Epoch: 10 | Loss: " in output and " ± " in output
    assert "Final test metrics over 5 seeds" in output and "(min " in output
    assert "Per seed" in output


def test_eval_one_replica_reproduces_what_fit_recorded(seeds_run):
    run, _ = seeds_run
    for seed, checkpoint in ((3, "last"), (1, "best")):
        result = invoke("eval", run, "--seed", seed, "--checkpoint", checkpoint, "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["replica"]["seed"] == seed and report["fit_check"]["match"], report["fit_check"]


def test_eval_default_is_the_median_replica_and_ensemble_averages(seeds_run):
    run, _ = seeds_run
    result = invoke("eval", run)
    assert result.exit_code == 0, result.output
    finals = sorted((r["test_acc"], r["seed"]) for r in metrics_rows(run) if r["epoch"] == 30)
    median_seed = int(finals[2][1])
    assert f"seed {median_seed}, the median of 5 replicas by test accuracy" in result.output
    assert "choose with --seed S" in result.output
    result = invoke("eval", run, "--ensemble", "--json")
    report = json.loads(result.stdout)
    assert report["replica"]["ensemble"] and report["fit_check"] is None
    assert 0 <= report["metrics"]["accuracy"] <= 1


def test_predict_with_a_replica_and_with_the_ensemble(seeds_run, tmp_path):
    from clftrain.inference import TrainedRun

    run, _ = seeds_run
    rows = [[0.0, 0.1], [0.9, 0.2], [-0.5, -0.6]]
    inputs = write_csv(tmp_path / "in.csv", ["x1", "x2"], rows)
    X = torch.tensor(rows).numpy()
    replicas = [TrainedRun.load(run, seed=s, with_data=False).predict(X)[0][:, 0] for s in range(5)]
    result = invoke("predict", run, inputs, "--ensemble")
    assert result.exit_code == 0, result.output
    ensemble = [float(r["prob_1"]) for r in read_csv(result.stdout)]
    assert ensemble == pytest.approx(sum(replicas) / 5, abs=1e-6)
    result = invoke("predict", run, inputs, "--seed", 2)
    assert [float(r["prob_1"]) for r in read_csv(result.stdout)] == pytest.approx(replicas[2], abs=1e-7)
    result = invoke("predict", run, inputs)
    assert "predicted by seed" in result.stderr and "the median of 5 replicas" in result.stderr


def test_plot_draws_the_median_replica_and_a_band(seeds_run, monkeypatch):
    from clftrain.views import plots

    run, _ = seeds_run
    drawn = {}
    monkeypatch.setattr(plots, "decision_boundary", lambda path, title, **_: drawn.setdefault("boundary", title))
    monkeypatch.setattr(plots, "replica_curves", lambda path, rows, title, **_: drawn.setdefault("curves", (len(rows), title)))
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    assert "the median of 5 replicas by test accuracy" in drawn["boundary"]
    assert drawn["curves"] == (150, "tiny: learning curves of 5 seeds")
    drawn.clear()
    assert invoke("plot", run, "--seed", 4).exit_code == 0 and "seed 4 of 5 replicas" in drawn["boundary"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "9"], "--seed 9: .* has no replica of that seed; its seeds are 0, 1, 2, 3, 4"),
        (["--seed", "1", "--ensemble"], "--seed and --ensemble exclude each other"),
    ],
)
def test_bad_replica_choices_exit_2(seeds_run, args, message):
    run, _ = seeds_run
    for command in ("eval", "plot"):
        result = invoke(command, run, *args)
        assert result.exit_code == 2
        assert re.search(message, result.output), result.output


def test_replica_options_on_a_one_seed_run(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(tiny_config(train={"epochs": 3})))
    assert invoke("fit", config, "--out", tmp_path / "run", "-q").exit_code == 0
    result = invoke("eval", tmp_path / "run", "--ensemble")
    assert result.exit_code == 2 and "--ensemble needs a run trained with seeds" in result.output
    result = invoke("eval", tmp_path / "run", "--seed", "7")
    assert result.exit_code == 2 and "trained one model, with seed 42" in result.output
    assert invoke("eval", tmp_path / "run", "--seed", "42").exit_code == 0


# ---------------------------------------------------------------------- what seeds refuse, and --seeds
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"seeds": [1, 2, 1]}, r"seeds = \[1, 2, 1\]: seed\(s\) 1 listed more than once"),
        ({"seeds": []}, "seeds = \\[\\]: List should have at least 1 item"),
    ],
    ids=["repeated", "empty"],
)
def test_config_errors_with_seeds(write_config, cli, extra, message):
    config = tiny_config(**extra)
    config.setdefault("seeds", [0, 1])
    result = cli("validate", write_config(config))
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4-0", "--seeds '4-0': expected seeds and ranges like 0-4"),
        ("a", "--seeds 'a': expected seeds and ranges"),
        ("0-3,2", "--seeds '0-3,2': seed\\(s\\) 2 listed more than once"),
        ("0-100000", "--seeds '0-100000': more than 4096 seeds"),
    ],
)
def test_bad_seeds_option_exits_2(write_config, cli, tmp_path, text, message):
    result = cli("fit", write_config(tiny_config()), "--seeds", text)
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "runs").exists()  # nothing written


def test_seeds_option_ranges_and_lists():
    from clftrain.config import parse_seeds

    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3, 7") == [0, 3, 7]
    assert parse_seeds("0-2,10-11") == [0, 1, 2, 10, 11]


def test_validate_prints_the_seeds(write_config, cli):
    result = cli("validate", write_config(tiny_config()), "--seeds", "3-4")
    assert result.exit_code == 0 and "seeds:\n- 3\n- 4\n" in result.output


def test_seeds_cannot_change_on_resume(cli, tmp_path):
    result = cli("fit", "--resume", tmp_path, "--seeds", "0-2")
    assert result.exit_code == 2 and "--seeds cannot be used with --resume" in result.output


# ---------------------------------------------------------------------- resume, divergence
def assert_bit_for_bit(run, reference) -> None:
    """metrics.csv (but for wall-clock seconds) and the weights of last.pt and best.pt equal the reference run's."""
    strip = lambda path: [{k: v for k, v in r.items() if k != "seconds"} for r in metrics_rows(path)]  # noqa: E731
    assert strip(run) == strip(reference)
    for which in ("last", "best"):
        mine = rundir.load_checkpoint(rundir.checkpoint_path(run, which))["model"]
        theirs = rundir.load_checkpoint(rundir.checkpoint_path(reference, which))["model"]
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), which


@pytest.mark.parametrize("stop", [InterruptAt(9), InterruptAtStep(35)], ids=["epoch-end", "between-mini-batches"])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(write_config, tmp_path, stop):
    config = validate_config(tiny_config(seeds=[3, 4], model={"dropout": 0.2}, dataset={"val_size": 0.2},
                                         train={"epochs": 24, "log_every": 4, "batch_size": 40, "optimizer": "adam",
                                                "lr": 0.01, "scheduler": {"name": "step", "step_size": 5}}))
    straight = fit_run(config, out=tmp_path / "straight")
    interrupted = fit_run(config, out=tmp_path / "interrupted", callbacks=[stop])
    assert interrupted.summary["status"] == "interrupted"
    if isinstance(stop, InterruptAtStep):  # 120 rows in batches of 40: 3 steps an epoch, stopped after step 35
        assert interrupted.summary["epochs_run"] == 11
        assert interrupted.summary["epoch_in_progress"] == {"epoch": 12, "steps_done": 2}
    resumed = resume_run(tmp_path / "interrupted")
    assert resumed.summary["status"] == "completed" and resumed.summary["epochs_run"] == 24
    assert_bit_for_bit(tmp_path / "interrupted", straight.run_dir)


def test_a_resumed_run_keeps_each_replicas_stop_and_learning_rate(tmp_path):
    """Interrupted after two of four replicas stopped early and some learning rates fell: resumed, it ends bit for
    bit as the uninterrupted run (rows, each replica's weights, best.pt)."""
    config = validate_config(tiny_config(seeds=[0, 1, 2, 3], dataset={"val_size": 0.2}, train={
        "epochs": 120, "log_every": 5, "optimizer": "adam", "lr": 0.05,
        "early_stopping": {"monitor": "val_loss", "patience": 10}, "scheduler": {"name": "plateau", "patience": 3}}))
    straight = fit_run(config, out=tmp_path / "straight")
    stops = [r["epochs_run"] for r in straight.summary["replicas"] if r["stopped_early"]]
    assert 0 < len(stops) < 4, stops  # some replicas stop early, not all: the interruption lands between
    interrupted = fit_run(config, out=tmp_path / "interrupted", callbacks=[InterruptAt(max(stops) + 2)])
    assert interrupted.summary["status"] == "interrupted"
    resumed = resume_run(tmp_path / "interrupted")
    assert resumed.summary["epochs_run"] == straight.summary["epochs_run"]
    assert_bit_for_bit(tmp_path / "interrupted", straight.run_dir)


def test_resume_refuses_a_completed_run(write_config, tmp_path):
    run = fit_run(validate_config(tiny_config(seeds=[0, 1], train={"epochs": 4})), out=tmp_path / "r").run_dir
    with pytest.raises(UserError, match="already ran 4 of 4 epochs"):
        resume_run(run)
    assert resume_run(run, ["train.epochs=6"]).summary["epochs_run"] == 6


class PoisonReplica(Callback):
    """Makes replica `index` diverge at `epoch`, as a bad initialisation would."""

    def __init__(self, index: int, epoch: int) -> None:
        self.index, self.epoch = index, epoch

    def on_epoch_end(self, trainer, row):
        if trainer.epoch == self.epoch:
            with torch.no_grad():
                trainer.model.part_parameters(0)[0][self.index].fill_(float("inf"))


def test_a_diverging_replica_stops_alone(tmp_path):
    config = validate_config(tiny_config(seeds=[0, 1, 2], train={"epochs": 10}))
    result = fit_run(config, out=tmp_path / "run", callbacks=[PoisonReplica(1, 4)])
    summary = result.summary
    assert summary["status"] == "completed"
    assert [r["status"] for r in summary["replicas"]] == ["completed", "diverged", "completed"]
    assert summary["replicas"][1]["epochs_run"] == 5
    rows = metrics_rows(result.run_dir)
    assert max(r["epoch"] for r in rows if r["seed"] == 1) == 5 and len(rows) == 10 * 2 + 5
    assert summary["spread"]["final"]["test_loss"]["replicas"] == 2  # inf left out of the statistics
    def refuse(constant):
        raise AssertionError(f"summary.json holds {constant}: not JSON")

    json.loads((result.run_dir / "summary.json").read_text(), parse_constant=refuse)


def test_every_replica_diverging_is_a_diverged_run(write_config, cli):
    result = cli("fit", write_config(tiny_config(seeds=[0, 1], dataset={"name": "linear"}, task="regression",
                                                 train={"loss": "mse", "lr": 1e6, "epochs": 50})), "--out", "run")
    assert result.exit_code == 2, result.output
    assert json.loads(open("run/summary.json").read())["status"] == "diverged"
    assert "2 of 2 seeds diverged" in result.output


# ---------------------------------------------------------------------- the pieces
def test_gradient_clipping_is_per_replica():
    from torch import nn

    from clftrain.training import StackedMLP, clip_grad_norms_

    models = [nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)) for _ in range(3)]
    stacked = StackedMLP(models)
    X = torch.randn(10, 3) * torch.tensor([1.0, 10.0, 100.0])
    stacked(X).sum().backward()
    for model in models:
        model(X).sum().backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    clip_grad_norms_(stacked.part_parameters(0), 0.5)
    for r, model in enumerate(models):
        for mine, theirs in zip(stacked.part_parameters(0), model.parameters()):
            assert torch.allclose(mine.grad[r], theirs.grad, atol=1e-6)


def test_ensemble_outputs_give_back_the_mean_probability():
    from torch import nn

    from clftrain.training import ReplicaEnsemble, StackedMLP
    from clftrain.components import get_task

    X = torch.randn(7, 2)
    for task, outputs in (("multiclass", 4), ("binary", 1), ("multilabel", 3), ("regression", 1)):
        models = [nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, outputs)) for _ in range(4)]
        ensemble = ReplicaEnsemble(StackedMLP(models), get_task(task), False)
        expected = torch.stack([get_task(task).probabilities(m(X), False) for m in models]).mean(0)
        got = get_task(task).probabilities(ensemble(X), False)
        assert torch.allclose(got, expected, atol=1e-6), task


def test_median_replica():
    from clftrain.components import get_task
    from clftrain.inference import median_replica

    binary, regression = get_task("binary"), get_task("regression")
    rows = [{"test_acc": a} for a in (0.9, 0.5, float("nan"), 0.7)]
    assert median_replica(rows, binary) == 1  # nan, 0.5, 0.7, 0.9: the lower middle
    assert median_replica(rows[:2] + rows[3:], binary) == 2  # 0.9, 0.5, 0.7: the 0.7
    assert median_replica([{"test_mae": 2.0}, {"test_mae": float("inf")}, {"test_mae": 1.0}], regression) == 0


def test_runs_and_compare_use_the_mean_over_seeds(seeds_run):
    from clftrain.store import RunRecord

    run, _ = seeds_run
    record = RunRecord.read(run)
    finals = [r["test_acc"] for r in metrics_rows(run) if r["epoch"] == 30]
    assert len(record.rows) == 30 and "seed" not in record.rows[-1]
    assert record.final("test_acc") == pytest.approx(sum(finals) / 5)
