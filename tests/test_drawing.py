"""Figures drawn by warm worker processes (views/drawing.py), and drawn here when a worker cannot."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from clftrain.views.drawing import Drawer, FigureJob
from conftest import CONFIGS

ROWS = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.1 / e, "train_acc": 0.5, "test_acc": 0.5} for e in (1, 2, 3)]


def curves(path):
    return FigureJob("learning_curves", path, dict(rows=ROWS, metric="acc", title="t", mark_epoch=3))


def test_a_fit_draws_its_figures_in_a_worker_and_never_imports_matplotlib_itself(tmp_path):
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom clftrain.cli import app\n"
            f"r = CliRunner().invoke(app, ['fit', r'{CONFIGS / 'circles.yaml'}', '--set', 'train.epochs=50', "
            f"'--out', r'{tmp_path / 'run'}', '-q'])\nassert r.exit_code == 0, r.output\n"
            "print('matplotlib' in sys.modules)")
    env = {**__import__("os").environ, "CLFTRAIN_PLOT_PROCESSES": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "False"
    for name in ("decision_boundary", "confusion_matrix", "curves"):
        assert (tmp_path / "run" / "plots" / f"{name}.png").stat().st_size > 10_000


def test_a_worker_that_died_leaves_its_figures_to_this_process(tmp_path):
    drawer = Drawer(1)
    try:
        worker = drawer.started[0]
        worker.kill()
        worker.wait()
        (job, path, error), = drawer.draw([curves(tmp_path / "a.png")])
        assert error is None and path.stat().st_size > 10_000
    finally:
        drawer.close()


def test_more_figures_than_workers_when_every_worker_died_are_drawn_here_at_once(tmp_path):
    """A signal to the process group (torchrun's SIGTERM) ends the workers too: no figure waits for them."""
    import time

    drawer = Drawer(2)
    try:
        for worker in drawer.started:
            worker.kill()
            worker.wait()
        started = time.monotonic()
        results = drawer.draw([curves(tmp_path / f"{name}.png") for name in "abc"])
        assert [error for _, _, error in results] == [None] * 3 and all(path.is_file() for _, path, _ in results)
        assert time.monotonic() - started < 20  # not WORKER_TIMEOUT_S (120 s) for the third
    finally:
        drawer.close()


def test_a_figure_that_fails_in_a_worker_comes_back_as_its_error(tmp_path):
    drawer = Drawer(1)
    try:
        bad = FigureJob("confusion_matrix", tmp_path / "b.png", dict(counts=np.zeros((2, 2)), class_names=["a"],
                                                                       title="t"))
        results = drawer.draw([curves(tmp_path / "a.png"), bad])
        assert results[0][2] is None and results[0][1].is_file()
        assert results[1][1] is None and "ValueError: Unknown format code" in str(results[1][2])  # float counts
    finally:
        drawer.close()
