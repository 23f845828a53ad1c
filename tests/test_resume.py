"""Resume, interruption and kill -9: nothing is lost, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clftrain.store import rundir
from clftrain.config import load_config
from clftrain.errors import UserError
from clftrain.runs import fit_run, resume_run
from clftrain.training import Callback
from conftest import tiny_config


class InterruptAt(Callback):
    """Acts like Ctrl-C arriving during epoch `epoch`."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, row):
        if trainer.epoch == self.epoch:
            trainer.stop("interrupted")


class InterruptAtStep(Callback):
    """Acts like Ctrl-C arriving during training step `step` (counted over the whole fit, from 1)."""

    def __init__(self, step: int) -> None:
        self.step, self.seen = step, 0

    def on_fit_start(self, trainer):
        train_step = trainer.train_step

        def counting(*args, **kwargs):
            self.seen += 1
            if self.seen == self.step:
                trainer.stop("interrupted")
            return train_step(*args, **kwargs)

        trainer.train_step = counting


def metrics_without_time(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((run / "metrics.csv").open())]


def weights(run: Path, which: str = "last") -> dict:
    return rundir.load_checkpoint(rundir.checkpoint_path(run, which))["model"]


@pytest.mark.parametrize(
    "config",
    [
        tiny_config(train={"epochs": 40, "log_every": 5}, dataset={"val_size": 0.2}),
        # mini-batches with shuffling, dropout and Adam: every RNG and optimizer state matters
        tiny_config(train={"epochs": 30, "log_every": 4, "batch_size": 32, "optimizer": "adam", "lr": 0.01},
                    model={"dropout": 0.3}, dataset={"val_size": 0.2}),
        # early stopping state survives too
        tiny_config(train={"epochs": 40, "log_every": 5, "early_stopping": {"monitor": "val_acc", "patience": 15}}),
        # learning-rate schedules: per epoch, and per batch
        tiny_config(train={"epochs": 30, "log_every": 5, "scheduler": {"name": "plateau", "patience": 1}}),
        tiny_config(train={"epochs": 30, "log_every": 5, "batch_size": 50, "optimizer": "adam",
                           "scheduler": {"name": "onecycle"}}, dataset={"val_size": 0.2}),
    ],
    ids=["full-batch", "mini-batch-dropout-adam", "early-stopping", "plateau", "onecycle"],
)
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(write_config, tmp_path, config):
    path = write_config(config)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    fit_run(load_config(path), out=straight)
    result = fit_run(load_config(path), out=interrupted, callbacks=[InterruptAt(13)])
    assert result.summary["status"] == "interrupted" and result.summary["epochs_run"] == 13

    resumed = resume_run(interrupted)
    assert resumed.summary["status"] == "completed"
    assert resumed.summary["epochs_run"] == json.loads((straight / "summary.json").read_text())["epochs_run"]
    assert metrics_without_time(interrupted) == metrics_without_time(straight)
    for which in ("last", "best"):
        mine, theirs = weights(interrupted, which), weights(straight, which)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), which


@pytest.mark.parametrize(
    "config",
    [
        tiny_config(train={"epochs": 12, "log_every": 4, "batch_size": 32, "optimizer": "adam", "lr": 0.01},
                    model={"dropout": 0.3}, dataset={"val_size": 0.2}),
        tiny_config(train={"epochs": 12, "log_every": 4, "batch_size": 50, "optimizer": "adam",
                           "scheduler": {"name": "onecycle"}}, model={"batch_norm": True}, dataset={"val_size": 0.2}),
    ],
    ids=["dropout-adam", "onecycle-batchnorm"],
)
def test_a_mini_batch_epoch_interrupted_between_steps_resumes_exactly(write_config, tmp_path, config):
    path = write_config(config)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    fit_run(load_config(path), out=straight)
    # 120 training rows in batches of 32 (or 50): 4 (or 3) steps an epoch; stop asked during step 23
    result = fit_run(load_config(path), out=interrupted, callbacks=[InterruptAtStep(23)])
    steps = -(-120 // config["train"]["batch_size"])
    epoch, done = divmod(23, steps)
    assert result.summary["status"] == "interrupted" and result.summary["epochs_run"] == epoch
    assert result.summary["epoch_in_progress"] == {"epoch": epoch + 1, "steps_done": done}
    assert rundir.load_checkpoint(interrupted / "checkpoints" / "last.pt")["partial"]["next_step"] == done
    from clftrain.inference import evaluate_run

    assert evaluate_run(interrupted)["fit_check"] is None  # weights from inside an epoch: no recorded row to match
    assert evaluate_run(interrupted, "best")["fit_check"]["match"] is True  # best.pt holds a whole, recorded epoch

    resumed = resume_run(interrupted)
    assert resumed.summary["status"] == "completed" and "epoch_in_progress" not in resumed.summary
    assert metrics_without_time(interrupted) == metrics_without_time(straight)
    for which in ("last", "best"):
        mine, theirs = weights(interrupted, which), weights(straight, which)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), which


def test_stopped_in_an_unevaluated_epoch_cannot_resume_with_that_epoch_last(write_config, tmp_path):
    config = tiny_config(train={"epochs": 12, "log_every": 4, "eval_every": 4, "batch_size": 32})
    run = tmp_path / "r"
    fit_run(load_config(write_config(config)), out=run, callbacks=[InterruptAtStep(23)])  # in epoch 5
    with pytest.raises(UserError, match=r"middle of epoch 5.*resume with train.epochs > 5"):
        resume_run(run, ["train.epochs=5"])
    assert resume_run(run, ["train.epochs=6"]).summary["epochs_run"] == 6


def test_resume_can_extend_epochs(write_config, tmp_path):
    run = fit_run(load_config(write_config(tiny_config(train={"epochs": 10}))), out=tmp_path / "r").run_dir
    result = resume_run(run, ["train.epochs=25"])
    assert result.summary["epochs_run"] == 25
    assert "epochs: 25" in (run / "config.yaml").read_text()
    assert [int(r["epoch"]) for r in csv.DictReader((run / "metrics.csv").open())] == list(range(1, 26))


def test_threads_auto_resumes_with_the_count_it_saved(write_config, tmp_path):
    config = tiny_config(threads="auto", train={"epochs": 12})
    run = fit_run(load_config(write_config(config)), out=tmp_path / "r", callbacks=[InterruptAt(6)]).run_dir
    saved = rundir.load_checkpoint(run / "checkpoints" / "last.pt")["threads"]
    assert isinstance(saved, int) and 1 <= saved <= torch.get_num_threads()
    resumed = resume_run(run)
    assert resumed.summary["status"] == "completed" and resumed.summary["threads"] == saved
    assert "threads: auto" in (run / "config.yaml").read_text()  # the config still says what the user wrote


def test_a_run_from_before_a_config_key_existed_still_resumes(write_config, tmp_path):
    import yaml

    run = fit_run(load_config(write_config(tiny_config(train={"epochs": 10}))), out=tmp_path / "r").run_dir
    # As an older clftrain wrote them: no `threads` key in config.yaml nor in the checkpoint's config.
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["threads"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    last = run / "checkpoints" / "last.pt"
    payload = rundir.load_checkpoint(last)
    del payload["config"]["threads"]
    rundir.save_checkpoint(last, payload)
    assert resume_run(run, ["train.epochs=12"]).summary["epochs_run"] == 12


@pytest.mark.parametrize(
    ("prepare", "overrides", "expected"),
    [
        (lambda run: None, [], "already ran 10 of 10 epochs"),
        (lambda run: None, ["train.lr=0.5"], "only train.epochs can change when resuming"),
        (lambda run: (run / "config.yaml").unlink(), [], "is not a clftrain run directory"),
        (lambda run: (run / "checkpoints" / "last.pt").write_bytes(b"\x80\x02garbage"), ["train.epochs=20"], "truncated or corrupt"),
    ],
    ids=["completed", "other-key", "no-config", "corrupt"],
)
def test_resume_refusals(write_config, tmp_path, prepare, overrides, expected):
    run = fit_run(load_config(write_config(tiny_config(train={"epochs": 10}))), out=tmp_path / "r").run_dir
    prepare(run)
    with pytest.raises(UserError, match=expected):
        resume_run(run, overrides)


def test_checkpoint_of_another_run_is_refused(write_config, tmp_path):
    a = fit_run(load_config(write_config(tiny_config(train={"epochs": 5}))), out=tmp_path / "a").run_dir
    b = fit_run(load_config(write_config(tiny_config(train={"epochs": 5}, model={"layers": [4, 4]}), "b.yaml")),
                       out=tmp_path / "b").run_dir
    (b / "checkpoints" / "last.pt").write_bytes((a / "checkpoints" / "last.pt").read_bytes())
    with pytest.raises(UserError, match=r"belongs to another run: its config differs from config.yaml at model.layers"):
        resume_run(b, ["train.epochs=10"])


# ---------------------------------------------------------------- real processes and signals
def start_fit(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clftrain", "fit", *map(str, args), "-q"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


SLOW = tiny_config(train={"epochs": 100_000, "log_every": 50, "batch_size": 16})


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits_with_its_code(write_config, tmp_path, sig, code):
    run = tmp_path / "run"
    proc = start_fit([write_config(SLOW), "--out", run], tmp_path)
    wait_for(run / "checkpoints" / "last.pt")
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, output
    assert f"continue with: clftrain fit --resume {run}" in output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    saved = rundir.load_checkpoint(rundir.checkpoint_path(run, "last"))
    assert saved["epoch"] == summary["epochs_run"] and saved["status"] == "interrupted"


def test_kill_9_at_random_moments_always_leaves_a_resumable_run(write_config, tmp_path):
    # Enough epochs that each session is still training when its kill lands (a session trains ~300 epochs a second).
    epochs = 800
    # eval_every 1: every epoch leaves a metrics.csv row, so a lost or repeated epoch shows.
    config = tiny_config(train={"epochs": epochs, "log_every": 2, "eval_every": 1, "batch_size": 32,
                                "checkpoint_seconds": 0})  # a save every other epoch: kills land between saves
    run = tmp_path / "run"
    last = run / "checkpoints" / "last.pt"
    rng = random.Random(0)
    proc = start_fit([write_config(config), "--out", run], tmp_path)
    epochs_seen = []
    for _ in range(3):
        before = last.stat().st_mtime_ns if last.exists() else None
        wait_for(last)
        while last.stat().st_mtime_ns == before and proc.poll() is None:
            time.sleep(0.02)  # this session has saved at least once: it is really training
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        saved = rundir.load_checkpoint(last)  # always loadable: never half-written
        epochs_seen.append(saved["epoch"])
        proc = start_fit(["--resume", run], tmp_path)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert epochs_seen == sorted(epochs_seen) and epochs_seen[-1] < epochs  # killed mid-training each time


class BlowUpAt(Callback):
    """Raises the learning rate absurdly at `epoch`, as a bad schedule would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer, row):
        if trainer.epoch == self.epoch:
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e35


def test_divergence_stops_at_once_and_keeps_best_from_before(write_config, tmp_path):
    config = load_config(write_config(tiny_config(train={"epochs": 200, "log_every": 5}, dataset={"val_size": 0.2})))
    result = fit_run(config, out=tmp_path / "run", callbacks=[BlowUpAt(30)])
    summary = result.summary
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] <= 35  # stopped within a few epochs of the blow-up, not at 200
    best = rundir.load_checkpoint(rundir.checkpoint_path(result.run_dir, "best"))
    assert best["epoch"] <= 30 and all(torch.isfinite(v).all() for v in best["model"].values())


def test_weights_of_another_architecture_name_the_first_mismatching_layer():
    from clftrain.config import ModelConfig
    from clftrain.training import build_model, load_weights

    small = build_model(ModelConfig(layers=[10, 10]), 2, 1, "bce_with_logits")
    wide = build_model(ModelConfig(layers=[16, 10]), 2, 1, "bce_with_logits")
    with pytest.raises(UserError, match=r"first mismatch at layer '0.weight' \(checkpoint: \[10, 2\], config's model: \[16, 2\]\)"):
        load_weights(wide, small.state_dict(), "best.pt")
    deeper = build_model(ModelConfig(layers=[10, 10, 10]), 2, 1, "bce_with_logits")
    with pytest.raises(UserError, match=r"layer '4.weight' \(checkpoint: \[1, 10\], config's model: \[10, 10\]\)"):
        load_weights(deeper, small.state_dict(), "best.pt")


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over_in_place(write_config, cli, tmp_path):
    """What a kill -9 in a run's first seconds leaves: its config and a summary saying it is running."""
    config = write_config(tiny_config(train={"epochs": 30, "log_every": 10}))
    assert cli("fit", config, "--out", "straight", "-q").exit_code == 0
    run = tmp_path / "killed"
    run.mkdir()
    (run / "config.yaml").write_text((tmp_path / "straight" / "config.yaml").read_text())
    (run / "summary.json").write_text(json.dumps({"name": "tiny", "status": "running", "epochs_run": 0}))
    result = cli("fit", "--resume", run)
    assert result.exit_code == 0, result.output
    assert "had no checkpoint (it stopped before its first save): trained it again from the start, in place" \
        in result.output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["notes"][0].startswith(f"{run} had no checkpoint")
    assert metrics_without_time(run) == metrics_without_time(tmp_path / "straight")  # the same run, in place
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["killed", "straight"]  # no second directory


def test_resume_of_a_run_killed_while_drawing_its_plots_draws_them(write_config, cli, tmp_path):
    assert cli("fit", write_config(tiny_config()), "--out", "run", "-q").exit_code == 0
    checkpoints = {p.name: p.read_bytes() for p in (tmp_path / "run" / "checkpoints").iterdir()}
    shutil.rmtree(tmp_path / "run" / "plots")  # completed and saved, killed before its pictures
    result = cli("fit", "--resume", "run")
    assert result.exit_code == 0, result.output
    assert "finished the end of a run that had stopped before it: wrote plots/decision_boundary.png, " \
           "plots/confusion_matrix.png, plots/curves.png" in result.output
    assert sorted(p.name for p in (tmp_path / "run" / "plots").iterdir()) == [
        "confusion_matrix.png", "curves.png", "decision_boundary.png"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "run" / "checkpoints").iterdir()} == checkpoints  # untouched
    result = cli("fit", "--resume", "run")  # now nothing is missing
    assert result.exit_code == 2 and "already ran 20 of 20 epochs" in result.output


def test_resume_of_a_run_killed_before_its_final_summary_writes_it(write_config, cli, tmp_path):
    assert cli("fit", write_config(tiny_config()), "--out", "run", "-q").exit_code == 0
    final = json.loads((tmp_path / "run" / "summary.json").read_text())
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"name": "tiny", "status": "running", "epochs_run": 10}))
    result = cli("fit", "--resume", "run")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"] == final["final"] and summary["best"] == final["best"]


def test_a_run_being_trained_cannot_be_resumed_by_another_process(write_config, tmp_path, cli):
    run = tmp_path / "run"
    proc = start_fit([write_config(SLOW), "--out", run], tmp_path)
    try:
        wait_for(run / ".lock")
        wait_for(run / "summary.json")
        result = cli("fit", "--resume", run)
        assert result.exit_code == 2, result.output
        assert f"{run} is being trained by another clftrain process right now (pid {proc.pid})" in result.output
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    saved = rundir.load_checkpoint(run / "checkpoints" / "last.pt")  # the refused resume changed nothing
    assert saved["status"] == "interrupted"
    assert cli("fit", "--resume", run, "--set", "train.epochs=" + str(saved["epoch"] + 2)).exit_code == 0


def test_a_resume_that_cannot_write_is_a_clear_error(write_config, cli, tmp_path, monkeypatch):
    """A read-only run directory (simulated: the tests may run as root, who writes anyway)."""
    assert cli("fit", write_config(tiny_config(train={"epochs": 4})), "--out", "run", "-q").exit_code == 0
    real = os.open

    def read_only(path, flags, *args):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and str(tmp_path / "run") in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    result = cli("fit", "--resume", "run", "--set", "train.epochs=6")
    assert result.exit_code == 2 and "cannot write to run directory run: Permission denied" in result.output
    assert "Traceback" not in result.output


def test_a_resume_on_a_full_disk_is_a_clear_error(write_config, cli, tmp_path, monkeypatch):
    assert cli("fit", write_config(tiny_config(train={"epochs": 4})), "--out", "run", "-q").exit_code == 0
    before = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir, "atomic_write_bytes", full)
    result = cli("fit", "--resume", "run", "--set", "train.epochs=6")
    assert result.exit_code == 2 and "No space left on device" in result.output and "Traceback" not in result.output
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == before


def test_a_signal_while_the_plots_are_drawn_leaves_a_completed_run_that_resume_finishes(write_config, cli,
                                                                                        monkeypatch, tmp_path):
    from clftrain.views import plots

    real = plots.learning_curves

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # as if SIGTERM came while this figure was drawn
        time.sleep(1)

    monkeypatch.setattr(plots, "learning_curves", terminated)
    result = cli("fit", write_config(tiny_config(dataset={"val_size": 0.2})), "--out", "run")
    assert result.exit_code == 143, result.output
    assert "interrupted by SIGTERM while drawing the plots; the run is complete" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final"] and summary["best"]
    assert "plots not drawn: interrupted by SIGTERM" in summary["notes"][0]
    monkeypatch.setattr(plots, "learning_curves", real)
    result = cli("fit", "--resume", tmp_path / "run")
    assert result.exit_code == 0 and "wrote plots/curves.png" in result.output
