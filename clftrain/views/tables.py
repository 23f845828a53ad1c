"""Rich console tables of finished work: a fit's and a sweep's results, eval reports, run lists and comparisons.

No torch here. Files hold fractions in [0, 1]; the console shows accuracies and rates as
percentages (format.py).
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clftrain.components.tasks import TASKS
from clftrain.store.records import RunRecord, labels
from clftrain.views.format import metric_text

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


def show_result(console: Console, run_dir: Path, summary: dict) -> None:
    """What fit prints when it ends: where the run is, its final and best metrics, and its notes."""
    if "seeds" in summary:
        show_seeds_result(console, run_dir, summary)
    else:
        _show_one_seed_result(console, run_dir, summary)
    for note in summary.get("notes", []):
        show_note(console, note)


def _show_one_seed_result(console: Console, run_dir: Path, summary: dict) -> None:
    task = TASKS.get(summary["task"])
    final = summary["final"]
    console.print(f"\n[bold]Run directory:[/bold] {run_dir}")
    console.print(
        f"[bold]Final test metrics[/bold] (epoch {int(final.get('epoch', 0))}, status {summary['status']}): "
        f"loss {metric_text('test_loss', final.get('test_loss'))}, "
        f"{task.metric_label} {metric_text(f'test_{task.metric}', final.get(f'test_{task.metric}'))}"
    )
    _show_decisions(console, summary)


def _show_decisions(console: Console, summary: dict) -> None:
    """Where the run's decisions came from: the validation split (carved or given), best.pt, restored weights."""
    validation = summary.get("validation") or {}
    if validation.get("carved"):
        console.print(f"validation: {summary['data']['val']} rows carved from the training rows for the run's "
                      "decisions (dataset.val_size: auto); the test split only reports")
    best = summary.get("best") or {}
    if best.get("epoch") is None:
        console.print("best.pt: none (no validation split chose a best epoch; set dataset.val_size to keep one)")
        return
    monitor = summary["monitor"]
    value = f" = {metric_text(monitor, best.get(monitor))}" if monitor in best else " (each seed's own)"
    console.print(f"best.pt: epoch {int(best['epoch'])} by {monitor}{value}")
    if (summary.get("weights") or {}).get("restored_best"):
        console.print(f"the run ends with the best epoch's weights (epoch {summary['weights']['epoch']}; "
                      "train.restore_best)")


def _spread_text(stats: dict, key: str) -> str:
    """`85.20% ± 1.30% (min 83.00%, max 87.50%)` from summary.json's spread of one metric."""
    if key not in stats:
        return "n/a"
    s = stats[key]

    def number(value: float) -> str:
        return metric_text(key, value)

    return f"{number(s['mean'])} ± {number(s['std'])} (min {number(s['min'])}, max {number(s['max'])})"


def show_seeds_result(console: Console, run_dir: Path, summary: dict) -> None:
    """A run trained with seeds: the final and best test metrics as mean ± std with min and max over the seeds,
    then one row per seed."""
    task = TASKS.get(summary["task"])
    metric, label = task.metric, task.metric_label
    seeds, spread = summary["seeds"], summary["spread"]
    console.print(f"\n[bold]Run directory:[/bold] {run_dir}")
    console.print(f"[bold]Final test metrics over {len(seeds)} seeds[/bold] (epoch {summary['epochs_run']}, "
                  f"status {summary['status']}): loss {_spread_text(spread['final'], 'test_loss')}, "
                  f"{label} {_spread_text(spread['final'], f'test_{metric}')}")
    if summary["best"].get("epoch") is not None:
        console.print(f"[bold]Best[/bold] (each seed's best epoch by {summary['monitor']}, median epoch "
                      f"{summary['best']['epoch']}): loss {_spread_text(spread['best'], 'test_loss')}, "
                      f"{label} {_spread_text(spread['best'], f'test_{metric}')}")
    _show_decisions(console, summary)
    diverged = [r["seed"] for r in summary["replicas"] if r["status"] == "diverged"]
    if diverged:
        console.print(f"[red]{len(diverged)} of {len(seeds)} seeds diverged[/red] (seed "
                      f"{', '.join(map(str, diverged))}): their loss stopped being finite, so they stopped there. "
                      "Try a lower train.lr or gradient clipping (train.grad_clip: 1.0).")
    if 1 < len(seeds) <= SEED_TABLE_ROWS:
        console.print(_seeds_table(summary["replicas"], metric))


# More seeds than this: the per-seed table would bury the summary (summary.json has every seed).
SEED_TABLE_ROWS = 20


def _seeds_table(replicas: list[dict], metric: str) -> Table:
    table = Table(title="Per seed (test split)", title_justify="left")
    for column in ("seed", "final loss", f"final {metric}", "best epoch", f"best {metric}", "status"):
        table.add_column(column, justify="left" if column == "status" else "right")

    def number(row: dict, key: str) -> str:
        return metric_text(key, row.get(key))

    for r in replicas:
        best_epoch = r["best"].get("epoch")
        table.add_row(str(r["seed"]), number(r["final"], "test_loss"), number(r["final"], f"test_{metric}"),
                      "-" if best_epoch is None else str(int(best_epoch)), number(r["best"], f"test_{metric}"),
                      r["status"])
    return table


def show_sweep(console: Console, sweep_dir: Path, rows: list[dict], ranked_by: str, grid_keys: list[str],
               over: str = "each run's seeds") -> None:
    """The sweep's runs, best first by `ranked_by` (a sweep.csv column: a mean `over` each run's replicas).

    Readable at 80 columns (a pipe, a narrow terminal): a run is its number, its grid values have their own
    columns and wrap at their spaces, and a number is never cut (no column is narrower than its widest
    word)."""
    metric = ranked_by.removesuffix("_mean")
    label = metric.replace("_acc", " accuracy").replace("_mae", " MAE")

    def number(value) -> str:
        return metric_text(metric, value, 4)

    cells = [[str(row["rank"]), row["run"].split("-", 1)[0], *(str(row[key]) for key in grid_keys),
              f"{number(row.get(f'{metric}_mean'))} ± {number(row.get(f'{metric}_std'))}",
              f"{number(row.get(f'{metric}_min'))} - {number(row.get(f'{metric}_max'))}",
              metric_text("test_loss", row.get("test_loss_mean"), 4)] for row in rows]
    shorts = [key.rsplit(".", 1)[-1] for key in grid_keys]
    headers = ["#", "run", *(short if shorts.count(short) == 1 else key for key, short in zip(grid_keys, shorts)),
               "mean ± std", "min - max", "test loss"]
    if any(row["status"] != "completed" for row in rows):
        headers.append("status")
        for cell, row in zip(cells, rows):
            cell.append(row["status"])
    # Grid values wrap at their spaces; scores stay whole: where even so the table is wider than the console,
    # min - max and then the test loss are left to sweep.csv rather than cut.
    grid = set(headers[2:2 + len(grid_keys)])
    headers, cells, left_out = _fit_columns(headers, cells, console.width, grid, ["min - max", "test loss"])
    table = Table(title=f"{sweep_dir}: runs ranked by final {label} (over {over})", title_justify="left",
                  caption=f"run NN: {sweep_dir}/NN-... (sweep.csv has every column"
                          + (f", {' and '.join(left_out)} too)" if left_out else ")"),
                  caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    _add_columns(table, headers, cells, grid, right=set(headers) - grid - {"status"})
    console.print(table)


def _fit_columns(headers: list[str], cells: list[list[str]], width: int, wrapping: set[str],
                 droppable: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """Leave out the `droppable` columns, in their order, while the table's narrowest width (wrapping columns
    at their longest word, the others whole, 2 of padding each) is more than `width`; what was left out too."""
    left_out = []
    for name in droppable:
        narrowest = sum(_longest_word(column) if column[0] in wrapping else max(len(_plain(t)) for t in column)
                        for column in zip(headers, *cells)) + 2 * len(headers)
        if narrowest <= width:
            break
        column = headers.index(name)
        headers = headers[:column] + headers[column + 1:]
        cells = [cell[:column] + cell[column + 1:] for cell in cells]
        left_out.append(name)
    return headers, cells, left_out


def _add_columns(table: Table, headers: list[str], cells: list[list[str]], wrapping: set[str], right: set[str],
                 folding: set[str] = frozenset()) -> None:
    """Columns that wrap at spaces (`wrapping`), fold anywhere (`folding`: paths) or stay on one line, none
    narrower than its longest word, so a number is never cut; then the rows."""
    for i, header in enumerate(headers):
        whole = header not in wrapping | folding
        table.add_column(header, justify="right" if header in right else "left", no_wrap=whole,
                         overflow="fold" if header in folding else "ellipsis",
                         min_width=None if header in folding else _longest_word([header, *(c[i] for c in cells)]))
    for cell in cells:
        table.add_row(*cell)


def _plain(text: str) -> str:
    return Text.from_markup(text).plain


def _longest_word(texts) -> int:
    """The width a column needs so that wrapping at spaces never cuts a word (a number, a unit)."""
    return max((len(word) for text in texts for word in _plain(str(text)).split()), default=1)


def show_data_check(console: Console, config, dataset) -> None:
    """What `validate --data` found: the inputs, the task, the classes and how many rows each split has."""
    import numpy as np

    console.print(f"\n[bold]Data[/bold] ({config.dataset.name}): every check fit makes passed")
    pre = dataset.preprocessor
    console.print(f"inputs: {len(pre.input_columns)} columns -> {dataset.n_features} model inputs: "
                  f"{', '.join(pre.numeric) or '-'}" + (f"; one-hot: {', '.join(pre.categorical)}" if pre.categorical
                                                        else ""))
    console.print(f"task: {dataset.task.name} (loss {config.train.loss})")
    if dataset.task.target == "class":
        if dataset.stream is not None:  # counted by the first pass
            counts = sum(dataset.stream.class_counts.values())
        else:
            ys = [dataset.y_train] + ([dataset.y_val] if dataset.y_val is not None else []) + [dataset.y_test]
            counts = np.bincount(np.concatenate([y.reshape(len(y), -1)[:, 0].astype(int) for y in ys]),
                                 minlength=dataset.n_classes)
        console.print("classes: " + ", ".join(f"{name} {count}" for name, count in zip(dataset.class_names, counts)))
    elif dataset.task.target == "labels":
        console.print(f"labels: {', '.join(dataset.class_names)}")
    console.print(f"splits: train {dataset.rows('train')}, validation {dataset.rows('val')}, test "
                  f"{dataset.rows('test')} rows" + (f" (streamed from disk in {len(dataset.stream.blocks)} blocks)"
                                                    if dataset.stream is not None else "")
                  + (" (validation carved for the run's decisions)" if config._validation_carved else ""))
    for note in dataset.notes:
        show_note(console, note)


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
        show_note(console, note)
    if "threshold" in report:
        console.print(f"decision threshold: a row is '{report['metrics']['positive_class']}' from probability "
                      f"{report['threshold']:g} (not 0.5)")
    hint = report.get("threshold_hint")
    if hint:
        console.print(f"hint: on the validation split, threshold {hint['threshold']:g} gives the best F1 of "
                      f"'{hint['positive_class']}' ({hint['validation_f1']:.2%}); try --threshold {hint['threshold']:g}")
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
        table.add_row(label, metric_text(key, value))
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


def show_runs(console: Console, root: Path, runs: list[RunRecord]) -> None:
    if not runs:
        console.print(f"no runs under {root}: train one with clftrain fit CONFIG")
        return
    paths = [str(run.path.relative_to(root)) if run.path != root else str(run.path) for run in runs]
    headers = ["date", "dataset", "model", "epochs", "best", "final", "status"]
    cells = []
    for run in runs:
        best = run.best(f"val_{run.metric}")
        best_text = metric_text(f"val_{run.metric}", best[0], 4) if best else "-"
        label = "" if run.metric == "acc" else "MAE "
        cells.append([
            run.started.strftime("%Y-%m-%d %H:%M"), run.dataset, run.model, str(run.epochs),
            label + best_text, label + metric_text(f"test_{run.metric}", run.final(f"test_{run.metric}"), 4),
            _status(run.status),
        ])
    # Narrow consoles: the directory folds, the model wraps at its spaces, numbers and status stay whole; the
    # date (most directories are named by it) and then the dataset are left out before anything is cut.
    run_width = min(max(map(len, paths)), RUN_COLUMN) + 2
    headers, cells, left_out = _fit_columns(headers, cells, console.width - run_width, {"model"}, ["date", "dataset"])
    headers, cells = ["run", *headers], [[path, *cell] for path, cell in zip(paths, cells)]
    table = Table(title=f"Runs under {root}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    _add_columns(table, headers, cells, {"model"}, right={"epochs", "best", "final"}, folding={"run"})
    console.print(table)
    console.print("best: the best validation accuracy (MAE for regression) of any evaluated epoch ('-' without a "
                  "validation split); final: the test accuracy the run ended with"
                  + (f"; left out for the console's width: {' and '.join(left_out)}" if left_out else ""))


RUN_COLUMN = 22  # characters of a run's directory per line, folded beyond (a stamp and most of a short name)


def _status(status: str) -> str:
    colour = {"completed": "green", "diverged": "red", "failed": "red", "interrupted": "yellow"}.get(status)
    return f"[{colour}]{status}[/{colour}]" if colour else status


def _parameters(run: RunRecord) -> str:
    count = (run.summary.get("model") or {}).get("parameters")
    return f"{count:,}" if count is not None else "-"


def show_compare(console: Console, runs: list[RunRecord], metric: str) -> None:
    """One column per run, a row per fact; as many runs side by side as the console's width holds (80 columns
    when piped), the rest in further tables below, so that no number is cut."""
    score_name = "accuracy" if metric == "acc" else "MAE"
    trains = [run.config.get("train") or {} for run in runs]
    bests = [run.best(f"val_{metric}") for run in runs]
    facts = [
        ("dataset", [run.dataset for run in runs]),
        ("model", [run.model for run in runs]),
        ("parameters", [_parameters(run) for run in runs]),
        ("optimizer, lr", [f"{t.get('optimizer', '?')}, {t.get('lr', '?')}" for t in trains]),
        ("epochs", [str(run.epochs) for run in runs]),
        ("status", [_status(run.status) for run in runs]),
        None,  # a rule between the set-up and the results
        ("final test loss", [metric_text("test_loss", run.final("test_loss"), 4) for run in runs]),
        (f"final test {score_name}", [metric_text(f"test_{metric}", run.final(f"test_{metric}"), 4) for run in runs]),
        (f"best validation {score_name} (epoch)",
         [f"{metric_text(f'val_{metric}', b[0], 4)} ({b[1]})" if b else "-" for b in bests]),
        ("seconds", [f"{run.summary['seconds']:.1f}" if "seconds" in run.summary else "-" for run in runs]),
    ]
    names = labels(runs)
    label_width = max(len(fact[0]) for fact in facts if fact)
    # A run's column is as wide as its longest word (or its name, up to 24 characters, which may fold).
    widths = [max(min(len(name), 24), *(_longest_word([Text.from_markup(fact[1][i]).plain])
                                        for fact in facts if fact)) for i, name in enumerate(names)]
    start = 0
    while start < len(runs):
        end, used = start + 1, label_width + 4 + widths[start] + 3
        while end < len(runs) and used + widths[end] + 3 <= console.width:
            used, end = used + widths[end] + 3, end + 1
        part = f" ({start + 1}-{end} of {len(runs)})" if end - start < len(runs) else ""
        table = Table(title=f"Runs compared{part}", title_justify="left")
        table.add_column("", no_wrap=True)
        for name, width in zip(names[start:end], widths[start:end]):
            table.add_column(name, justify="right", min_width=width, overflow="fold")
        for fact in facts:
            if fact is None:
                table.add_section()
            else:
                table.add_row(fact[0], *fact[1][start:end])
        console.print(table)
        start = end


def show_note(console: Console, note: str) -> None:
    """A note as plain text: one naming columns (`features: [a, b]`) must not be read as console markup."""
    console.print(Text("note: ", style="yellow") + Text(note), highlight=False)
