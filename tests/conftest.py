"""Shared fixtures: small configs written to tmp_path, and a CLI runner on the real app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")
# Figures drawn in this process: tests look at them (test_plot.py captures each one), and a worker pool spawned
# per in-process fit would cost more than it saves. tests/test_drawing.py covers the workers.
os.environ["CLFTRAIN_PLOT_PROCESSES"] = "0"

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


@pytest.fixture
def write_config(tmp_path):
    """write_config({...}) -> path of a YAML file holding that mapping (or raw text)."""

    def write(content, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny models trained outside `clftrain fit` (whose threads: auto does this itself):
    a second intra-op thread only adds synchronisation, and on a busy 2-core machine it made each run
    5-10x slower (blobs: 0.15 s of training with one thread, 7 s with two). Restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> dict:
    """A config that trains in well under a second, on one CPU thread: `threads: auto` measures 1 against N
    threads on the first steps, and where they round differently two runs would differ (tests compare runs
    bit for bit; the measuring has its own tests)."""
    config = {
        "name": "tiny",
        "threads": 1,
        "dataset": {"name": "circles", "n_samples": 200},
        "model": {"layers": [8]},
        "train": {"epochs": 20, "log_every": 10},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """cli("fit", path, ...) -> click Result, run in tmp_path so runs/ lands there."""
    from typer.testing import CliRunner

    from clftrain.cli import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
