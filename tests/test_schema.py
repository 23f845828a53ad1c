"""`clftrain schema`: the committed clftrain.schema.json is current, editors can find it, registries are enums."""

from __future__ import annotations

import json
import subprocess
import sys

from clftrain.components import ACTIVATIONS
from clftrain.config import DATASET_NAMES
from clftrain.components import LOSSES
from clftrain.components import OPTIMIZERS
from conftest import CONFIGS, ROOT
from trained_runs import invoke

SCHEMA_FILE = ROOT / "clftrain.schema.json"


def test_committed_schema_file_is_what_the_command_prints():
    result = invoke("schema")
    assert result.exit_code == 0
    assert result.stdout == SCHEMA_FILE.read_text(), (
        "clftrain.schema.json is stale: regenerate it with  .venv/bin/clftrain schema > clftrain.schema.json"
    )


def test_schema_describes_the_config():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False  # unknown keys are errors in the editor too
    assert set(schema["properties"]["dataset"]["discriminator"]["mapping"]) == set(DATASET_NAMES)
    defs = schema["$defs"]
    assert defs["ModelConfig"]["properties"]["activation"]["enum"] == ACTIVATIONS.names()
    assert defs["TrainConfig"]["properties"]["loss"]["enum"] == ["auto", *LOSSES.names()]
    assert defs["TrainConfig"]["properties"]["optimizer"]["enum"] == OPTIMIZERS.names()
    assert defs["TrainConfig"]["properties"]["lr"]["exclusiveMinimum"] == 0


def test_every_example_config_points_its_editor_at_the_schema():
    for config in CONFIGS.glob("*.yaml"):
        first_line = config.read_text().splitlines()[0]
        assert first_line == "# yaml-language-server: $schema=../clftrain.schema.json", config.name
        assert (config.parent / "../clftrain.schema.json").resolve() == SCHEMA_FILE


def test_schema_and_validate_do_not_import_torch(write_config):
    config = write_config({"dataset": {"name": "moons"}, "train": {"lr": -1, "epochs": 0}})
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom clftrain.cli import app\n"
        "assert CliRunner().invoke(app, ['schema']).exit_code == 0\n"
        f"assert CliRunner().invoke(app, ['validate', r'{config}']).exit_code == 2\n"
        "print(' '.join(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_validate_lists_every_error_and_exits_2(write_config):
    result = invoke("validate", write_config({"dataset": {"name": "moons"}, "train": {"lr": -1, "epochs": 0}}))
    assert result.exit_code == 2
    assert "train.lr = -1" in result.output and "train.epochs = 0" in result.output
