"""`clftrain report PATH... [-o FILE]`: one self-contained HTML page of a run, of a sweep, or of several runs.

- a run directory: inference/report.py gathers it (the model loaded back, its test split scored and drawn);
- a sweep directory (sweep.csv, sweep.json: runs/sweep.py): the grid, the ranked runs as a sortable table,
  the best runs' validation curves overlaid and the best run's decision boundary, from the files alone;
- several run directories: their metrics side by side (sortable), where their configs differ, their curves
  overlaid and each one's decision boundary (its plots/decision_boundary.png), from the files alone.

The page goes to RUN_DIR/report.html, SWEEP_DIR/report.html, or ./report.html for several runs, unless -o
names a file. Only a report is ever replaced: a default path holding anything else is refused, -o may
replace the file it names, but never a run's or a sweep's own files. Written atomically.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from clftrain import __version__
from clftrain.errors import UserError
from clftrain.inference.report import REPORT, report_of_run
from clftrain.readers import read_text
from clftrain.runs.sweep import SWEEP_CSV, SWEEP_JSON
from clftrain.store import RunRecord, check_comparable, labels, rundir

BEST_RUNS = 5  # a sweep's runs whose curves the page overlays
TEXT_COLUMNS = ("run", "status", "seeds", "dataset", "model", "epochs", "best val epoch")


def is_sweep(path: Path) -> bool:
    return path.is_dir() and (path / SWEEP_CSV).is_file()


def write_report(paths: list[Path], out: Path | None = None, checkpoint: str = "last", device: str | None = None,
                 seed: int | None = None, ensemble: bool = False, drawer=None) -> tuple[Path, list[str]]:
    """Write the page of `paths` (one run, one sweep, or several runs); (where it went, notes)."""
    from clftrain.views.drawing import Drawer

    drawer = drawer or Drawer()
    if not paths:
        raise UserError("report needs a run directory, a sweep directory, or several run directories")
    for path in paths:
        _check_input(path, alone=len(paths) == 1)
    if len(paths) == 1 and is_sweep(paths[0]):
        target = report_target(out, paths[0] / REPORT)
        html, notes = sweep_report(paths[0], drawer)
    elif len(paths) == 1:
        target = report_target(out, paths[0] / REPORT)
        html, notes = report_of_run(paths[0], checkpoint, device, seed, ensemble, drawer)
    else:
        if checkpoint != rundir.LAST or device or seed is not None or ensemble:
            raise UserError("--checkpoint, --device, --seed and --ensemble apply to the report of one run; a report "
                            "of several reads their files only")
        target = report_target(out, Path(REPORT))
        html, notes = compare_report(paths, target.parent, drawer)
    try:
        rundir.atomic_write_text(target, html)
    except OSError as exc:
        raise UserError(f"cannot write the report to {target}: {exc.strerror or exc}; choose a writable location "
                        "with -o FILE") from None
    return target, notes


def _check_input(path: Path, alone: bool) -> None:
    if not path.exists():
        raise UserError(f"not found: {path}; give a run directory (clftrain fit writes one) or a sweep directory")
    if not path.is_dir():
        raise UserError(f"{path} is a file; give a run directory or a sweep directory")
    if is_sweep(path):
        if not alone:
            raise UserError(f"{path} is a sweep directory: report it alone (clftrain report {path}), or compare "
                            "run directories")
        return
    if not (path / rundir.CONFIG).is_file():
        raise UserError(f"{path} is not a clftrain run directory (no {rundir.CONFIG}) nor a sweep directory (no "
                        f"{SWEEP_CSV})")


def is_report(path: Path) -> bool:
    """Whether a file is a page this command wrote (its generator meta tag), which it may replace."""
    from clftrain.views.report import GENERATOR

    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


def report_target(out: Path | None, default: Path) -> Path:
    """Where the page goes: `out` if given (it may replace that file, but not a file of a run or a sweep
    other than a report), else `default` (which may replace only an earlier report)."""
    target = default if out is None else out
    if target.is_dir():
        raise UserError(f"-o {target} is a directory; give a file path, e.g. -o {target / REPORT}")
    if out is None:
        if target.exists() and not is_report(target):
            raise UserError(f"{target} exists and is not a clftrain report; choose where the report goes with -o FILE")
        return target
    rundir.check_output(out, force=True)  # never inside a run's checkpoints
    folder = out.resolve().parent
    owned = (folder / rundir.CONFIG).is_file() or (folder / SWEEP_CSV).is_file()
    if out.exists() and owned and not is_report(out):
        raise UserError(f"-o {out} is a file of the {'run' if (folder / rundir.CONFIG).is_file() else 'sweep'} "
                        f"directory {folder}; write the report to another file")
    return out


# ---------------------------------------------------------------------- a sweep
def _number(text: str):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text if text != "" else None
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _read_sweep(sweep_dir: Path) -> tuple[list[dict], dict]:
    """sweep.csv's rows, best first (numbers as numbers, but the grid's values as written), and sweep.json."""
    plan = rundir.read_json(sweep_dir / SWEEP_JSON, SWEEP_JSON) if (sweep_dir / SWEEP_JSON).is_file() else {}
    as_written = {"run", "seeds", *(plan.get("grid") or {})}
    try:
        lines = read_text(sweep_dir / SWEEP_CSV, SWEEP_CSV).splitlines()
        rows = [{key: value if key in as_written else _number(value) for key, value in row.items()}
                for row in csv.DictReader(lines)]
    except (csv.Error, ValueError) as exc:
        raise UserError(f"{sweep_dir / SWEEP_CSV} is damaged: {exc}") from None
    if not rows:
        raise UserError(f"{sweep_dir / SWEEP_CSV} has no runs yet: nothing to report")
    return sorted(rows, key=lambda r: r.get("rank") if isinstance(r.get("rank"), int) else 10**9), plan


def sweep_report(sweep_dir: Path, drawer) -> tuple[str, list[str]]:
    from clftrain.views.report import sweep_page
    from clftrain.views.report_figures import ReportFigure

    rows, plan = _read_sweep(sweep_dir)
    grid = {key: [str(v) for v in values] for key, values in (plan.get("grid") or {}).items()}
    # runs/sweep.py ranks by the task's metric on the validation split: val_acc_mean, or val_mae_mean
    metric = "mae" if any("val_mae_mean" in row for row in rows) else "acc"
    ranked_by = f"val_{metric}_mean"
    metric_label = {"acc": "accuracy", "mae": "mean absolute error"}.get(metric, metric)
    notes: list[str] = []
    for row in rows:
        if (sweep_dir / str(row.get("run")) / REPORT).is_file():
            row["report"] = f"{row['run']}/{REPORT}"
    wanted = ["rank", "run", *grid, "status", ranked_by, ranked_by.replace("_mean", "_std"), "val_loss_mean",
              f"test_{metric}_mean", "epochs_run", "seconds"]  # the rest of sweep.csv is in the page's JSON
    columns = [c for c in dict.fromkeys(wanted) if any(c in row for row in rows)]
    best = []
    for row in rows[:BEST_RUNS]:
        try:
            record = RunRecord.read(sweep_dir / str(row["run"]))
        except UserError as exc:
            notes.append(f"{row['run']} left out of the curves: {exc}")
            continue
        if record.rows:
            best.append({"label": f"#{row['rank']} {row['run']}", "epochs": [r["epoch"] for r in record.rows],
                         "columns": {c: [r.get(c) for r in record.rows] for c in ("val_loss", f"val_{metric}")}})
    images = {}
    jobs = [ReportFigure("overlaid_curves", dict(runs=best, panels=[("val_loss", "validation loss"), (
        f"val_{metric}", f"validation {metric_label}")], title=f"{sweep_dir.name}: the {len(best)} best runs"))] \
        if best else []
    boundary = sweep_dir / str(rows[0].get("run")) / rundir.PLOTS / "decision_boundary.png"
    if boundary.is_file():
        images["best_boundary"] = boundary.read_bytes()
    for job, value, error in drawer.draw(jobs):
        if error is not None:
            notes.append(f"the best runs' curves not drawn: {error}")
        else:
            images[job.figure] = value
    top = rows[0]
    seconds = sum(r["seconds"] for r in rows if isinstance(r.get("seconds"), (int, float)))
    from clftrain.views.report import number

    content = {
        "name": sweep_dir.name, "sweep_dir": str(sweep_dir), "ranked_by": ranked_by, "rows": rows,
        "columns": columns, "grid": grid, "config": plan.get("config", "?"), "seeds": str(top.get("seeds", "?")),
        "text_columns": (*TEXT_COLUMNS, *grid), "best_run": str(top.get("run")),
        "curves_caption": f"Validation loss and {metric_label} per epoch of the {len(best)} best runs by "
                          f"{ranked_by} (runs with seeds: the mean over their seeds).",
        "cards": [("runs", f"{len(rows)}", f"{len(grid)} grid keys"),
                  ("best run", str(top.get("run")), f"{ranked_by} {number(ranked_by.replace('_mean', ''), top.get(ranked_by), 4)[0]}"),
                  ("its test score", number(f"test_{metric}", top.get(f"test_{metric}_mean"), 4)[0],
                   "reported only: the test split decides nothing"),
                  ("training time", f"{seconds:.1f} s", "all runs together")],
        "notes": notes, "version": __version__, "made": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    return sweep_page(content, images), notes


# ---------------------------------------------------------------------- several runs
def _flat(mapping: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare_report(paths: list[Path], out_dir: Path, drawer) -> tuple[str, list[str]]:
    from clftrain.views.report import compare_page
    from clftrain.views.report_figures import ReportFigure

    notes: list[str] = []
    records = []
    for path in paths:
        try:
            records.append(RunRecord.read(path))
        except UserError as exc:  # one damaged run does not stop the others being compared
            notes.append(f"left out: {exc}")
    metric = check_comparable(records)
    metric_label = {"acc": "accuracy", "mae": "mean absolute error"}[metric]
    names = labels(records)
    rows = []
    for name, record in zip(names, records):
        best = record.best(f"val_{metric}")
        row = {"run": name, "dataset": record.dataset, "model": record.model, "epochs": record.epochs,
               "status": record.status, "parameters": (record.summary.get("model") or {}).get("parameters")}
        for column in (f"train_{metric}", f"val_{metric}", f"test_{metric}", "test_loss"):
            if record.final(column) is not None:
                row[column] = record.final(column)
        if best is not None:
            row[f"best_val_{metric}"], row["best val epoch"] = best[0], f"{best[1]}"
        if isinstance(record.summary.get("seconds"), (int, float)):
            row["seconds"] = record.summary["seconds"]
        report = record.path / REPORT
        if report.is_file():
            row["report"] = Path(os.path.relpath(report.resolve(), out_dir.resolve())).as_posix()
        rows.append(row)
    columns = [c for c in ["run", "dataset", "model", "parameters", "epochs", "status", f"train_{metric}",
                           f"val_{metric}", f"test_{metric}", "test_loss", f"best_val_{metric}", "best val epoch",
                           "seconds"] if any(c in row for row in rows)]
    configs = [_flat({k: v for k, v in record.config.items() if k != "name"}) for record in records]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    differences = {key: [str(config.get(key, "-")) for config in configs] for key in keys
                   if len({repr(config.get(key)) for config in configs}) > 1}
    panels = [("test_loss", "test loss"), (f"test_{metric}", f"test {metric_label}")]
    if any(f"val_{metric}" in (record.rows[0] if record.rows else {}) for record in records):
        panels.append((f"val_{metric}", f"validation {metric_label}"))
    runs = [{"label": name, "epochs": [r["epoch"] for r in record.rows],
             "columns": {c: [r.get(c) for r in record.rows] for c, _ in panels if c in record.rows[0]}}
            for name, record in zip(names, records)]
    images = {}
    for name, record in zip(names, records):
        boundary = record.path / rundir.PLOTS / "decision_boundary.png"
        if boundary.is_file():
            images[f"boundary:{name}"] = boundary.read_bytes()
    job = ReportFigure("overlaid_curves", dict(runs=runs, panels=panels, title=" vs ".join(names)))
    for _, value, error in drawer.draw([job]):
        if error is not None:
            notes.append(f"the curves not drawn: {error}")
        else:
            images["overlaid_curves"] = value
    content = {"rows": rows, "columns": columns, "differences": differences, "text_columns": TEXT_COLUMNS,
               "curves_caption": "Per epoch, one colour per run (runs with seeds: the mean over their seeds); the "
                                 "test split is only reported.",
               "notes": notes, "version": __version__, "made": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    return compare_page(content, images), notes
