"""Data-parallel launches stopped and resumed: SIGTERM mid-epoch, a rank killed, a checkpoint of two ranks resumed
in one process and one process's resumed on two (real torchrun launches of 2 gloo processes, tiny data).

A file of its own beside test_distributed.py: `make test` gives each file to one worker, and the launches of the
two files together were a third of the suite's time on one of them.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clftrain.store import rundir
from conftest import tiny_config
from test_distributed import ENV, SEEDS, assert_same_numbers, one_process, rows, same_replicas, torchrun, weights, write
from trained_runs import invoke

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")


def wait_for(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# Every epoch logged: the epoch the stop lands in (mid-epoch: 5 steps an epoch, the ranks agree every 16)
# is one whose train_loss/train_acc are written, so the resumed epoch's running sums are checked too.
DROPOUT = tiny_config(model={"layers": [8], "dropout": 0.2},
                      train={"epochs": 60, "log_every": 1, "optimizer": "adam", "lr": 0.01, "batch_size": 32})


def stop_by_sigterm(config: Path, out: Path, after_epoch: int, epochs: int) -> Path:
    """A 2-rank launch of `config` stopped by SIGTERM once it logged `after_epoch`; its run directory (checked
    interrupted) and a copy of it beside, `out`-copy."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "clftrain",
               "fit", str(config), "--out", str(out)]
    launch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    for line in launch.stdout:  # a logged epoch: training is under way on both ranks
        if line.startswith(f"Epoch: {after_epoch} "):
            break
    launch.send_signal(signal.SIGTERM)  # torchrun passes it on to its workers
    launch.stdout.read()
    assert launch.wait(timeout=60) != 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and after_epoch <= summary["epochs_run"] < epochs
    shutil.copytree(out, out.with_name(out.name + "-copy"))
    return out


def test_sigterm_stops_every_rank_after_one_step_and_resume_continues_bit_for_bit(tmp_path):
    config = write(tmp_path, DROPOUT)
    straight = torchrun(config, "--out", tmp_path / "straight", "-q")
    assert straight.returncode == 0, straight.stderr[-3000:]

    stopped = stop_by_sigterm(config, tmp_path / "stopped", after_epoch=20, epochs=60)
    assert "epoch_in_progress" in json.loads((stopped / "summary.json").read_text())  # stopped between steps
    # Each rank's running sums of the epoch kept apart, for it to continue its own: their total continued on
    # rank 0 alone adds the same floats in another order, and the resumed epoch's train_loss once differed from
    # the straight run's in its 8th digit
    partial = rundir.load_checkpoint(rundir.checkpoint_path(stopped, "last"))["partial"]
    assert [s.shape[0] for s in partial["rank_sums"]] == [2, 2]
    for by_rank, total in zip(partial["rank_sums"], partial["sums"]):
        assert torch.allclose(by_rank.sum(0).float(), total.float())
    assert not torch.equal(partial["rank_sums"][0][0], partial["rank_sums"][0][1])  # each its own shards

    resumed = torchrun("--resume", stopped, "-q")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert rows(stopped) == rows(tmp_path / "straight")  # dropout masks per rank and step: the same again
    mine, theirs = weights(stopped), weights(tmp_path / "straight")
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_a_run_saved_by_two_ranks_resumes_in_one_process_with_the_same_numbers(tmp_path):
    config = tiny_config(train={"epochs": 10, "log_every": 2, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
                                "batch_size": 48})
    path = write(tmp_path, config)
    alone = one_process(path, "--out", tmp_path / "alone", "-q")
    assert alone.returncode == 0
    first = torchrun(path, "--out", tmp_path / "run", "--set", "train.epochs=6", "-q")
    assert first.returncode == 0, first.stderr[-3000:]
    later = one_process("--resume", tmp_path / "run", "--set", "train.epochs=10", "-q")
    assert later.returncode == 0, later.stderr
    assert_same_numbers(tmp_path / "run", tmp_path / "alone")
    assert "distributed" not in json.loads((tmp_path / "run" / "summary.json").read_text())  # one process now


def children(parent: int) -> list[int]:
    """The processes whose parent is `parent` (from /proc: no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("seeds", [None, [0, 1, 2]], ids=["data-parallel", "seeds-spread"])
def test_a_rank_killed_stops_the_others_with_a_clear_error_and_leaves_a_loadable_checkpoint(tmp_path, seeds):
    config = write(tmp_path, tiny_config(seeds=seeds, train={"epochs": 1_000_000, "log_every": 100,
                                                             "checkpoint_seconds": 0.2, "batch_size": 40}))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "clftrain",
               "fit", str(config), "--out", str(run), "-q"]
    launch = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        wait_for(lambda: (run / "checkpoints" / "last.pt").is_file(), 60)
        ranks = {}
        for pid in children(launch.pid):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = next((v for v in environ if v.startswith(b"RANK=")), None)
            if rank is not None:
                ranks[int(rank.split(b"=")[1])] = int(pid)
        killed_at = time.monotonic()
        os.kill(ranks[1], signal.SIGKILL)
        output = launch.communicate(timeout=90)[0]
    finally:
        if launch.poll() is None:
            launch.kill()
    assert launch.returncode != 0 and time.monotonic() - killed_at < 60  # bounded, no hang
    assert "error: another process of this 2-process launch stopped or stopped answering" in output, output[-3000:]
    # torchrun's own report follows; no traceback from clftrain's processes
    assert not [line for line in output.splitlines() if line.strip().startswith('File "') and "/clftrain/" in line]
    assert rundir.load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] >= 1
    assert invoke("eval", run).exit_code == 0  # the checkpoint on disk is whole


def test_a_spread_run_stopped_by_sigterm_resumes_on_two_ranks_and_in_one_process(tmp_path):
    config = write(tmp_path, {**SEEDS, "seeds": [0, 1, 2], "train": {**SEEDS["train"], "epochs": 140,
                                                                      "early_stopping": None, "log_every": 20}})
    alone = one_process(config, "--out", tmp_path / "alone", "-q")
    assert alone.returncode == 0, alone.stderr
    stopped = stop_by_sigterm(config, tmp_path / "stopped", after_epoch=20, epochs=140)

    resumed = torchrun("--resume", stopped, "-q")  # each rank takes its slice of the saved replicas
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_replicas(stopped, tmp_path / "alone")
    in_one = one_process("--resume", tmp_path / "stopped-copy", "-q")  # the checkpoint is one process's
    assert in_one.returncode == 0, in_one.stderr[-3000:]
    same_replicas(tmp_path / "stopped-copy", tmp_path / "alone")


def test_a_run_with_seeds_from_one_process_resumes_spread_over_two_ranks(tmp_path):
    # (a run that completes with restore_best ends on its best weights: extended, it would not go on as one run)
    config = write(tmp_path, {**SEEDS, "train": {**SEEDS["train"], "restore_best": False}})
    alone = one_process(config, "--out", tmp_path / "alone", "-q")
    first = one_process(config, "--out", tmp_path / "run", "--set", "train.epochs=8", "-q")
    assert alone.returncode == 0 and first.returncode == 0, first.stderr
    later = torchrun("--resume", tmp_path / "run", "--set", "train.epochs=24", "-q")
    assert later.returncode == 0, later.stderr[-3000:]
    same_replicas(tmp_path / "run", tmp_path / "alone")


def test_ctrl_c_stops_a_nproc_launch_with_rank_zeros_word_and_no_traceback(tmp_path):
    config = write(tmp_path, tiny_config(train={"epochs": 1_000_000, "log_every": 50, "batch_size": 40}))
    run, errors = tmp_path / "run", (tmp_path / "stderr.txt").open("w")
    launch = subprocess.Popen([sys.executable, "-m", "clftrain", "fit", str(config), "--out", str(run), "--nproc", "2"],
                              stdout=subprocess.PIPE, stderr=errors, text=True, env=ENV, start_new_session=True)
    try:
        for line in launch.stdout:  # a logged epoch: both ranks are training
            if line.startswith("Epoch: 50 "):
                break
        os.killpg(launch.pid, signal.SIGINT)  # what Ctrl-C sends: the launcher, torchrun's agent, the ranks
        said = launch.stdout.read()
        assert launch.wait(timeout=60) == 130
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
        errors.close()
    assert f"interrupted by SIGINT; continue with: clftrain fit --resume {run}" in said
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr and "SignalException" not in stderr, stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "interrupted"


def test_ctrl_c_stops_a_nproc_sweep_whose_idle_process_waits_for_the_rows(tmp_path):
    # one batch (two runs of one shape): rank 0 trains it, rank 1 waits in the rows' gathering when Ctrl-C comes
    config = write(tmp_path, tiny_config(train={"epochs": 1_000_000, "log_every": 50}))
    sweep, errors = tmp_path / "sweep", (tmp_path / "stderr.txt").open("w")
    launch = subprocess.Popen([sys.executable, "-m", "clftrain", "sweep", str(config), "--grid", "train.lr=0.1,0.03",
                               "--out", str(sweep), "--nproc", "2"], stdout=subprocess.PIPE, stderr=errors, text=True,
                              env=ENV, start_new_session=True)
    try:
        wait_for(lambda: any(len(f.read_text().splitlines()) > 2 for f in sweep.glob("*/metrics.csv")), 60)
        os.killpg(launch.pid, signal.SIGINT)
        said = launch.communicate(timeout=60)[0]
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
        errors.close()
    assert launch.returncode == 130 and said.count("interrupted by SIGINT: the runs above are complete or resumable") == 1
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "Traceback" not in stderr, stderr[-3000:]
    with (sweep / "sweep.csv").open() as f:
        assert [row["status"] for row in csv.DictReader(f)] == ["interrupted", "interrupted"]
