"""The README's config reference covers every key the config accepts."""

from __future__ import annotations

from pydantic import BaseModel

from clftrain import config as config_module
from conftest import ROOT


def all_keys(model: type[BaseModel]) -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        for candidate in getattr(field.annotation, "__args__", (field.annotation,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys |= all_keys(candidate)
    return keys


def test_every_config_key_is_in_the_reference():
    readme = (ROOT / "README.md").read_text()
    keys = all_keys(config_module.Config)
    for dataset_class in config_module.DATASET_CLASSES:
        keys |= all_keys(dataset_class)
    missing = sorted(k for k in keys if not any(form in readme for form in (f"`{k}`", f"`{k}:`", f"`early_stopping.{k}`")))
    assert missing == []
