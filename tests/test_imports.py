"""`clftrain --help` and `clftrain validate` must not pay for torch, sklearn or matplotlib."""

from __future__ import annotations

import subprocess
import sys

from conftest import CONFIGS

HEAVY = ("torch", "sklearn", "matplotlib")


def modules_loaded_by(code: str) -> set[str]:
    probe = code + "\nimport sys; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_validate_does_not_import_heavy_libraries():
    code = (
        "from typer.testing import CliRunner\nfrom clftrain.cli import app\n"
        f"r = CliRunner().invoke(app, ['validate', r'{CONFIGS / 'circles.yaml'}'])\nassert r.exit_code == 0, r.output"
    )
    loaded = modules_loaded_by(code)
    assert not [m for m in HEAVY if m in loaded]


def test_help_does_not_import_heavy_libraries():
    code = "from typer.testing import CliRunner\nfrom clftrain.cli import app\nCliRunner().invoke(app, ['--help'])"
    loaded = modules_loaded_by(code)
    assert not [m for m in HEAVY if m in loaded]
