"""Shared fixtures: small configs written to tmp_path, and a CLI runner on the real app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")

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


def tiny_config(**overrides) -> dict:
    """A config that trains in well under a second."""
    config = {
        "name": "tiny",
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
