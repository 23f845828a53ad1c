"""The real CLI: fit end to end, every example config, user errors, reproducibility, no overwrites."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CONFIGS, tiny_config


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "runs").iterdir() if p.is_dir()) if (root / "runs").exists() else []


def test_fit_writes_the_whole_run_directory(cli, write_config, tmp_path):
    result = cli("fit", write_config(tiny_config(dataset={"val_size": 0.2})))
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    assert run.name.endswith("-tiny")
    for name in ("config.yaml", "metrics.csv", "summary.json", "checkpoints/best.pt", "checkpoints/last.pt",
                 "plots/decision_boundary.png", "plots/curves.png"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 20
    assert summary["model"]["parameters"] == 2 * 8 + 8 + 8 + 1
    assert set(summary["final"]) >= {"test_acc", "test_loss", "train_acc", "train_loss", "epoch"}
    assert summary["best"]["epoch"] >= 1 and {"torch", "python"} <= set(summary["versions"])
    threads = summary["threads"]  # a number, or (threads: auto, measured) the count chosen and its measurements
    assert (threads if isinstance(threads, int) else threads["chosen"]) >= 1
    # the console: model table, epoch rows in the tutorial's format, where the run went, final metrics
    assert "total (the model's capacity)" in result.output and "151" not in result.output
    assert "Epoch: 10 | Loss: " in result.output and "Test acc: " in result.output
    assert f"Run directory: {Path('runs') / run.name}" in result.output
    assert "Final test metrics" in result.output


def test_resolved_config_is_written_with_defaults(cli, write_config, tmp_path):
    cli("fit", write_config(tiny_config()), "--set", "train.lr=0.05")
    (run,) = run_dirs(tmp_path)
    text = (run / "config.yaml").read_text()
    assert "lr: 0.05" in text and "loss: bce_with_logits" in text and "task: binary" in text
    assert "optimizer: sgd" in text  # a default the user did not write


def test_metrics_csv_has_the_contract_columns(cli, write_config, tmp_path):
    cli("fit", write_config(tiny_config(train={"epochs": 7})))
    (run,) = run_dirs(tmp_path)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, 8))
    assert all(0 <= float(r["test_acc"]) <= 1 for r in rows)


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_config_runs(cli, config, tmp_path):
    """The CI smoke run: each example config trains a few epochs from the real CLI."""
    result = cli("fit", config, "--set", "train.epochs=3", "--quiet")
    assert result.exit_code == 0, result.output
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_same_config_and_seed_give_identical_metrics(cli, write_config, tmp_path):
    path = write_config(tiny_config(train={"batch_size": 32, "epochs": 15}, model={"dropout": 0.2}))
    first, second = tmp_path / "a", tmp_path / "b"
    assert cli("fit", path, "--out", first, "-q").exit_code == 0
    assert cli("fit", path, "--out", second, "-q").exit_code == 0

    def without_wall_time(run):  # every column except the wall-clock `seconds`
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((run / "metrics.csv").open())]

    assert without_wall_time(first) == without_wall_time(second)


def test_a_second_run_gets_its_own_directory(cli, write_config, tmp_path):
    path = write_config(tiny_config(train={"epochs": 2}))
    cli("fit", path, "-q")
    cli("fit", path, "-q")
    assert len(run_dirs(tmp_path)) == 2


def test_out_directory_that_exists_is_refused_and_left_alone(cli, write_config, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = cli("fit", write_config(tiny_config()), "--out", out)
    assert result.exit_code == 2
    assert "already exists" in result.output and "Traceback" not in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("dataset: {name: circles\n", [], "invalid YAML in"),
        (tiny_config(model={"activaton": "relu"}), [], "did you mean 'activation'"),
        (tiny_config(train={"lr": "fast"}), [], "train.lr = 'fast'"),
        (tiny_config(train={"lr": -1}), [], "train.lr = -1: Input should be greater than 0"),
        (tiny_config(dataset={"test_size": 1.5}), [], "dataset.test_size = 1.5"),
        (tiny_config(model={"layers": [4, -2]}), [], "model.layers.1 = -2"),
        (tiny_config(model={"activation": "swish"}), [], "choose one of: relu, tanh"),
        (tiny_config(), ["--set", "train.lrr=3"], "train.lrr: unknown key (did you mean 'lr'?) (from --set"),
        (tiny_config(device="cuda:0"), [], "no CUDA GPU is available here"),
    ],
)
def test_user_errors_exit_2_with_one_clear_message(cli, write_config, tmp_path, content, args, expected):
    result = cli("fit", write_config(content), *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert run_dirs(tmp_path) == []  # nothing half-written left behind


def test_missing_config_file_exit_2(cli, tmp_path):
    result = cli("fit", tmp_path / "missing.yaml")
    assert result.exit_code == 2 and "config file not found" in result.output


def test_validate_prints_resolved_config(cli, write_config):
    result = cli("validate", write_config({"dataset": {"name": "moons"}}))
    assert result.exit_code == 0
    assert "task: binary" in result.output and "loss: bce_with_logits" in result.output


def test_diverged_run_is_reported(cli, write_config, tmp_path):
    config = tiny_config(dataset={"name": "linear"}, task="regression", train={"loss": "mse", "lr": 1e6})
    result = cli("fit", write_config(config))
    assert result.exit_code == 2
    assert "diverged at epoch" in result.output and "lower train.lr" in result.output
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / "summary.json").read_text())["status"] == "diverged"


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "clftrain", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "fit" in result.stdout


def test_validate_data_makes_every_data_check_without_training(cli, tmp_path):
    result = cli("validate", CONFIGS / "heart.yaml", "--data")
    assert result.exit_code == 0, result.output
    for text in ("every check fit makes passed", "one-hot: sex, smoking", "task: binary", "classes: no 183, yes 217",
                 "splits: train 260, validation 60, test 80 rows"):
        assert text in result.output, text
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    (tmp_path / "t.yaml").write_text("task: binary\ndataset: {name: csv, path: %s, target: age, categorical: auto}\n"
                                     % (CONFIGS / "data" / "heart.csv"))
    result = cli("validate", tmp_path / "t.yaml", "--data")
    assert result.exit_code == 2 and "task = 'binary' does not fit the targets" in result.output


def test_shell_completion_offers_commands_run_directories_and_configs(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "runs" / "20260101-000000-circles").mkdir(parents=True)
    (tmp_path / "runs" / "20260101-000000-circles" / "config.yaml").write_text("name: x\n")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "circles.yaml").write_text("name: x\n")
    (tmp_path / "configs" / "notes.txt").write_text("")
    (tmp_path / ".hidden").mkdir()

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        env = {**os.environ, "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1),
               "_CLFTRAIN_COMPLETE": "complete_bash"}
        out = subprocess.run([sys.executable, "-m", "clftrain"], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=60).stdout
        return out.split()

    assert complete("clftrain ex") == ["export"]
    assert complete("clftrain fit --res") == ["--resume"]
    assert complete("clftrain eval ") == ["configs/", "runs/"]  # folders on the way; hidden ones only when typed
    assert complete("clftrain eval runs/") == ["runs/20260101-000000-circles"]  # a run directory: no '/'
    assert complete("clftrain fit configs/") == ["configs/circles.yaml"]  # YAML files only
    assert complete("clftrain plot .h") == [".hidden/"]
