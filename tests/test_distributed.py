"""Data-parallel fit under torchrun: real launches of 2 gloo processes (tiny data, few epochs) against one process.

Each launch costs about 5 s here (two interpreters importing torch), so each test makes as few as it can.
Launches stopped (SIGTERM, a killed rank) and resumed are in test_distributed_resume.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from clftrain.store import rundir
from conftest import tiny_config
from trained_runs import invoke

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")

ENV = {**os.environ, "CLFTRAIN_PLOT_PROCESSES": "0", "OMP_NUM_THREADS": "1"}


def torchrun(*args, nproc: int = 2, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "clftrain", "fit", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)


def one_process(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clftrain", "fit", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=180)


def write(tmp_path: Path, config: dict, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def rows(run: Path) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in row.items() if k != "seconds"}
            for row in csv.DictReader((run / "metrics.csv").open())]


def weights(run: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return rundir.load_checkpoint(rundir.checkpoint_path(run, which))["model"]


def assert_same_numbers(mine: Path, theirs: Path, rel: float = 1e-6) -> None:
    a, b = rows(mine), rows(theirs)
    assert len(a) == len(b) and a and [r.keys() for r in a] == [r.keys() for r in b]
    for row_a, row_b in zip(a, b):
        for key in row_a:
            assert math.isclose(row_a[key], row_b[key], rel_tol=rel, abs_tol=1e-9), (key, row_a, row_b)
    wa, wb = weights(mine), weights(theirs)
    for name in wb:
        assert torch.allclose(wa[name], wb[name], rtol=1e-5, atol=1e-6), name


CASES = {
    # 160 training rows in batches of 48: 48, 48, 48 and a last partial batch of 16 (8 rows per rank)
    "sgd-momentum-minibatch": tiny_config(train={"epochs": 12, "log_every": 3, "optimizer": "sgd", "lr": 0.1,
                                                 "momentum": 0.9, "batch_size": 48}),
    "adam-full-batch": tiny_config(train={"epochs": 15, "log_every": 5, "optimizer": "adam", "lr": 0.01}),
    # 3 classes, class weights (the loss's denominator is the batch's weights), label smoothing, a validation
    # split that decides best.pt and the plateau scheduler
    "adam-weighted-validated": tiny_config(
        dataset={"name": "blobs", "centers": 3, "n_samples": 210, "val_size": 0.2},
        train={"epochs": 12, "log_every": 2, "optimizer": "adam", "lr": 0.02, "batch_size": 40,
               "class_weight": "balanced", "label_smoothing": 0.1, "scheduler": {"name": "plateau", "patience": 2}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_compute_what_one_process_computes(tmp_path, case):
    config = write(tmp_path, CASES[case])
    alone = one_process(config, "--out", tmp_path / "alone", "-q")
    assert alone.returncode == 0, alone.stderr
    launched = torchrun(config, "--runs", tmp_path / "runs")
    assert launched.returncode == 0, launched.stderr[-3000:]
    [run] = list((tmp_path / "runs").iterdir())  # one run directory, written by rank 0
    assert_same_numbers(run, tmp_path / "alone")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 2, "backend": "gloo"} and summary["status"] == "completed"
    assert launched.stdout.count("Run directory:") == 1  # one console: rank 0's
    if case == "adam-weighted-validated":
        alone_best = weights(tmp_path / "alone", "best")
        assert all(torch.allclose(weights(run, "best")[k], alone_best[k], rtol=1e-5, atol=1e-6) for k in alone_best)
        # a distributed run is an ordinary run directory: eval, plot and predict in one process
        report = invoke("eval", run)
        assert report.exit_code == 0 and ("Reproduces exactly" in report.output or "Differs" in report.output)
        evaluated = json.loads((run / "eval.json").read_text())
        alone_summary = json.loads((tmp_path / "alone" / "summary.json").read_text())
        assert evaluated["metrics"]["accuracy"] == alone_summary["final"]["test_acc"]
        assert invoke("plot", run).exit_code == 0 and (run / "plots" / "decision_boundary.png").is_file()


def test_nproc_refuses_bad_values_before_starting_anything(tmp_path, cli, write_config):
    config = write_config(tiny_config(train={"batch_size": 32}))
    result = cli("fit", config, "--nproc", "0")
    assert result.exit_code == 2 and "--nproc 0: needs at least 1 process" in result.output
    result = cli("fit", config, "--nproc", "64")
    assert result.exit_code == 2
    assert "warning: --nproc 64 is more than this machine's" in result.output
    assert "train.batch_size = 32: a batch of 32 rows cannot be shared by 64 processes" in result.output
    if not torch.cuda.is_available():
        result = cli("fit", config, "--nproc", "2", "--set", "device=cuda")
        assert result.exit_code == 2 and "device = 'cuda': no CUDA GPU is available here" in result.output
    result = cli("sweep", config, "--grid", "train.lr=0.1,0.01", "--nproc", "0")
    assert result.exit_code == 2 and "--nproc 0: needs at least 1 process" in result.output
    # the winner's refit, data-parallel, would fail after the whole sweep had trained
    result = cli("sweep", config, "--grid", "train.lr=0.1,0.01", "--set", "train.batch_size=1", "--refit", "--nproc", "2")
    assert result.exit_code == 2 and ("error: --refit trains the winner in the 2 processes together, and "
                                      "train.batch_size = 1: a batch of 1 rows cannot be shared by 2 processes"
                                      in " ".join(result.output.split())), result.output
    assert not (tmp_path / "runs").exists()  # nothing written


def test_nproc_refuses_to_resume_a_run_another_process_is_training(tmp_path, cli, write_config):
    assert cli("fit", write_config(tiny_config()), "--out", tmp_path / "run", "-q").exit_code == 0
    before = (tmp_path / "run" / "metrics.csv").read_text()
    holder = subprocess.Popen([sys.executable, "-c", (  # another process training it: it holds the run's lock
        "import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)\n"),
        str(tmp_path / "run" / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = cli("fit", "--resume", tmp_path / "run", "--set", "train.epochs=30", "--nproc", "2")
    finally:
        holder.kill()
    assert result.exit_code == 2 and "is being trained by another clftrain process right now" in result.output
    assert (tmp_path / "run" / "metrics.csv").read_text() == before


def test_nproc_launches_torchrun_and_reports_rank_zeros_exit_code(tmp_path):
    config = write(tmp_path, tiny_config(train={"epochs": 4, "log_every": 2}))
    launched = one_process(config, "--nproc", "2", "--out", tmp_path / "run", "-q")
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["distributed"]["world_size"] == 2
    again = one_process(config, "--nproc", "2", "--out", tmp_path / "run", "-q")  # --out exists: rank 0 refuses
    assert again.returncode == 2 and again.stderr.count("already exists") == 1, again.stderr[-2000:]
    assert "Traceback" not in again.stderr and "ChildFailedError" not in again.stderr  # torchrun's agent kept quiet


def test_a_sweep_deals_its_batches_over_the_processes_and_writes_what_one_process_writes(tmp_path):
    config = write(tmp_path, tiny_config(train={"epochs": 6, "log_every": 3}))
    grid = ["--grid", "train.lr=0.1,0.03", "--grid", "model.layers=[8,8],[16]", "--seeds", "0-1"]
    alone = subprocess.run([sys.executable, "-m", "clftrain", "sweep", str(config), *grid, "--out",
                            str(tmp_path / "alone"), "-q"], capture_output=True, text=True, env=ENV, timeout=180)
    assert alone.returncode == 0, alone.stderr
    launched = subprocess.run([sys.executable, "-m", "clftrain", "sweep", str(config), *grid, "--out",
                               str(tmp_path / "spread"), "--nproc", "2", "-q"], capture_output=True, text=True,
                              env=ENV, timeout=180)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("runs ranked by final val accuracy") == 1  # rank 0's console alone
    names = sorted(p.name for p in (tmp_path / "alone").iterdir())
    assert sorted(p.name for p in (tmp_path / "spread").iterdir()) == names
    for run in (name for name in names if (tmp_path / "alone" / name).is_dir()):  # each run as one process has it
        assert rows(tmp_path / "spread" / run) == rows(tmp_path / "alone" / run), run
    drop = ("seconds",)
    table = lambda path: [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(path.open())]  # noqa: E731
    assert table(tmp_path / "spread" / "sweep.csv") == table(tmp_path / "alone" / "sweep.csv")
    batches = json.loads((tmp_path / "spread" / "sweep.json").read_text())["batches"]
    assert len(batches) == 2  # one batch per process


def test_a_sweeps_refit_under_nproc_trains_the_winner_data_parallel_as_one_process_would(tmp_path):
    config = write(tmp_path, tiny_config(train={"epochs": 6, "log_every": 3, "batch_size": 32}))
    grid = ["--grid", "train.lr=0.1,0.03", "--grid", "model.layers=[8,8],[16]", "--refit", "-q"]
    alone = subprocess.run([sys.executable, "-m", "clftrain", "sweep", str(config), *grid, "--out",
                            str(tmp_path / "alone")], capture_output=True, text=True, env=ENV, timeout=180)
    assert alone.returncode == 0, alone.stderr
    launched = subprocess.run([sys.executable, "-m", "clftrain", "sweep", str(config), *grid, "--out",
                               str(tmp_path / "spread"), "--nproc", "2"], capture_output=True, text=True, env=ENV,
                              timeout=180)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("refit: ") == 1 and launched.stdout.count("Run directory:") == 1  # rank 0 alone
    record = lambda sweep: json.loads((tmp_path / sweep / "sweep.json").read_text())["refit"]  # noqa: E731
    assert record("spread") == record("alone")  # the same winner, epochs and changes
    refit = tmp_path / "spread" / "refit"
    assert json.loads((refit / "summary.json").read_text())["distributed"]["world_size"] == 2
    assert_same_numbers(refit, tmp_path / "alone" / "refit")  # each rank a half of every batch: the same steps
    assert invoke("eval", refit).exit_code == 0
    bad = subprocess.run([sys.executable, "-m", "clftrain", "sweep", str(config), "--grid", "train.nope=1,2",
                          "--out", str(tmp_path / "bad"), "--nproc", "2"], capture_output=True, text=True, env=ENV,
                         timeout=180)
    assert bad.returncode == 2 and bad.stderr.count("train.nope: unknown key") == 1 and "Traceback" not in bad.stderr


# 5 seeds over 2 ranks: 3 and 2 replicas. Mini-batches with a last partial one, dropout (each replica's own
# generator), a validation split deciding best.pt, a plateau schedule and early stopping per replica.
SEEDS = tiny_config(seeds=[0, 1, 2, 3, 4], model={"layers": [8], "dropout": 0.1},
                    dataset={"name": "blobs", "centers": 3, "n_samples": 210, "val_size": 0.2, "cluster_std": 3.0},
                    train={"epochs": 24, "log_every": 2, "optimizer": "adam", "lr": 0.02, "batch_size": 40,
                           "early_stopping": {"patience": 3}, "scheduler": {"name": "plateau", "patience": 2}})


def same_replicas(mine: Path, theirs: Path) -> None:
    """Every replica's rows, last and best weights, and summary records as `theirs` (one process) has them."""
    assert_same_numbers(mine, theirs)
    best_mine, best_theirs = weights(mine, "best"), weights(theirs, "best")
    assert all(torch.allclose(best_mine[k], best_theirs[k], rtol=1e-5, atol=1e-6) for k in best_theirs)
    a, b = (json.loads((run / "summary.json").read_text()) for run in (mine, theirs))
    for key in ("status", "epochs_run", "seeds", "stopped_early", "weights"):
        assert a[key] == b[key], key
    for replica_a, replica_b in zip(a["replicas"], b["replicas"], strict=True):
        assert {k: replica_a[k] for k in ("seed", "status", "stopped_early", "epochs_run")} == \
            {k: replica_b[k] for k in ("seed", "status", "stopped_early", "epochs_run")}
        for key, value in replica_b["final"].items():
            assert math.isclose(replica_a["final"][key], value, rel_tol=1e-6, abs_tol=1e-9), key


def test_seeds_spread_over_two_ranks_compute_what_one_process_computes(tmp_path):
    config = write(tmp_path, SEEDS)
    alone = one_process(config, "--out", tmp_path / "alone", "-q")
    assert alone.returncode == 0, alone.stderr
    launched = one_process(config, "--out", tmp_path / "spread", "--nproc", "2")  # the shorthand of torchrun
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("Run directory:") == 1  # rank 0's console alone
    assert "5 replicas over 2 processes, 2 or 3 per process" in launched.stdout
    spread = tmp_path / "spread"
    same_replicas(spread, tmp_path / "alone")
    summary = json.loads((spread / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert summary["batch"] == {"replicas": 5, "runs": 1, "per_process": [3, 2]}
    assert any(r["stopped_early"] for r in summary["replicas"])  # the case covers a replica stopping on its own
    assert invoke("eval", spread).exit_code == 0 and invoke("eval", spread, "--seed", "4").exit_code == 0


def test_seeds_fewer_than_the_processes_are_refused_before_anything_starts(tmp_path, cli, write_config):
    config = write_config(tiny_config(seeds=[0, 1]))
    result = cli("fit", config, "--nproc", "3")
    assert result.exit_code == 2 and "seeds: 2 seed(s) cannot be spread over 3 processes" in result.output
    assert not (tmp_path / "runs").exists()
    launched = torchrun(write(tmp_path, tiny_config(seeds=[0])), "--runs", tmp_path / "runs")
    assert launched.returncode != 0
    assert launched.stderr.count("error: seeds: 1 seed(s) cannot be spread over 2 processes") == 1  # rank 0's
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (NCCL)")
def test_two_ranks_on_two_gpus_with_nccl_compute_what_one_gpu_computes(tmp_path):
    config = write(tmp_path, {**CASES["sgd-momentum-minibatch"], "device": "cuda"})
    alone = one_process(config, "--out", tmp_path / "alone", "-q")
    assert alone.returncode == 0, alone.stderr
    launched = torchrun(config, "--out", tmp_path / "run")
    assert launched.returncode == 0, launched.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["distributed"] == {"world_size": 2, "backend": "nccl"} and summary["device"] == "cuda:0"
    assert_same_numbers(tmp_path / "run", tmp_path / "alone", rel=1e-5)  # GPU kernels round more freely


def test_torchruns_agent_names_a_process_that_died_without_clftrains_error_and_prints_no_traceback(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    env = {k: v for k, v in ENV.items() if k != "CLFTRAIN_EXIT_FILE"}
    agent = subprocess.run([sys.executable, "-m", "clftrain.runs.torchrun_agent", "--standalone",
                            "--nproc-per-node=1", str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert agent.returncode == 1
    assert "error: process 0 of the launch was stopped by SIGKILL" in agent.stderr, agent.stderr[-2000:]
    assert "Traceback" not in agent.stderr and "Root Cause" not in agent.stderr


def test_a_process_of_a_sweep_waits_past_the_collective_timeout_for_anothers_longer_batches(tmp_path):
    # one batch: rank 0 trains it for several seconds while rank 1 waits for its rows, past a 2 s timeout
    config = write(tmp_path, tiny_config(train={"epochs": 30_000, "log_every": 10_000}))
    env = {**ENV, "CLFTRAIN_COLLECTIVE_TIMEOUT_S": "2"}
    launched = subprocess.run([sys.executable, "-m", "clftrain", "sweep", str(config), "--grid", "train.lr=0.1,0.03",
                               "--out", str(tmp_path / "s"), "--nproc", "2", "-q"], capture_output=True, text=True,
                              env=env, timeout=180)
    assert launched.returncode == 0, launched.stderr[-3000:]
    seconds = [json.loads(p.read_text())["seconds"] for p in (tmp_path / "s").glob("*/summary.json")]
    assert len(seconds) == 2 and min(seconds) > 2  # the wait was longer than the timeout


PATIENCE = """
import sys, time
import torch
from clftrain.training import distributed
world = distributed.join_world(torch.device("cpu"))
if world.is_main:
    time.sleep(4)  # rank 0 writing a run's plots and report, past the 1 s collective timeout
try:
    print(f"rank {world.rank}:", distributed.broadcast("rank 0's summary", world, patient=sys.argv[1] == "patient"))
except Exception as exc:
    print(f"rank {world.rank}: {type(exc).__name__}")
"""


@pytest.mark.parametrize("patient", [True, False], ids=["patient", "impatient"])
def test_ranks_wait_for_rank_zeros_end_of_run_past_the_collective_timeout(tmp_path, patient):
    script = tmp_path / "patience.py"
    script.write_text(PATIENCE)
    env = {**ENV, "CLFTRAIN_COLLECTIVE_TIMEOUT_S": "1"}
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                               str(script), "patient" if patient else "impatient"], capture_output=True, text=True,
                              env=env, timeout=120)
    waited = "rank 1: rank 0's summary" in launched.stdout
    assert waited == patient, launched.stdout + launched.stderr[-2000:]  # the default group gives up after 1 s


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_a_bad_collective_timeout_in_the_environment_is_a_user_error_naming_it(monkeypatch, value):
    from clftrain.errors import UserError
    from clftrain.training import distributed

    monkeypatch.setenv("CLFTRAIN_COLLECTIVE_TIMEOUT_S", value)
    with pytest.raises(UserError, match=f"CLFTRAIN_COLLECTIVE_TIMEOUT_S='{value}': expected a number of seconds"):
        distributed.collective_timeout_s()
    monkeypatch.setenv("CLFTRAIN_COLLECTIVE_TIMEOUT_S", "300")
    assert distributed.collective_timeout_s() == 300.0
    monkeypatch.delenv("CLFTRAIN_COLLECTIVE_TIMEOUT_S")
    assert distributed.collective_timeout_s() == distributed.COLLECTIVE_TIMEOUT_S == 120
