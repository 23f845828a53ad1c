"""The experiment config: its pydantic models (schema.py), reading and validating it (load.py), and its
JSON Schema for editors (json_schema.py). Nothing here imports torch."""

from clftrain.faces import lazy_face

EXPORTS = {  # public name -> the module of this package that defines it
    **dict.fromkeys(["Config", "DatasetConfig", "ModelConfig", "TrainConfig", "SchedulerConfig",
                     "EarlyStoppingConfig", "CsvConfig", "DATASET_NAMES", "DATASET_CLASSES", "auto_eval_every",
                     "MAX_FOLDS", "MAX_SEEDS", "SEED_MAX"],
                    "schema"),
    **dict.fromkeys(["load_config", "validate_config", "read_config_mapping", "read_yaml", "parse_value",
                     "parse_overrides", "parse_seeds", "apply_overrides", "config_to_yaml", "InvalidConfig",
                     "DOTTED_KEY"], "load"),
    "config_schema": "json_schema", "schema_json": "json_schema",
}
__getattr__, __dir__ = lazy_face(__name__, EXPORTS)
