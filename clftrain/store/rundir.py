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

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
BEST = "best"
LAST = "last"
PLOTS = "plots"
CHECKPOINT_FORMAT = "clftrain-checkpoint/1"


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


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def read_metrics(path: Path) -> list[dict[str, float]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def config_of(run_dir: Path) -> Path:
    """A run directory's config.yaml; a clear error when the directory is missing or not a run."""
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    config_file = run_dir / CONFIG
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a clftrain run directory (no {CONFIG})")
    return config_file


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
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).split(". ")[0].splitlines()[0]
        raise UserError(f"checkpoint {path} is truncated or corrupt: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a clftrain checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return payload
