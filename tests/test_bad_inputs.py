"""The bad-input matrix: every case exits 2 with one clear message, leaves no half-written
run directory behind (or one marked `status: failed`) and changes nothing that existed before."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import torch

from conftest import tiny_config


@dataclass
class Case:
    id: str
    args: list  # CLI arguments; "{cfg}" is the config file, "{run}" a finished run directory
    expected: str  # in the error message
    config: object = field(default_factory=tiny_config)  # dict, or raw YAML text
    prepare: Callable[[Path], None] | None = None  # gets the tmp dir, before the command runs
    patch: Callable | None = None  # gets monkeypatch, to simulate the machine failing


def corrupt_last(tmp: Path) -> None:
    (tmp / "run" / "checkpoints" / "last.pt").write_bytes(b"PK\x03\x04 truncated")


def truncate_last(tmp: Path) -> None:
    path = tmp / "run" / "checkpoints" / "last.pt"
    path.write_bytes(path.read_bytes()[:300])


class Evil:
    """Unpickling this would create a file: a checkpoint must never run it."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def pickled_object_last(tmp: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"format": "clftrain-checkpoint/1", "model": Evil()}, buffer)
    (tmp / "run" / "checkpoints" / "last.pt").write_bytes(buffer.getvalue())


def foreign_checkpoint(tmp: Path) -> None:
    """A checkpoint from a run with another architecture, copied into this run."""
    from clftrain.config import validate_config
    from clftrain.runs import fit_run

    other = fit_run(validate_config(tiny_config(model={"layers": [3]})), out=tmp / "other")
    shutil.copy(other.run_dir / "checkpoints" / "last.pt", tmp / "run" / "checkpoints" / "last.pt")


def other_tool_run(tmp: Path) -> None:
    (tmp / "lightning_logs").mkdir()
    (tmp / "lightning_logs" / "hparams.yaml").write_text("lr: 0.1\n")


def disk_full(monkeypatch) -> None:
    from clftrain.store import rundir

    real = rundir.atomic_write_bytes

    def no_space_for_checkpoints(path, data):
        if path.suffix == ".pt":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(rundir, "atomic_write_bytes", no_space_for_checkpoints)


def not_writable(monkeypatch) -> None:
    real = os.mkdir

    def refuse(path, *args, **kwargs):
        if "forbidden" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refuse)


T = tiny_config
CASES = [
    # ---- the config file itself
    Case("empty-file", ["fit", "{cfg}"], "is empty", config=""),
    Case("yaml-list", ["fit", "{cfg}"], "must be a mapping of keys", config="- 1\n- 2\n"),
    Case("yaml-syntax", ["fit", "{cfg}"], "invalid YAML in", config="dataset: {name: circles\n"),
    Case("duplicate-keys", ["fit", "{cfg}"], "duplicate key 'train'", config="dataset: {name: circles}\ntrain: {}\ntrain: {}\n"),
    Case("python-tag", ["fit", "{cfg}"], "invalid YAML", config="dataset: !!python/object/apply:os.system ['touch pwned']\n"),
    Case("missing-file", ["fit", "missing.yaml"], "config file not found"),
    Case("config-is-directory", ["fit", "."], "is a directory"),
    Case("unknown-key", ["fit", "{cfg}"], "did you mean 'epochs'", config=T(train={"epoch": 5})),
    Case("lr-word", ["fit", "{cfg}"], "train.lr = 'fast'", config=T(train={"lr": "fast"})),
    Case("lr-nan", ["fit", "{cfg}"], "train.lr = nan: Input should be a finite number", config="dataset: {name: circles}\ntrain: {lr: .nan}\n"),
    Case("lr-inf", ["fit", "{cfg}"], "train.lr = inf: Input should be a finite number", config="dataset: {name: circles}\ntrain: {lr: .inf}\n"),
    Case("lr-zero", ["fit", "{cfg}"], "train.lr = 0", config=T(train={"lr": 0})),
    Case("epochs-zero", ["fit", "{cfg}"], "train.epochs = 0", config=T(train={"epochs": 0})),
    Case("epochs-negative", ["fit", "{cfg}"], "train.epochs = -5", config=T(train={"epochs": -5})),
    Case("batch-larger-than-data", ["fit", "{cfg}"], "train.batch_size = 5000 is larger than the 160 training rows", config=T(train={"batch_size": 5000})),
    Case("layer-zero", ["fit", "{cfg}"], "model.layers.0 = 0", config=T(model={"layers": [0, 4]})),
    Case("unknown-activation", ["fit", "{cfg}"], "unknown activation 'rleu' (did you mean 'relu'?)", config=T(model={"activation": "rleu"})),
    Case("unknown-optimizer", ["fit", "{cfg}"], "unknown optimizer 'adma'", config=T(train={"optimizer": "adma"})),
    Case("loss-task", ["fit", "{cfg}"], "does not fit the binary task; use one of: bce_with_logits, bce", config=T(train={"loss": "mse"})),
    Case("test-size-one", ["fit", "{cfg}"], "dataset.test_size = 1.0", config=T(dataset={"test_size": 1.0})),
    Case("splits-leave-nothing", ["fit", "{cfg}"], "leaves no training data", config=T(dataset={"test_size": 0.5, "val_size": 0.5})),
    Case("too-few-samples", ["fit", "{cfg}"], "too few for 5 classes", config=T(dataset={"name": "spirals", "n_classes": 5, "n_samples": 6})),
    Case("negative-noise", ["fit", "{cfg}"], "dataset.noise = -0.1", config=T(dataset={"noise": -0.1})),
    Case("name-with-slash", ["fit", "{cfg}"], "name = '../escape'", config=T(name="../escape")),
    Case("momentum-adam", ["fit", "{cfg}"], "not used by optimizer 'adam'", config=T(train={"optimizer": "adam", "momentum": 0.9})),
    Case("monitor-unknown", ["fit", "{cfg}"], "early_stopping.monitor = 'val_accuracy' is not a recorded metric (did you mean 'val_acc'?)", config=T(train={"early_stopping": {"monitor": "val_accuracy"}})),
    Case("monitor-test", ["fit", "{cfg}"], "the test split only reports, it never decides", config=T(train={"early_stopping": {"monitor": "test_loss"}})),
    Case("cuda-absent", ["fit", "{cfg}"], "no CUDA GPU is available here", config=T(device="cuda")),
    # ---- --set
    Case("set-unknown-key", ["fit", "{cfg}", "--set", "model.layer=[4]"], "model.layer: unknown key (did you mean 'layers'?)"),
    Case("set-no-equals", ["fit", "{cfg}", "--set", "train.lr"], "expected KEY=VALUE"),
    Case("set-bad-yaml", ["fit", "{cfg}", "--set", "model.layers=[4,"], "not valid YAML"),
    Case("set-bad-value", ["fit", "{cfg}", "--set", "train.lr=-1"], "train.lr = -1"),
    Case("set-through-value", ["fit", "{cfg}", "--set", "train.epochs.max=3"], "'train.epochs' is a value"),
    # ---- output locations
    Case("out-exists", ["fit", "{cfg}", "--out", "{run}"], "already exists"),
    Case("out-under-a-file", ["fit", "{cfg}", "--out", "notes.txt/run"], "cannot create directory"),
    Case("out-not-writable", ["fit", "{cfg}", "--out", "forbidden/run"], "Permission denied", patch=not_writable),
    Case("disk-full", ["fit", "{cfg}", "--out", "full"], "No space left on device", patch=disk_full),
    Case("config-and-resume", ["fit", "{cfg}", "--resume", "{run}"], "not both"),
    # ---- run directories and checkpoints
    Case("resume-missing-dir", ["fit", "--resume", "nowhere"], "run directory not found"),
    Case("resume-other-tool", ["fit", "--resume", "lightning_logs"], "is not a clftrain run directory", prepare=other_tool_run),
    Case("resume-completed", ["fit", "--resume", "{run}"], "already ran 3 of 3 epochs"),
    Case("resume-corrupt", ["fit", "--resume", "{run}", "--set", "train.epochs=9"], "truncated or corrupt", prepare=corrupt_last),
    Case("resume-truncated", ["fit", "--resume", "{run}", "--set", "train.epochs=9"], "truncated or corrupt", prepare=truncate_last),
    Case("resume-pickled-object", ["fit", "--resume", "{run}", "--set", "train.epochs=9"], "holds a pickled object", prepare=pickled_object_last),
    Case("resume-foreign-checkpoint", ["fit", "--resume", "{run}", "--set", "train.epochs=9"], "belongs to another run", prepare=foreign_checkpoint),
    # ---- ranges (hostile input)
    Case("seed-negative", ["fit", "{cfg}"], "seed = -1: Input should be greater than or equal to 0", config=T(seed=-1)),
    Case("seed-too-big", ["fit", "{cfg}"], "dataset.seed = 4294967296: Input should be less than or equal to 4294967295",
         config=T(dataset={"seed": 2**32})),
    Case("seeds-too-big", ["fit", "{cfg}", "--seeds", "4294967296"], "seed 4294967296 is above 4294967295"),
    Case("epochs-boolean", ["fit", "{cfg}"], "train.epochs = True: expected a number, not true", config=T(train={"epochs": True})),
    Case("noise-infinite", ["fit", "{cfg}", "--set", "dataset.noise=1e400"], "dataset.noise = '1e400': Input should be a finite number"),
    Case("lr-huge", ["fit", "{cfg}"], "train.lr = '1e+300': Input should be less than or equal to 1000000", config=T(train={"lr": 1e300})),
    Case("threads-huge", ["fit", "{cfg}"], "threads = 2147483648: expected auto or a whole number from 1 to 4,096",
         config=T(threads=2**31)),
    Case("width-huge", ["fit", "{cfg}"], "model.layers.0 = 4294967296: Input should be less than or equal to 1000000",
         config=T(model={"layers": [2**32]})),
    Case("memory", ["fit", "{cfg}"], "of memory and this machine has", config=T(model={"layers": [1_000_000, 1_000_000]})),
    Case("binary-on-ten-classes", ["fit", "{cfg}"], "binary needs exactly 2",
         config=T(task="binary", dataset={"name": "blobs", "centers": 10})),
    # ---- bounded reading
    Case("config-fifo", ["fit", "pipe.yaml"], "is a FIFO (named pipe), not a file clftrain can read",
         prepare=lambda tmp: os.mkfifo(tmp / "pipe.yaml")),
    Case("config-device", ["validate", "/dev/urandom"], "is a character device, not a file clftrain can read"),
    Case("config-too-big", ["fit", "{cfg}"], "bytes; at most 1,000,000 are read",
         config="dataset: {name: circles}\n#" + "x" * 1_000_001 + "\n"),
    Case("config-aliases", ["fit", "{cfg}"], "more than 100,000 values once its aliases (*name) are expanded",
         config="a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(
             f"a{i}: &a{i} [{', '.join([f'*a{i - 1}' if i > 1 else '*a'] * 10)}]\n" for i in range(1, 7))
         + "dataset: {name: circles}\n"),
    Case("config-deep", ["fit", "{cfg}"], "nested", config="dataset: {name: circles}\nx: " + "[" * 3000 + "]" * 3000 + "\n"),
    Case("config-key-mapping", ["fit", "{cfg}"], "a key that is a mapping or a list", config="? {a: 1}\n: 1\ndataset: {name: circles}\n"),
    Case("config-int-key", ["fit", "{cfg}"], "the key 1 is a int; keys are names", config="1: 2\ndataset: {name: circles}\n"),
    Case("config-long-int", ["fit", "{cfg}"], "an integer of 5000 digits (at most 30 are read)",
         config="seed: " + "9" * 5000 + "\ndataset: {name: circles}\n"),
    Case("config-not-utf8", ["fit", "{cfg}"], "is not UTF-8 text",
         prepare=lambda tmp: (tmp / "cfg.yaml").write_bytes("name: caf\xe9\ndataset: {name: circles}\n".encode("latin-1"))),
    Case("set-long-int", ["fit", "{cfg}", "--set", "seed=" + "9" * 5000], "the value is not valid YAML: an integer of 5000 digits"),
    # ---- damaged run directories
    Case("eval-empty-last", ["eval", "{run}"], "is empty (0 bytes): the save that wrote it was cut short; best.pt is "
         "intact: use --checkpoint best", prepare=lambda tmp: (tmp / "run" / "checkpoints" / "last.pt").write_bytes(b"")),
    Case("eval-garbage-checkpoint", ["eval", "{run}"], "truncated or corrupt",
         prepare=lambda tmp: (tmp / "run" / "checkpoints" / "last.pt").write_bytes(os.urandom(3000))),
    Case("compare-only-damaged", ["compare", "{run}", "{run}", "-o", "cmp.png"], "summary.json is damaged",
         prepare=lambda tmp: (tmp / "run" / "summary.json").write_text("[1, 2]")),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from clftrain.config import validate_config
    from clftrain.runs import fit_run

    return fit_run(validate_config(tiny_config(train={"epochs": 3}, dataset={"val_size": 0.2})),
                   out=tmp_path_factory.mktemp("template") / "run").run_dir


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_matrix_is_big_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, tmp_path, monkeypatch, finished_run):
    from typer.testing import CliRunner

    from clftrain.cli import app

    monkeypatch.chdir(tmp_path)
    shutil.copytree(finished_run, tmp_path / "run")
    (tmp_path / "notes.txt").write_text("the user's own file")
    config = case.config if isinstance(case.config, str) else json.dumps(case.config)  # JSON is YAML
    (tmp_path / "cfg.yaml").write_text(config)
    if case.prepare:
        case.prepare(tmp_path)
    if case.patch:
        case.patch(monkeypatch)
    before = snapshot(tmp_path)

    args = [a.replace("{cfg}", "cfg.yaml").replace("{run}", "run") for a in case.args]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 2, result.output
    assert case.expected in result.output, result.output
    assert result.output.count("error: ") == 1  # one message (after any model table or epoch rows)
    assert "Traceback" not in result.output
    assert not (tmp_path / "pwned").exists()  # nothing from a config or checkpoint was executed
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    new_dirs = {Path(k).parts[0] for k in after if k not in before}
    for name in new_dirs:  # anything new is a run marked failed, never a silent half-run
        assert json.loads((tmp_path / name / "summary.json").read_text())["status"] == "failed"


def test_disk_full_midway_keeps_the_previous_checkpoint_and_reports_it(tmp_path, monkeypatch):
    """The 3rd checkpoint write hits a full disk inside the file write: the 2nd save stays loadable."""
    from typer.testing import CliRunner

    from clftrain.store import rundir
    from clftrain.cli import app

    real_fdopen = os.fdopen
    writes = {"pt": 0}

    class FullDisk(io.BufferedWriter):
        def write(self, data):
            raise OSError(28, "No space left on device")

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            writes["pt"] += 1
            if writes["pt"] >= 3:
                handle.close()
                return FullDisk(io.BytesIO())
        return handle

    monkeypatch.setattr(rundir.os, "fdopen", fdopen)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.yaml").write_text(json.dumps(tiny_config(train={"epochs": 50, "log_every": 10, "checkpoint_seconds": 0})))
    result = CliRunner().invoke(app, ["fit", "cfg.yaml", "--out", "run", "-q"])

    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and "previous checkpoint is intact" in result.output
    saved = rundir.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert saved["epoch"] == 20  # the save at epoch 30 failed; epoch 20's is intact
    assert not list((tmp_path / "run").rglob("*.tmp"))  # the failed temp file was removed
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["error"]
