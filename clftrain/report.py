"""What `fit` shows on the console: the model, a progress bar, a row every log_every epochs, the result."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from clftrain.train import Callback, Trainer

_METRIC_LABELS = {"acc": "Accuracy", "mae": "MAE"}


def show_model(console: Console, layers, parameters: int, device) -> None:
    table = Table(title=f"Model on {device}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("parameters", justify="right")
    for layer in layers:
        table.add_row(layer.name, layer.kind, f"{layer.parameters:,}")
    table.add_section()
    table.add_row("", "total (the model's capacity)", f"{parameters:,}")
    console.print(table)


def format_row(row: dict[str, float], metric: str, replicas: list[dict[str, float]] | None = None) -> str:
    """`Epoch: 100 | Loss: 0.69115, Accuracy: 52.88% | Test loss: 0.69102, Test acc: 52.50%`.

    With the rows of several replicas (a run trained with seeds), `row` is their mean and each
    number is shown as mean ± standard deviation: `Loss: 0.69115 ± 0.00210`.
    """

    def show(key: str) -> str:
        percent = key.endswith("_acc")
        text = f"{row[key]:.2%}" if percent else f"{row[key]:.5f}"
        if replicas and len(replicas) > 1:
            text += " ± " + (f"{_std(replicas, key):.2%}" if percent else f"{_std(replicas, key):.5f}")
        return text

    short = {"acc": "acc", "mae": "MAE"}[metric]
    parts = [f"Epoch: {int(row['epoch'])}",
             f"Loss: {show('train_loss')}, {_METRIC_LABELS[metric]}: {show(f'train_{metric}')}"]
    for split in ("val", "test"):
        if f"{split}_loss" in row:
            name = split.capitalize()
            parts.append(f"{name} loss: {show(f'{split}_loss')}, {name} {short}: {show(f'{split}_{metric}')}")
    return " | ".join(parts)


def _std(rows: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in rows if math.isfinite(row[key])]
    return statistics.stdev(values) if len(values) > 1 else 0.0


class ConsoleProgress(Callback):
    """A rich progress bar over epochs and a printed row every `log_every` epochs (and the last)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        )

    def on_fit_start(self, trainer: Trainer) -> None:
        self.task_id = self.progress.add_task("fit", total=trainer.cfg.epochs, completed=trainer.epoch)
        # A live bar is drawn only on a terminal: elsewhere (-q, output to a file or CI log) starting
        # it would only add its refresh thread and stdout redirection (about 1 ms per run) for nothing.
        self.live = self.console.is_terminal and not self.console.quiet
        if self.live:
            self.progress.start()
        self._last_update = 0.0

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.console.quiet:
            return  # --quiet: nothing to draw, so no work on the hot path
        # The bar redraws at most 10 times a second anyway: skip the update work in between.
        now = time.monotonic()
        if self.live and now - self._last_update >= 0.1:
            self.progress.update(self.task_id, completed=trainer.epoch)
            self._last_update = now
        if trainer.epoch % trainer.cfg.log_every == 0 or trainer.epoch == trainer.cfg.epochs:
            # Plain text: rich's markup and highlighting cost ~100 us a row and the rows need neither.
            self.console.print(format_row(row, trainer.task.metric, _replica_rows(trainer)), soft_wrap=True,
                               markup=False, highlight=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.live:
            self.progress.stop()
        last = trainer.history[-1] if trainer.history else None
        if last and trainer.epoch % trainer.cfg.log_every and trainer.epoch != trainer.cfg.epochs:
            # stopped between log rows
            self.console.print(format_row(last, trainer.task.metric, _replica_rows(trainer)), soft_wrap=True)
        if trainer.status == "diverged":
            self.console.print(
                f"[red]training diverged at epoch {trainer.epoch}: the loss is not finite.[/red] "
                "Try a lower train.lr, gradient clipping (train.grad_clip: 1.0), or dataset.standardize: true."
            )
        elif trainer.stopped_early:
            self.console.print(f"early stopping at epoch {trainer.epoch}: no improvement for "
                               f"{trainer.cfg.early_stopping.patience} epochs")


def _replica_rows(trainer) -> list[dict[str, float]] | None:
    """A multiseed.ReplicaTrainer passes the mean row and keeps each replica's; a Trainer has one model."""
    return getattr(trainer, "replica_rows", None)


def show_result(console: Console, run_dir: Path, summary: dict) -> None:
    if "seeds" in summary:
        show_seeds_result(console, run_dir, summary)
        return
    metric = "acc" if "test_acc" in summary["final"] else "mae"
    final = summary["final"]
    console.print(f"\n[bold]Run directory:[/bold] {run_dir}")
    console.print(
        f"[bold]Final test metrics[/bold] (epoch {int(final.get('epoch', 0))}, status {summary['status']}): "
        f"loss {final.get('test_loss', float('nan')):.5f}, "
        + (f"accuracy {final['test_acc']:.2%}" if metric == "acc" else f"MAE {final.get('test_mae', float('nan')):.5f}")
    )
    if summary.get("best"):
        best = summary["best"]
        console.print(f"best.pt: epoch {int(best['epoch'])} by {summary['monitor']} = {best[summary['monitor']]:.5f}")


def _spread_text(stats: dict, key: str) -> str:
    """`85.20% ± 1.30% (min 83.00%, max 87.50%)` from summary.json's spread of one metric."""
    if key not in stats:
        return "n/a"
    s = stats[key]

    def number(value: float) -> str:
        return f"{value:.2%}" if key.endswith("_acc") else f"{value:.5f}"

    return f"{number(s['mean'])} ± {number(s['std'])} (min {number(s['min'])}, max {number(s['max'])})"


def show_seeds_result(console: Console, run_dir: Path, summary: dict) -> None:
    """A run trained with seeds: the final and best test metrics as mean ± std with min and max over the seeds,
    then one row per seed."""
    metric = "acc" if "test_acc" in summary["final"] else "mae"
    label = {"acc": "accuracy", "mae": "MAE"}[metric]
    seeds, spread = summary["seeds"], summary["spread"]
    console.print(f"\n[bold]Run directory:[/bold] {run_dir}")
    console.print(f"[bold]Final test metrics over {len(seeds)} seeds[/bold] (epoch {summary['epochs_run']}, "
                  f"status {summary['status']}): loss {_spread_text(spread['final'], 'test_loss')}, "
                  f"{label} {_spread_text(spread['final'], f'test_{metric}')}")
    if summary["best"]:
        console.print(f"[bold]Best[/bold] (each seed's best epoch by {summary['monitor']}, median epoch "
                      f"{summary['best']['epoch']}): loss {_spread_text(spread['best'], 'test_loss')}, "
                      f"{label} {_spread_text(spread['best'], f'test_{metric}')}")
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
        value = row.get(key)
        if value is None:
            return "-"
        return f"{value:.2%}" if metric == "acc" and key.endswith("_acc") else f"{value:.5f}"

    for r in replicas:
        best_epoch = r["best"].get("epoch")
        table.add_row(str(r["seed"]), number(r["final"], "test_loss"), number(r["final"], f"test_{metric}"),
                      "-" if best_epoch is None else str(int(best_epoch)), number(r["best"], f"test_{metric}"),
                      r["status"])
    return table


class SweepProgress(Callback):
    """A sweep's batch: which runs train together, and a progress bar over its epochs (no epoch rows)."""

    def __init__(self, console: Console, number: int, total: int, runs: list[str], replicas: int) -> None:
        self.console = console
        self.header = (f"batch {number}/{total}: {len(runs)} run{'s' * (len(runs) > 1)}, {replicas} replicas "
                       f"as one batched model: {', '.join(runs)}")
        self.progress = Progress(
            TextColumn(f"[bold]batch {number}/{total}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True,
        )

    def on_fit_start(self, trainer) -> None:
        self.console.print(self.header, soft_wrap=True)
        self.task_id = self.progress.add_task("fit", total=trainer.cfg.epochs, completed=trainer.epoch)
        self.progress.start()

    def on_epoch_end(self, trainer, row: dict[str, float]) -> None:
        self.progress.update(self.task_id, completed=trainer.epoch)

    def on_fit_end(self, trainer) -> None:
        self.progress.stop()


def show_sweep(console: Console, sweep_dir: Path, rows: list[dict], ranked_by: str, grid_keys: list[str]) -> None:
    """The sweep's runs, best first by `ranked_by` (a sweep.csv column: a mean over each run's seeds)."""
    metric = ranked_by.removesuffix("_mean")
    label = metric.replace("_acc", " accuracy").replace("_mae", " MAE")
    table = Table(title=f"{sweep_dir}: runs ranked by final {label} (over each run's seeds)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("run", overflow="fold")
    shorts = [key.rsplit(".", 1)[-1] for key in grid_keys]
    for key, short in zip(grid_keys, shorts):
        table.add_column(short if shorts.count(short) == 1 else key, justify="right")
    for column in ("mean ± std", "min - max", "test loss"):
        table.add_column(column, justify="right", no_wrap=True)
    show_status = any(row["status"] != "completed" for row in rows)
    if show_status:
        table.add_column("status", no_wrap=True)

    def number(value) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        return f"{value:.2%}" if metric.endswith("_acc") else f"{value:.4f}"

    for row in rows:
        loss = row.get("test_loss_mean")
        table.add_row(
            str(row["rank"]), row["run"], *(str(row[key]) for key in grid_keys),
            f"{number(row.get(f'{metric}_mean'))} ± {number(row.get(f'{metric}_std'))}",
            f"{number(row.get(f'{metric}_min'))} - {number(row.get(f'{metric}_max'))}",
            f"{loss:.4f}" if loss is not None else "-", *([row["status"]] if show_status else []),
        )
    console.print(table)
