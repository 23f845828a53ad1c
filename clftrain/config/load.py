"""Reading a config: YAML files, `--set` overrides, `--seeds` ranges, and validation errors in the user's terms.

Every problem becomes one UserError that names the file, the key (and where it came from: the file,
`--set KEY` or a sweep's `--grid KEY`), the value and how to fix it.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from clftrain.config.schema import DATASET_CLASSES, DATASET_NAMES, MAX_SEEDS, SEED_MAX, Config
from clftrain.errors import UserError, did_you_mean
from clftrain.readers import parse_yaml, read_text

# A dotted config key, as `--set` and `--grid` take it: train.lr, model.layers, seed.
DOTTED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def read_yaml(path: Path) -> Any:
    """A config file's YAML, read within readers.py's limits (a regular file, bounded size and shape)."""
    return parse_yaml(read_text(path, "config file"), str(path))


def parse_value(text: str, where: str) -> Any:
    """A value as YAML reads it (`0.1`, `[8, 8]`, `relu`, `null`), within the same limits as a config file;
    a UserError that starts with `where` for anything wrong with it."""
    try:
        return parse_yaml(text, where)
    except UserError as exc:
        reason = str(exc).removeprefix(f"invalid YAML in {where}: ").removeprefix(f"{where} ")
        raise UserError(f"{where}: the value is not valid YAML: {reason}") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["train.lr=0.01", "model.layers=[8,8]"]` -> {"train.lr": 0.01, "model.layers": [8, 8]}."""
    overrides = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not DOTTED_KEY.fullmatch(key):
            raise UserError(f"--set '{item}': expected KEY=VALUE with a dotted key, e.g. --set train.lr=0.01")
        overrides[key] = parse_value(raw, f"--set '{item[:200]}'")
    return overrides


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0-4` -> [0, 1, 2, 3, 4]; also `0,3,7` and `0-2,10-12` (ranges include both ends)."""
    shown = text if len(text) <= 60 else text[:57] + "..."
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d{1,10})\s*(?:-\s*(\d{1,10})\s*)?", part)  # 10 digits: up to SEED_MAX
        if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise UserError(f"--seeds '{shown}': expected seeds and ranges like 0-4, 0,3,7 or 0-2,10-12 "
                            f"(whole numbers from 0 to {SEED_MAX}, each range low-high)")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high > SEED_MAX:
            raise UserError(f"--seeds '{shown}': seed {high} is above {SEED_MAX}, the largest numpy and "
                            "scikit-learn take")
        if len(seeds) + high - low >= MAX_SEEDS:
            raise UserError(f"--seeds '{shown}': more than {MAX_SEEDS} seeds; train fewer replicas at once")
        seeds.extend(range(low, high + 1))
    repeated = sorted(seed for seed, count in Counter(seeds).items() if count > 1)
    if repeated:
        raise UserError(f"--seeds '{shown}': seed(s) {', '.join(map(str, repeated))} listed more than once")
    return seeds


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set each dotted key in a copy of the raw config; unknown keys are caught by validation."""
    data = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                parent = ".".join(parts[: depth + 1])
                raise UserError(f"--set {dotted}: '{parent}' is a value ({child!r}), not a section with keys")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None, check_files: bool = True) -> Config:
    """Read, override and validate a config file; every problem becomes one UserError.

    check_files=False: a CSV dataset's file need not exist (a run's config.yaml, read by predict or
    eval --data, which need only the checkpoint)."""
    path = Path(path)
    raw = read_config_mapping(path)
    parsed = parse_overrides(overrides or [])
    return validate_config(apply_overrides(raw, parsed), source=str(path), set_keys=set(parsed), base_dir=path.parent,
                           check_files=check_files)


def read_config_mapping(path: Path) -> dict[str, Any]:
    """A config file's raw mapping, before overrides and validation."""
    raw = read_yaml(path)
    if raw is None:
        raise UserError(f"config file {path} is empty; it needs at least a 'dataset:' section")
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must be a mapping of keys (name:, dataset:, ...), not a {type(raw).__name__}")
    return raw


class InvalidConfig(UserError):
    """A config that fails validation; `lines` holds one message per problem."""

    def __init__(self, source: str, lines: list[str]) -> None:
        super().__init__(f"invalid config {source}:\n" + "\n".join(f"  - {line}" for line in lines))
        self.lines = lines


def validate_config(data: dict[str, Any], source: str = "config", set_keys: set[str] | dict[str, str] = frozenset(),
                    base_dir: Path | None = None, check_files: bool = True, decides: bool = False) -> Config:
    """Validate a raw mapping; relative dataset paths resolve against `base_dir` (the config's folder).

    `set_keys`: the dotted keys that came from the command line, named in their errors as
    `(from --set KEY)`; a mapping gives each key its own origin (a sweep's `--grid KEY=VALUE`).
    `decides`: the run will be chosen among others (a sweep), so `val_size: auto` carves a validation split.
    """
    try:
        return Config.model_validate(data, context={"base_dir": base_dir, "check_files": check_files,
                                                    "decides": decides})
    except ValidationError as exc:
        raise InvalidConfig(source, [_describe(error, data, set_keys) for error in exc.errors()]) from None


# --------------------------------------------------------------------------- error messages
def _describe(error: dict, data: dict, set_keys: set[str] | dict[str, str]) -> str:
    """One pydantic error -> 'field = value: problem; fix' in the user's own terms."""
    loc = _user_loc(error["loc"])
    dotted = ".".join(str(part) for part in loc)
    origin = ""
    given = next((key for key in set_keys if dotted == key or dotted.startswith(f"{key}.")), None)  # or a parent
    if given is not None:
        origin = f" (from {set_keys[given] if isinstance(set_keys, dict) else f'--set {given}'})"
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(error["loc"][:-1], data)
        key = str(loc[-1])
        return f"{dotted}: unknown key{did_you_mean(key, valid)}{origin}; valid keys here: {', '.join(valid)}"
    if kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        return f"{dotted}.name = '{tag}': unknown dataset{did_you_mean(tag, DATASET_NAMES)}; choose one of: {', '.join(DATASET_NAMES)}"
    if kind == "union_tag_not_found":
        return f"{dotted}.name: missing; choose one of: {', '.join(DATASET_NAMES)}"
    if kind == "missing":
        return f"{dotted}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "value_error" and message.startswith(tuple(f"{k}" for k in ("dataset.", "train.", "task", "model."))):
        return message + origin  # cross-field checks already name their fields
    where = f"{dotted} = {error['input']!r}: " if loc else ""
    return f"{where}{message}{origin}"


def _user_loc(loc: tuple) -> tuple:
    # pydantic puts the union tag in the location (dataset.circles.noise); users wrote dataset.noise.
    if len(loc) > 1 and loc[0] == "dataset" and loc[1] in DATASET_NAMES:
        return (loc[0], *loc[2:])
    return loc


def _valid_keys(parent_loc: tuple, data: dict) -> list[str]:
    model: type[BaseModel] = Config
    for part in parent_loc:
        if part in DATASET_NAMES:
            model = DATASET_CLASSES[DATASET_NAMES.index(part)]
            continue
        annotation = model.model_fields[part].annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), model)
    return list(model.model_fields)


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
