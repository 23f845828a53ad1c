"""Train small runs once per test module, through the real CLI, for the commands that read run directories."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from typer.testing import CliRunner

from clftrain.cli import app

RUNNER = CliRunner()


def invoke(*args):
    return RUNNER.invoke(app, [str(a) for a in args])


def fit_run(root: Path, config: dict, name: str | None = None) -> Path:
    """`clftrain fit CONFIG --out root/name -q`; returns the run directory."""
    name = name or config["name"]
    config_file = root / f"{config['name']}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = invoke("fit", config_file, "--out", root / name, "-q")
    assert result.exit_code == 0, result.output
    return root / name


def metrics_rows(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))
