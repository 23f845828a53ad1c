"""Reading files and text nobody vetted, within limits: configs, `--set`/`--grid` values, a run directory's files.

A path is read only if it is a regular file of bounded size (a FIFO, a device such as /dev/urandom, a
socket or a directory is refused without being opened: reading one could block or never end). YAML is
read safely (no Python tags), with duplicate keys refused, integers of at most MAX_INT_DIGITS digits,
mapping keys that are strings, at most MAX_DEPTH levels of nesting and at most MAX_VALUES values once
aliases are expanded (a "billion laughs" of aliases is refused, not walked). Every refusal is a UserError
saying what the limit is.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from clftrain.errors import UserError

PARQUET_SUFFIXES = {".parquet", ".pq"}  # a Parquet file; a folder of them is read too (data/arrow_tables.py)


def is_parquet(path: Path) -> bool:
    """A Parquet file or a folder (of Parquet files), as dataset `parquet`, `init` and `fit DATA` read them."""
    return path.suffix.lower() in PARQUET_SUFFIXES or path.is_dir()

MAX_CONFIG_BYTES = 1_000_000  # a config is a few hundred bytes; run directories' JSON and YAML files too
MAX_VALUES = 100_000  # values in one document, aliases expanded
MAX_DEPTH = 32  # nesting levels (a config uses 3)
MAX_INT_DIGITS = 30  # an integer literal (every config number fits in 20)
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def regular_file(path: Path, what: str, limit: int | None = None) -> int:
    """The size of `path`, which must be a regular file (of at most `limit` bytes); a UserError naming `what`
    otherwise. Nothing is opened."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except OSError as exc:  # a link to itself, a path too long, permission on a folder
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    kind = next((name for test, name in _KINDS if test(info.st_mode)), None)
    if kind is not None or not stat.S_ISREG(info.st_mode):
        raise UserError(f"{what} {path} is {kind or 'not a regular file'}, not a file clftrain can read; "
                        "give the path of a file")
    if limit is not None and info.st_size > limit:
        raise UserError(f"{what} {path} is {info.st_size:,} bytes; at most {limit:,} are read: is it the right file?")
    return info.st_size


def read_text(path: Path, what: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """A regular file's text (UTF-8, a byte-order mark allowed), bounded in size."""
    regular_file(path, what, limit)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                        "save it as UTF-8") from None


class BoundedLoader(yaml.SafeLoader):
    """Safe YAML loading that refuses duplicate keys (PyYAML silently keeps the last) and long integers."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (dict, list, set)):
                raise yaml.constructor.ConstructorError(None, None, "a key that is a mapping or a list; keys are "
                                                        "names", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        digits = sum(char.isdigit() for char in node.value)
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"an integer of {digits} digits (at most "
                                                    f"{MAX_INT_DIGITS} are read)", node.start_mark)
        return super().construct_yaml_int(node)


BoundedLoader.add_constructor("tag:yaml.org,2002:int", BoundedLoader.construct_yaml_int)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text read within the limits above; a UserError naming `where` for anything wrong with it."""
    try:
        value = yaml.load(text, Loader=BoundedLoader)
    except RecursionError:
        raise UserError(f"{where} is nested too deeply to read (at most {MAX_DEPTH} levels)") from None
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML in {where}: {exc}\nfix the YAML syntax at the position shown") from None
    check_shape(value, where)
    return value


def check_shape(value: Any, where: str) -> None:
    """At most MAX_VALUES values (an alias counts again where it is used), MAX_DEPTH levels, string keys."""
    budget = [MAX_VALUES]

    def walk(node: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise UserError(f"{where} holds more than {MAX_VALUES:,} values once its aliases (*name) are expanded; "
                            "a config needs a few dozen: remove the aliases that repeat others")
        if depth > MAX_DEPTH:
            raise UserError(f"{where} is nested more than {MAX_DEPTH} levels deep; a config needs 3")
        if isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    raise UserError(f"{where}: the key {key!r} is a {type(key).__name__}; keys are names (text)")
                walk(child, depth + 1)
        elif isinstance(node, (list, tuple, set)):
            for child in node:
                walk(child, depth + 1)

    walk(value, 0)
