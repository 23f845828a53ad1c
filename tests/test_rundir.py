"""Run directories and atomic files."""

from __future__ import annotations

import pytest

from clftrain.store import rundir
from clftrain.errors import UserError


def test_runs_started_in_the_same_second_get_numbered_directories(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt: "20260101-120000")
    made = [rundir.create_run_dir("exp", root=tmp_path) for _ in range(3)]
    assert [p.name for p in made] == ["20260101-120000-exp", "20260101-120000-exp-2", "20260101-120000-exp-3"]


def test_out_directory_is_created_with_parents_and_never_reused(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    assert rundir.create_run_dir("exp", out=out) == out and out.is_dir()
    with pytest.raises(UserError, match="already exists"):
        rundir.create_run_dir("exp", out=out)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "summary.json"
    rundir.write_json(path, {"status": "running"})
    rundir.write_json(path, {"status": "completed"})
    assert rundir.read_json(path) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    rundir.atomic_write_text(path, "old")
    monkeypatch.setattr(rundir.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        rundir.atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_metrics_round_trip(tmp_path):
    rows = [{"epoch": 1, "train_loss": 0.5, "test_acc": 0.75}, {"epoch": 2, "train_loss": 0.25, "test_acc": 1.0}]
    rundir.write_metrics(tmp_path / "metrics.csv", rows)
    assert rundir.read_metrics(tmp_path / "metrics.csv") == rows


def test_a_file_that_is_not_a_clftrain_checkpoint_is_refused(tmp_path):
    import torch

    torch.save({"state_dict": {}}, tmp_path / "model.pt")
    with pytest.raises(UserError, match="is not a clftrain checkpoint"):
        rundir.load_checkpoint(tmp_path / "model.pt")
