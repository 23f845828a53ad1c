"""Rich console views of eval results, run lists and run comparisons (rich only: no torch here).

Files hold fractions in [0, 1]; the console shows accuracies and rates as percentages.
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from clftrain.runs import RunRecord, labels

_NAMES = {
    "accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "F1", "roc_auc": "ROC-AUC",
    "roc_auc_ovr": "ROC-AUC (one-vs-rest, macro)", "log_loss": "log loss",
    "mae": "MAE", "mse": "MSE", "r2": "R²",
    "subset_accuracy": "subset accuracy (every label right)", "hamming_loss": "Hamming loss (labels wrong)",
    "roc_auc_macro": "ROC-AUC (macro over labels)",
}
_AVERAGED = {f"{key}_{average}": f"{label} ({average})"
             for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))
             for average in ("macro", "weighted", "micro", "samples")}
_NAMES.update(_AVERAGED)
_FRACTIONS = {"accuracy", "precision", "recall", "f1", "subset_accuracy", "hamming_loss", *_AVERAGED}


def _number(key: str, value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2%}" if key in _FRACTIONS else f"{value:.5f}"


def show_eval(console: Console, report: dict, path: Path) -> None:
    data = report["data"]
    where = "the rebuilt test split" if data["source"] == "test split" else data["path"]
    epoch = f", epoch {report['epoch']}" if report["epoch"] is not None else ""
    console.print(f"[bold]{report['run']}[/bold] ({report['checkpoint']} checkpoint{epoch}) on {where}: "
                  f"{data['rows']} rows, device {report['device']}")
    if "replica" in report:  # a run trained with seeds
        hint = " (choose with --seed S, or --ensemble to average them)" if report["replica"]["why"] == "median" else ""
        console.print(f"Weights: {report['replica']['chosen']}{hint}")
    console.print(_metrics_table(report))
    if "per_class" in report:
        console.print(_per_class_table(report["per_class"]))
        console.print(_confusion_table(report["confusion_matrix"]))
    for note in report.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    _show_fit_check(console, report.get("fit_check"))
    console.print(f"wrote {path}")


def _metrics_table(report: dict) -> Table:
    table = Table(title="Metrics", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    metrics = report["metrics"]
    for key, value in metrics.items():
        if key == "positive_class":
            continue
        label = _NAMES.get(key, key)
        if key == "loss":
            label = f"loss ({report['loss_function']}, as in training)"
        elif key in ("precision", "recall", "f1"):
            label = f"{label} (positive class '{metrics['positive_class']}')"
        table.add_row(label, _number(key, value))
    return table


def _per_class_table(rows: list[dict]) -> Table:
    table = Table(title="Per class", title_justify="left")
    table.add_column("class")
    for column in ("precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["class"], f"{row['precision']:.2%}", f"{row['recall']:.2%}", f"{row['f1']:.2%}",
                      str(row["support"]))
    return table


def _confusion_table(matrix: dict) -> Table:
    if "per_label" in matrix:
        return _label_confusion_table(matrix)
    table = Table(title="Confusion matrix (rows: true class, columns: predicted)", title_justify="left")
    table.add_column("true \\ predicted")
    for name in matrix["labels"]:
        table.add_column(name, justify="right")
    for name, counts in zip(matrix["labels"], matrix["counts"]):
        table.add_row(name, *(str(c) for c in counts))
    return table


def _label_confusion_table(matrix: dict) -> Table:
    table = Table(title="Confusion per label (test rows)", title_justify="left")
    table.add_column("label")
    for column in ("true neg.", "false pos.", "false neg.", "true pos."):
        table.add_column(column, justify="right")
    for name, ((tn, fp), (fn, tp)) in zip(matrix["labels"], matrix["per_label"]):
        table.add_row(name, str(tn), str(fp), str(fn), str(tp))
    return table


def _show_fit_check(console: Console, check: dict | None) -> None:
    if check is None:
        return
    recorded = ", ".join(f"{k} {v:.6g}" for k, v in check["recorded"].items())
    if check["match"]:
        console.print(f"[green]Reproduces exactly[/green] the test metrics fit recorded at epoch {check['epoch']} "
                      f"({recorded}).")
        return
    reproduced = ", ".join(f"{k} {v:.6g}" for k, v in check["reproduced"].items())
    console.print(f"[yellow]Differs[/yellow] from the test metrics fit recorded at epoch {check['epoch']}: "
                  f"recorded {recorded}, now {reproduced}. Another device or library version changes the "
                  "last digits; a larger difference means the data or the checkpoint changed.")


def _score(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if metric == "acc" else f"{value:.4f}"


def show_runs(console: Console, root: Path, runs: list[RunRecord]) -> None:
    if not runs:
        console.print(f"no runs under {root}: train one with clftrain fit CONFIG")
        return
    table = Table(title=f"Runs under {root}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    # Narrow terminals: numbers and status stay whole; the directory folds, other text wraps.
    table.add_column("run", overflow="fold")
    table.add_column("date", overflow="fold")
    table.add_column("dataset", overflow="fold")
    table.add_column("model")
    table.add_column("epochs", justify="right", no_wrap=True)
    for column in ("best", "final"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for run in runs:
        best = run.best(f"test_{run.metric}")
        best_text = _score(run.metric, best[0]) if best else "-"
        label = "" if run.metric == "acc" else "MAE "
        table.add_row(
            str(run.path.relative_to(root)) if run.path != root else str(run.path),
            run.started.strftime("%Y-%m-%d %H:%M"), run.dataset, run.model, run.epochs,
            label + best_text, label + _score(run.metric, run.final(f"test_{run.metric}")),
            _status(run.status),
        )
    console.print(table)
    console.print("best, final: test accuracy (MAE for regression), the best of any logged epoch and the last")


def _status(status: str) -> str:
    colour = {"completed": "green", "diverged": "red", "failed": "red", "interrupted": "yellow"}.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status


def _parameters(run: RunRecord) -> str:
    count = (run.summary.get("model") or {}).get("parameters")
    return f"{count:,}" if count is not None else "-"


def show_compare(console: Console, runs: list[RunRecord], metric: str) -> None:
    table = Table(title="Runs compared", title_justify="left")
    table.add_column("")
    for name in labels(runs):
        table.add_column(name, justify="right")
    score_name = "accuracy" if metric == "acc" else "MAE"

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    row("dataset", [run.dataset for run in runs])
    row("model", [run.model for run in runs])
    row("parameters", [_parameters(run) for run in runs])
    trains = [run.config.get("train") or {} for run in runs]
    row("optimizer, lr", [f"{t.get('optimizer', '?')}, {t.get('lr', '?')}" for t in trains])
    row("epochs", [run.epochs for run in runs])
    row("status", [_status(run.status) for run in runs])
    table.add_section()
    row("final test loss", [_score("loss", run.final("test_loss")) for run in runs])
    row(f"final test {score_name}", [_score(metric, run.final(f"test_{metric}")) for run in runs])
    bests = [run.best(f"test_{metric}") for run in runs]
    row(f"best test {score_name} (epoch)", [f"{_score(metric, b[0])} ({b[1]})" if b else "-" for b in bests])
    row("seconds", [f"{run.summary['seconds']:.1f}" if "seconds" in run.summary else "-" for run in runs])
    console.print(table)
