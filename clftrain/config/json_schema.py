"""The config's JSON Schema, for editors: completion, hover docs and errors while typing a YAML config.

Generated from the pydantic models, so it cannot disagree with `clftrain validate`
about types, ranges and keys. The registries (activations, losses, optimizers)
are plain strings to pydantic; their names are added as enums here so that an
editor can offer them. `clftrain.schema.json` at the repository root is this
output, committed (tests/test_schema.py keeps it current).
"""

from __future__ import annotations

import json

from clftrain.components.activations import ACTIVATIONS
from clftrain.components.inits import INITS
from clftrain.components.losses import LOSSES
from clftrain.components.optimizers import OPTIMIZERS
from clftrain.config.schema import Config

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def config_schema() -> dict:
    schema = {"$schema": DRAFT, **Config.model_json_schema()}
    schema["title"] = "clftrain experiment config"
    defs = schema["$defs"]
    defs["ModelConfig"]["properties"]["activation"]["enum"] = ACTIVATIONS.names()
    defs["ModelConfig"]["properties"]["init"]["enum"] = INITS.names()
    defs["TrainConfig"]["properties"]["loss"]["enum"] = ["auto", *LOSSES.names()]
    defs["TrainConfig"]["properties"]["optimizer"]["enum"] = OPTIMIZERS.names()
    return schema


def schema_json() -> str:
    return json.dumps(config_schema(), indent=2) + "\n"
