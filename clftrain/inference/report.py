"""A trained run's report: everything report.html shows, gathered from a TrainedRun and its run directory.

The facts (config.yaml, summary.json, the model's layers and parameters, the splits and their classes, the
final and best metrics per split), the test split scored by the report's weights (a per-class table; ROC,
precision-recall and reliability curves, one-vs-rest for many classes and per label for multi-label) and the
figures: the run's own plots (TrainedRun.figure_jobs), the curves, and the decision boundary over training
from snapshots/boundary.npz. Numpy only here: the curves equal scikit-learn's roc_curve, roc_auc_score,
average_precision_score and precision_recall_fscore_support (tests/test_report.py checks), without the
second scikit-learn costs to import at the end of every fit. views/report.py writes the page.

`fit` calls draw_plots_and_report (its plots and the report's figures drawn together, by its warm workers);
`clftrain report RUN_DIR` calls run_report_html on a run loaded back, its plots drawn into a temporary
folder (the run's own plots/ are left as they are).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from clftrain import __version__
from clftrain.config import config_to_yaml
from clftrain.data import positive_index
from clftrain.errors import UserError
from clftrain.inference import metrics
from clftrain.inference.trained import TrainedRun
from clftrain.store import rundir
from clftrain.store import snapshots as snapshot_store

REPORT = "report.html"
CALIBRATION_BINS = 10
CURVE_POINTS = 500  # per curve, at most: a chart 400 pixels wide, not a table of every threshold
FRAME_POINTS = 600  # training rows drawn on each frame of the boundary's history
METRICS_ROWS = 5_000  # metrics.csv rows kept in the page's inline JSON (evenly thinned past that)


# ---------------------------------------------------------------------- scores of a split, numpy only
def ranking_curve(positive: np.ndarray, score: np.ndarray) -> dict:
    """ROC and precision-recall of one yes/no target ranked by `score`: as sklearn's roc_curve (every threshold
    kept) and precision_recall_curve compute them, with roc_auc_score's area and average_precision_score's AP
    (None where the rows hold only one of yes and no)."""
    positive = np.asarray(positive, dtype=bool)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="mergesort")
    ranked, hits = np.asarray(score, dtype=np.float64)[order], positive[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # a threshold admits ties together
    tps = np.cumsum(hits)[last_of_each].astype(np.float64)
    fps = (last_of_each + 1) - tps
    n_pos, n_neg = (tps[-1], fps[-1]) if len(tps) else (0.0, 0.0)
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.zeros(len(tps) + 1)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.zeros(len(fps) + 1)
    precision = np.divide(tps, tps + fps, out=np.ones_like(tps), where=(tps + fps) > 0)
    recall = tps / n_pos if n_pos else np.zeros_like(tps)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) if n_pos and n_neg else None  # trapezoids
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision)) if n_pos else None
    return {"fpr": _thin(fpr), "tpr": _thin(tpr), "recall": _thin(np.r_[0.0, recall]),
            "precision": _thin(np.r_[1.0, precision]), "auc": auc, "ap": ap,
            "prevalence": float(n_pos / len(positive)) if len(positive) else 0.0}


def _thin(values: np.ndarray) -> list[float]:
    """At most CURVE_POINTS of a curve's points, evenly spaced, the first and last kept."""
    if len(values) > CURVE_POINTS:
        values = values[np.unique(np.linspace(0, len(values) - 1, CURVE_POINTS).round().astype(np.int64))]
    return [round(float(v), 6) for v in values]


def reliability(probability: np.ndarray, outcome: np.ndarray, what: str, observed_label: str) -> dict:
    """CALIBRATION_BINS equal-width bins of predicted probability: each bin's mean prediction, observed frequency
    of the outcome and row count, and the expected calibration error (the count-weighted mean gap)."""
    p = np.asarray(probability, dtype=np.float64).ravel()
    hit = np.asarray(outcome, dtype=np.float64).ravel()
    finite = np.isfinite(p)  # a diverged model's NaN: in no bin
    p, hit = np.clip(p[finite], 0.0, 1.0), hit[finite]
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.minimum((p * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(bins, p, CALIBRATION_BINS) / counts
        observed = np.bincount(bins, hit, CALIBRATION_BINS) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] * np.abs(observed[filled] - predicted[filled])) / max(len(p), 1))
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist(),
            "predicted": np.where(filled, predicted, np.nan).tolist(), "observed": np.where(filled, observed, np.nan).tolist(),
            "ece": ece, "what": what, "observed_label": observed_label}


def per_class_table(counts: np.ndarray, class_names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted), as
    precision_recall_fscore_support with zero_division=0; then the macro and the support-weighted averages."""
    counts = np.asarray(counts, dtype=np.float64)
    right, predicted, support = np.diag(counts), counts.sum(axis=0), counts.sum(axis=1)
    return _table(right, predicted, support, class_names)


def _table(right, predicted, support, names: list[str]) -> list[dict]:
    precision = np.divide(right, predicted, out=np.zeros_like(right), where=predicted > 0)
    recall = np.divide(right, support, out=np.zeros_like(right), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(right), where=precision + recall > 0)
    rows = [{"class": name, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(support[i])} for i, name in enumerate(names)]
    weights = support / support.sum() if support.sum() else np.zeros_like(support)
    for label, w in (("macro average", np.full(len(names), 1 / max(len(names), 1))), ("weighted average", weights)):
        rows.append({"class": label, "precision": float(precision @ w), "recall": float(recall @ w),
                     "f1": float(f1 @ w), "support": int(support.sum()), "average": True})
    return rows


def classifier_scores(task, y: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, class_names: list[str],
                      positive: int) -> dict:
    """The test split's per-class table, ranking curves (two classes: of the positive class; more: one-vs-rest
    per class; multi-label: per label) and reliability."""
    p = np.asarray(probabilities, dtype=np.float64)
    if task.target == "labels":
        Y, P = (np.asarray(y) >= 0.5), (np.asarray(labels) >= 0.5)
        right = (Y & P).sum(axis=0).astype(np.float64)
        table = _table(right, P.sum(axis=0).astype(np.float64), Y.sum(axis=0).astype(np.float64), class_names)
        curves = [{"label": name, **ranking_curve(Y[:, j], p[:, j])} for j, name in enumerate(class_names)]
        calibration = reliability(p, Y, "probability of a label (all labels pooled)", "fraction of labels present")
        return {"per_class": table, "curves": curves, "calibration": calibration, "scope": "per label"}
    truth = np.asarray(y).reshape(len(y), -1)[:, 0].astype(np.int64)
    predicted = np.asarray(labels).reshape(len(labels), -1)[:, 0].astype(np.int64)
    table = per_class_table(metrics.confusion(truth, predicted, len(class_names)), class_names)
    if p.shape[1] == 1:  # two classes: the model's one output is the second class's probability
        p = np.column_stack([1.0 - p[:, 0], p[:, 0]])
    if len(class_names) == 2:
        name = class_names[positive]
        curves = [{"label": f"'{name}'", **ranking_curve(truth == positive, p[:, positive])}]
        calibration = reliability(p[:, positive], truth == positive, f"probability of '{name}'",
                                  f"fraction of rows that are '{name}'")
        scope = f"of the positive class '{name}'"
    else:
        curves = [{"label": name, **ranking_curve(truth == i, p[:, i])} for i, name in enumerate(class_names)]
        calibration = reliability(p.max(axis=1), p.argmax(axis=1) == truth, "top-class probability (confidence)",
                                  "accuracy of those rows")
        scope = "one-vs-rest per class"
    return {"per_class": table, "curves": curves, "calibration": calibration, "scope": scope}


def regression_scores(y: np.ndarray, predicted: np.ndarray) -> dict:
    y, predicted = np.asarray(y, np.float64).ravel(), np.asarray(predicted, np.float64).ravel()
    error = predicted - y
    total = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    return {"mae": float(np.mean(np.abs(error))), "mse": float(np.mean(error**2)),
            "r2": 1.0 - float(np.sum(error**2)) / total if len(y) > 1 and total > 0 else None}


# ---------------------------------------------------------------------- the page's content
def run_content(run: TrainedRun, run_dir: Path, summary: dict) -> tuple[dict, list]:
    """(content for views.report.run_page, the report's own figure jobs: views.report_figures.ReportFigure)."""
    task, names = run.inputs.task, run.inputs.class_names
    y, scored = run.test_scored()
    skipped, jobs = [], []
    weights = f"{run.checkpoint} checkpoint" + (f", epoch {run.epoch}" if run.epoch is not None else "")
    if run.replicas is not None:
        weights += f"; {run.replicas.describe()}"
    content = {
        "kind": "run", "name": run.config.name, "run_dir": str(run_dir), "task": task.name, "weights": weights,
        "status": summary.get("status", "unknown (no summary.json)"), "summary": summary,
        "config_yaml": _config_text(run, run_dir), "model": _model_facts(run), "data": _data_facts(run),
        "splits": _split_metrics(run, summary), "metric": task.metric, "metric_label": task.metric_label,
        "test_score": {"loss": scored.loss, task.metric: scored.score},
        "notes": [*summary.get("notes", []), *run.notes],
        "rows": _thinned(run.rows), "version": __version__, "made": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    if task.target == "value":
        content["regression"] = regression_scores(y, scored.probabilities[:, 0])
        skipped += [("ROC, precision-recall and calibration curves", "not applicable to a regression task: they "
                     "rank and bin class probabilities, and a regression model predicts a number"),
                    ("Confusion matrix and per-class table", "not applicable to a regression task (no classes)"),
                    ("Decision boundary", "not applicable to a regression task; the predictions figure shows the fit")]
    else:
        positive = positive_index(run.config, task, names) if len(names) == 2 and task.target == "class" else 1
        scores = classifier_scores(task, y, scored.probabilities, scored.labels, names, positive)
        content["classifier"] = {**scores, "rows": len(y),
                                 "auc": [(c["label"], c["auc"], c["ap"]) for c in scores["curves"]]}
    evolution, reason = _evolution_job(run, run_dir)
    if evolution is not None:
        jobs.append(evolution[0])
        content["evolution"] = evolution[1]
    elif task.target != "value":
        skipped.append(("Decision boundary over training", reason))
    content["skipped"] = skipped
    return content, jobs


def _config_text(run: TrainedRun, run_dir: Path) -> str:
    try:
        return (run_dir / rundir.CONFIG).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return config_to_yaml(run.config)


def _model_facts(run: TrainedRun) -> dict:
    """The architecture's layers and parameters (of a fresh model of the run's config: a run with seeds holds
    them stacked), its settings, and the capacity against the training rows."""
    from clftrain.training import build_model, count_parameters, describe_model

    inputs, model_config = run.inputs, run.config.model
    model = build_model(model_config, len(inputs.feature_names), inputs.task.out_features(len(inputs.class_names)),
                        run.config.train.loss)
    layers = [(layer.name, layer.kind, layer.parameters) for layer in describe_model(model)]
    parameters = count_parameters(model)
    train_rows = run.dataset.rows("train") if run.dataset is not None else None
    widths = [len(inputs.feature_names), *model_config.layers, inputs.task.out_features(len(inputs.class_names))]
    return {"layers": layers, "parameters": parameters, "widths": widths, "activation": model_config.activation,
            "dropout": model_config.dropout, "batch_norm": model_config.batch_norm, "train_rows": train_rows,
            "per_row": parameters / train_rows if train_rows else None,
            "seeds": len(run.replicas.seeds) if run.replicas is not None else None}


def _labels_of(task, y: np.ndarray | None, n: int) -> list[int] | None:
    if y is None:
        return None
    if task.target == "labels":
        return np.asarray(y).sum(axis=0).astype(int).tolist()  # rows with each label
    return np.bincount(np.asarray(y).reshape(len(y), -1)[:, 0].astype(np.int64), minlength=n).tolist()


def _data_facts(run: TrainedRun) -> dict:
    data, task = run.dataset, run.inputs.task
    dataset = run.config.dataset
    splits = {"train": data.X_train, "val": data.X_val, "test": data.X_test}
    targets = {"train": data.y_train, "val": data.y_val, "test": data.y_test}
    facts = {"dataset": dataset.name, "features": list(data.feature_names), "classes": list(data.class_names),
             "sizes": {split: data.rows(split) for split in splits},
             "standardize": getattr(dataset, "standardize", None), "seed": dataset.seed,
             "test_size": dataset.test_size, "val_size": dataset.val_size}
    if task.target != "value" and data.stream is not None:  # counted by the first pass
        facts["counts"] = {split: counts.astype(int).tolist() for split, counts in data.stream.class_counts.items()}
        facts["counted"] = "rows with each label" if task.target == "labels" else "rows of each class"
    elif task.target != "value":
        facts["counts"] = {split: _labels_of(task, targets[split], len(data.class_names)) for split in splits
                           if targets[split] is not None and len(targets[split])}
        facts["counted"] = "rows with each label" if task.target == "labels" else "rows of each class"
    return facts


def _split_metrics(run: TrainedRun, summary: dict) -> dict:
    """Final and best metrics per split: summary.json's (a run with seeds: means over the seeds; a model.ensemble
    run: the ensemble's own), else the last metrics.csv row."""
    metric = run.inputs.task.metric
    final = dict(summary.get("final") or (run.rows[-1] if run.rows else {}))
    best = dict(summary.get("best") or {})
    table = []
    for split in ("train", "val", "test"):
        if f"{split}_loss" in final or f"{split}_loss" in best:
            table.append({"split": split, "final_loss": final.get(f"{split}_loss"),
                          "final_metric": final.get(f"{split}_{metric}"), "best_loss": best.get(f"{split}_loss"),
                          "best_metric": best.get(f"{split}_{metric}")})
    restored = (summary.get("weights") or {}).get("restored_best", False)
    replica = "member" if "ensemble" in summary else "seed" if summary.get("seeds") else None
    own_epochs = restored and replica is not None  # replicas restored to their own best epochs: no one final epoch
    return {"rows": table, "best_epoch": best.get("epoch"), "monitor": summary.get("monitor"),
            "final_epoch": None if own_epochs else final.get("epoch"),  # summary's final epoch is the latest one
            "final_at": f"each {replica} at its own best epoch" if own_epochs else None,
            "best_at": None if best.get("epoch") is None else
            f"{'median epoch' if replica else 'epoch'} {int(best['epoch'])}",  # summary's best: their median
            "seeds": len(summary["seeds"]) if replica == "seed" else None, "restored_best": restored}


def _thinned(rows: list[dict]) -> list[dict]:
    """metrics.csv's rows for the page's JSON: at most METRICS_ROWS, infinities and NaN as null (JSON has neither)."""
    if len(rows) <= METRICS_ROWS:
        return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
                for row in rows]
    keep = np.unique(np.linspace(0, len(rows) - 1, METRICS_ROWS).round().astype(np.int64))
    return _thinned([rows[i] for i in keep])


def _evolution_job(run: TrainedRun, run_dir: Path):
    """((the boundary_evolution job, the epochs and captions), None), or (None, why there is none)."""
    from clftrain.views.report_figures import ReportFigure

    data, task = run.dataset, run.inputs.task
    if task.target != "class":
        return None, f"drawn for tasks of one class per row; this run is {task.name}"
    if data.X_train.shape[1] != 2:
        return None, (f"drawn for data of two input features, where the boundary is the model's own; this run "
                      f"has {data.X_train.shape[1]}")
    try:
        snapshots = snapshot_store.read_boundary(run_dir)
    except UserError as exc:
        return None, f"{exc}"
    if snapshots is None or len(snapshots) == 0:
        why = ("runs trained with seeds take no snapshots" if run.replicas is not None else
               "the run has no snapshots/boundary.npz (trained with report: false, or by an older clftrain)")
        return None, why
    if snapshots.classes != list(run.inputs.class_names):
        return None, f"{snapshot_store.boundary_path(run_dir)} names other classes than the run's"
    by_epoch = {int(row["epoch"]): row for row in run.rows if "seed" not in row}
    column = f"train_{task.metric}"
    captions = []
    for epoch in snapshots.epochs:
        row = by_epoch.get(epoch, {})
        score = f" · train {task.format_metric(row[column])}" if column in row else ""
        captions.append("before training" if epoch == 0 else f"epoch {epoch:,}{score}")
    X, y = data.X_train, np.asarray(data.y_train).reshape(len(data.y_train), -1)[:, 0].astype(np.int64)
    if len(X) > FRAME_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(X), FRAME_POINTS, replace=False))
        X, y = X[keep], y[keep]
    # The rows in grid cells (fractional column, row from the bottom), where the frames draw them.
    x0, x1, y0, y1 = snapshots.extent
    rows, columns = snapshots.regions.shape[1:]
    cells = np.column_stack([(X[:, 0] - x0) / (x1 - x0) * (columns - 1) + 0.5,
                             (X[:, 1] - y0) / (y1 - y0) * (rows - 1) + 0.5])
    job = ReportFigure("boundary_evolution", dict(regions=snapshots.regions, captions=captions,
                                                  class_names=snapshots.classes, points=cells, classes=y))
    return (job, {"epochs": snapshots.epochs, "captions": captions}), None


# ---------------------------------------------------------------------- drawing and writing
def draw_report(run: TrainedRun, content: dict, report_jobs: list, drawer, plot_dir: Path) -> tuple[dict, list]:
    """The report's figures and the run's plots (into plot_dir), drawn together by `drawer`: (the images by name,
    the plots' results (job, path, error)). A figure that could not be drawn is a note in the content."""
    plot_jobs = run.figure_jobs(plot_dir)
    results = drawer.draw(plot_jobs + report_jobs)  # the plots first: the report's frames take a worker 60 ms
    images = {}
    for job, value, error in results:
        name = job.path.name if hasattr(job, "path") else job.figure
        if error is not None:
            content["notes"].append(f"{name} not drawn: {error}")
        elif isinstance(value, Path):
            images[name] = value.read_bytes()
        else:
            images[name] = value
    return images, results[:len(plot_jobs)]


def run_report_html(run: TrainedRun, run_dir: Path, summary: dict, drawer, plot_dir: Path) -> str:
    from clftrain.views.report import run_page

    content, jobs = run_content(run, run_dir, summary)
    images, _ = draw_report(run, content, jobs, drawer, plot_dir)
    return run_page(content, images)


def draw_plots_and_report(run: TrainedRun, run_dir: Path, drawer, summary: dict,
                          stops: tuple[type[BaseException], ...] = ()) -> list[Path]:
    """fit's end: the run's plots into run_dir/plots and report.html beside them, drawn together. A plot that
    cannot be drawn raises its error (as TrainedRun.draw_plots does) after the report is written; a report that
    cannot be made is a note in run.notes, and the plots are drawn all the same. `stops`: exceptions that pass
    (a signal that stops the drawing)."""
    from clftrain.views.report import run_page

    try:
        content, jobs = run_content(run, run_dir, summary)
    except stops:
        raise
    except Exception as exc:  # noqa: BLE001 - the report is an extra: the plots and the run stay valid
        run.notes.append(f"{REPORT} not written: {_reason(exc)}; write it with clftrain report {run_dir}")
        return run.draw_plots(run_dir, drawer)
    images, results = draw_report(run, content, jobs, drawer, run_dir / rundir.PLOTS)
    try:
        rundir.atomic_write_text(run_dir / REPORT, run_page(content, images))
    except stops:
        raise
    except Exception as exc:  # noqa: BLE001 - as above
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _reason(exc)
        run.notes.append(f"{REPORT} not written: {reason}; write it with clftrain report {run_dir}")
    errors = [error for _, _, error in results if error is not None]
    if errors:
        raise errors[0]
    return [path for _, path, _ in results]


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def report_of_run(run_dir: Path, checkpoint: str = "last", device: str | None = None, seed: int | None = None,
                  ensemble: bool = False, drawer=None) -> tuple[str, list[str]]:
    """`clftrain report RUN_DIR`: (the page, notes) of a run loaded back from its directory."""
    from clftrain.views.drawing import Drawer

    run = TrainedRun.load(run_dir, checkpoint, device, seed=seed, ensemble=ensemble)
    summary_file = run_dir / rundir.SUMMARY
    summary = rundir.read_json(summary_file, "summary") if summary_file.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="clftrain-report-") as folder:
        html = run_report_html(run, run_dir, summary, drawer or Drawer(), Path(folder))
    return html, list(run.notes)
