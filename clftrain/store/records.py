"""Run directories read back for listing and comparing: config.yaml, summary.json and metrics.csv only.

No torch, no model: `clftrain runs` must stay fast, and a run whose config no
longer validates (written by an older clftrain) can still be listed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clftrain.components.tasks import TASKS, metric_higher_is_better
from clftrain.errors import UserError
from clftrain.readers import parse_yaml, read_text
from clftrain.store import rundir

_STAMP = re.compile(r"^(\d{8}-\d{6})-")  # runs/<YYYYmmdd-HHMMSS>-<name>


@dataclass
class RunRecord:
    path: Path
    config: dict
    summary: dict  # {} when the run wrote none (killed before its first save)
    rows: list[dict[str, float]]  # metrics.csv

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """A run directory's config, summary and rows, each read within bounds; a UserError naming the damaged
        file otherwise (`runs` lists such a run as unreadable, `compare` leaves it out)."""
        config_file = rundir.config_of(path)
        config = parse_yaml(read_text(config_file, "config file"), str(config_file)) or {}
        summary_file, metrics_file = path / rundir.SUMMARY, path / rundir.METRICS
        summary = rundir.read_json(summary_file, "summary") if summary_file.exists() else {}
        rows = rundir.read_metrics(metrics_file) if metrics_file.exists() else []
        return cls(path, config if isinstance(config, dict) else {}, summary, _mean_over_seeds(rows))

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def started(self) -> datetime:
        """From the directory's time stamp, else when config.yaml (the first file of a run) was written."""
        match = _STAMP.match(self.path.name)
        if match:
            return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
        return datetime.fromtimestamp((self.path / rundir.CONFIG).stat().st_mtime)

    @property
    def metric(self) -> str:
        """'acc' or 'mae': the task's score column in metrics.csv."""
        task = self.config.get("task")
        return TASKS.get(task).metric if task in TASKS else "acc"

    @property
    def status(self) -> str:
        return self.summary.get("status") or "incomplete"

    @property
    def dataset(self) -> str:
        return str((self.config.get("dataset") or {}).get("name", "?"))

    @property
    def model(self) -> str:
        model = self.config.get("model") or {}
        return f"{model.get('layers', '?')} {model.get('activation', '')}".strip()

    @property
    def epochs(self) -> str:
        planned = (self.config.get("train") or {}).get("epochs")
        ran = self.summary.get("epochs_run", int(self.rows[-1]["epoch"]) if self.rows else 0)
        return f"{ran}" if planned in (None, ran) else f"{ran}/{planned}"

    def final(self, column: str) -> float | None:
        return self.rows[-1].get(column) if self.rows else None

    def best(self, column: str) -> tuple[float, int] | None:
        """(value, epoch) of the best value a validation column reached (highest accuracy, lowest loss or error);
        None for a test column or a run without a validation split: the test split decides nothing, not even
        which of its own epochs looks best."""
        rows = [row for row in self.rows if column in row]
        if not rows or not column.startswith("val_"):
            return None
        pick = max if metric_higher_is_better(column) else min
        row = pick(rows, key=lambda r: r[column])
        return row[column], int(row["epoch"])


def _mean_over_seeds(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """A run trained with seeds has one metrics.csv row per seed and epoch: list and compare it by their mean."""
    if not rows or "seed" not in rows[0]:
        return rows
    by_epoch: dict[float, list[dict[str, float]]] = {}
    for row in rows:
        by_epoch.setdefault(row["epoch"], []).append(row)
    return [{k: sum(r[k] for r in group) / len(group) for k in group[0] if k != "seed"} for group in by_epoch.values()]


def find_runs(root: Path) -> list[RunRecord]:
    """Every run directory under root (at any depth), oldest first."""
    if not root.is_dir():
        raise UserError(f"no runs directory {root}: train one with clftrain fit CONFIG, or pass the ROOT "
                        "that holds your run directories")
    found = []
    for directory, subdirs, files in os.walk(root):
        if rundir.CONFIG in files and (rundir.SUMMARY in files or rundir.CHECKPOINTS in subdirs):
            found.append(read_or_mark(Path(directory)))
            subdirs.clear()  # a run's own folders hold no runs
        else:
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return sorted(found, key=lambda run: (run.started, run.path.name))


def read_or_mark(path: Path) -> RunRecord:
    """One damaged run (a hand-edited summary.json, say) is listed as unreadable rather than hiding the others;
    its summary's `error` says what is damaged."""
    try:
        return RunRecord.read(path)
    except UserError as exc:
        return RunRecord(path, {}, {"status": "unreadable", "error": str(exc)}, [])


def check_comparable(runs: list[RunRecord]) -> str:
    """The metric every run shares ('acc' or 'mae'); accuracy and error cannot share an axis."""
    if len(runs) < 2:
        raise UserError("compare needs at least two run directories, e.g. clftrain compare runs/A runs/B")
    kinds = {run.metric for run in runs}
    if len(kinds) > 1:
        regression = [str(run.path) for run in runs if run.metric == "mae"]
        raise UserError(f"cannot compare classification runs with regression runs ({', '.join(regression)}); "
                        "compare runs of one kind")
    for run in runs:
        if not run.rows:
            raise UserError(f"{run.path} has no {rundir.METRICS} yet: nothing to compare")
    return kinds.pop()


def labels(runs: list[RunRecord]) -> list[str]:
    """Short unique names for legends and columns: the config name, or the directory when names repeat."""
    names = [run.name for run in runs]
    return [run.name if names.count(run.name) == 1 else run.path.name for run in runs]
