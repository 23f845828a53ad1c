"""Run directories: create them without overwriting, write files atomically, save/load checkpoints.

Every file is written to a temporary file in the same directory, flushed, fsynced
and renamed into place, so a crash at any moment leaves either the old file or
the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from clftrain.errors import UserError
from clftrain.readers import read_text, regular_file

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
BEST = "best"
LAST = "last"
PLOTS = "plots"
CHECKPOINT_FORMAT = "clftrain-checkpoint/1"
# What every checkpoint holds, and of which kind: checked on load, so that a damaged one is named, not a KeyError.
CHECKPOINT_KEYS = {"model": dict, "epoch": int, "config": dict, "task": str, "feature_names": list, "class_names": list}
MAX_METRICS_BYTES = 1 << 30  # a million evaluated epochs of 32 replicas is about 2 GiB less than this


def create_run_dir(name: str, out: Path | None = None, root: Path = Path("runs")) -> Path:
    """Make a new, empty run directory; never reuse an existing one.

    Default: root/<YYYYmmdd-HHMMSS>-<name>, with -2, -3, ... appended when two runs
    start in the same second (os.mkdir is atomic, so concurrent runs never share).
    """
    if out is not None:
        _make_dir(out, exists_message=f"output directory {out} already exists; "
                  "choose a new --out path (clftrain never overwrites a run)")
        return out
    stamp = time.strftime("%Y%m%d-%H%M%S")
    _make_dir(root, parents_only=True)
    for attempt in range(1, 1000):
        path = root / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot create run directory {path}: {exc.strerror}") from None
        return path
    raise UserError(f"too many runs named '{name}' started at {stamp} in {root}")


def _make_dir(path: Path, exists_message: str = "", parents_only: bool = False) -> None:
    for parent in [path, *path.parents] if parents_only else path.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"cannot create directory {path}: {parent} is a file, not a directory; choose another path")
    try:
        if parents_only:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path)
    except FileExistsError:
        raise UserError(exists_message or f"{path} exists") from None
    except OSError as exc:
        raise UserError(f"cannot create directory {path}: {exc.strerror}; choose a writable location") from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, what: str = "file") -> Any:
    """A run directory's JSON file (a mapping), bounded in size; a UserError naming it when damaged."""
    try:
        value = json.loads(read_text(path, what))
    except ValueError as exc:
        raise UserError(f"{path} is damaged (not JSON: {exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path} is damaged (a {type(value).__name__}, not a mapping of fields)")
    return value


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_metrics(path: Path) -> list[dict[str, float]]:
    """metrics.csv's rows as numbers; a UserError naming the file and line when it is damaged (cut short,
    overwritten, not a table of numbers). A last line cut in half by a kill is left out."""
    text = read_text(path, METRICS, MAX_METRICS_BYTES)
    lines = text.splitlines()
    if text and not text.endswith("\n") and len(lines) > 1:
        lines = lines[:-1]  # a row being appended when the process died
    try:
        reader = csv.DictReader(lines)
        columns = reader.fieldnames or []
        if "epoch" not in columns:
            raise ValueError("no 'epoch' column in its header")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values():
                raise ValueError(f"line {line} has {len(row) - (None in row)} values for {len(columns)} columns")
            rows.append({key: float(value) for key, value in row.items()})
    except (ValueError, csv.Error) as exc:
        raise UserError(f"{path} is damaged: {exc}") from None
    return rows


def config_of(run_dir: Path) -> Path:
    """A run directory's config.yaml; a clear error when the directory is missing or not a run."""
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    config_file = run_dir / CONFIG
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a clftrain run directory (no {CONFIG})")
    return config_file


def check_output(path: Path, force: bool) -> None:
    """Where a command writes a file the user named (-o): never into a run directory's checkpoints, and never
    over an existing file unless asked (--force)."""
    resolved = path.resolve()
    for folder in resolved.parents:
        if folder.name == CHECKPOINTS and (folder.parent / CONFIG).is_file():
            raise UserError(f"-o {path} is inside the run directory {folder.parent}'s checkpoints; write it elsewhere")
    if resolved.is_dir():
        raise UserError(f"-o {path} is a directory; give a file path")
    if resolved.exists() and not force:
        raise UserError(f"-o {path} already exists; choose another path, or pass --force to overwrite it")


def checkpoint_path(run_dir: Path, which: str) -> Path:
    return run_dir / CHECKPOINTS / f"{which}.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Checkpoints hold only tensors, numbers, strings, lists and dicts (loadable with weights_only)."""
    import torch

    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load safely: weights_only=True refuses pickled objects, so loading never runs code."""
    import pickle

    import torch

    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    if regular_file(path, "checkpoint") == 0:
        raise UserError(f"checkpoint {path} is empty (0 bytes): the save that wrote it was cut short")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only names the first global it refused ("GLOBAL posix.system"): a pickled object.
        refused = re.search(r"(?:unsupported|Unsupported global:) (GLOBAL [\w.]+)", str(exc))
        if refused:
            raise UserError(
                f"refusing to load checkpoint {path}: it holds a pickled object ({refused.group(1)}), which could "
                "run code; nothing was executed. Only load checkpoints written by clftrain"
            ) from None
        raise UserError(f"checkpoint {path} is truncated or corrupt (not a readable torch file)") from None
    except Exception as exc:  # noqa: BLE001 - torch.load on a damaged file raises whatever its bytes lead to
        reason = (str(exc).split(". ")[0].splitlines() or [type(exc).__name__])[0]
        raise UserError(f"checkpoint {path} is truncated or corrupt: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a clftrain checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    missing = [key for key, kind in CHECKPOINT_KEYS.items() if not isinstance(payload.get(key), kind)]
    if missing:
        raise UserError(f"checkpoint {path} is damaged: {', '.join(map(repr, missing))} missing or of the wrong kind")
    return payload
