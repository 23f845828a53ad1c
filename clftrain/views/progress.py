"""What `fit` and `sweep` show while they train: the model, a progress bar, a row every log_every epochs."""

from __future__ import annotations

import math
import statistics
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from clftrain.components.tasks import Task
from clftrain.training.loop import Callback, EpochLoop
from clftrain.views.format import metric_text


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


def format_row(row: dict[str, float], task: Task, replicas: list[dict[str, float]] | None = None) -> str:
    """`Epoch: 100 | Loss: 0.69115, Accuracy: 52.88% | Test loss: 0.69102, Test acc: 52.50%`.

    With the rows of several replicas (a run trained with seeds), `row` is their mean and each
    number is shown as mean ± standard deviation: `Loss: 0.69115 ± 0.00210`.
    """

    def show(key: str) -> str:
        text = metric_text(key, row[key])
        if replicas and len(replicas) > 1:
            text += " ± " + metric_text(key, _std(replicas, key))
        return text

    metric, label = task.metric, task.metric_label
    short = "acc" if metric == "acc" else label  # the tutorial's "Test acc"
    parts = [f"Epoch: {int(row['epoch'])}",
             f"Loss: {show('train_loss')}, {label[0].upper() + label[1:]}: {show(f'train_{metric}')}"]
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

    def on_fit_start(self, trainer: EpochLoop) -> None:
        self.task_id = self.progress.add_task("fit", total=trainer.cfg.epochs, completed=trainer.epoch)
        # A live bar is drawn only on a terminal: elsewhere (-q, output to a file or CI log) starting
        # it would only add its refresh thread and stdout redirection (about 1 ms per run) for nothing.
        self.live = self.console.is_terminal and not self.console.quiet
        if self.live:
            self.progress.start()
        self._last_update = 0.0

    def on_epoch_end(self, trainer: EpochLoop, row: dict[str, float]) -> None:
        if self.console.quiet:
            return  # --quiet: nothing to draw, so no work on the hot path
        # The bar redraws at most 10 times a second anyway: skip the update work in between.
        now = time.monotonic()
        if self.live and now - self._last_update >= 0.1:
            self.progress.update(self.task_id, completed=trainer.epoch)
            self._last_update = now
        if trainer.epoch % trainer.cfg.log_every == 0 or trainer.epoch == trainer.cfg.epochs:
            # Plain text: rich's markup and highlighting cost ~100 us a row and the rows need neither.
            self.console.print(format_row(row, trainer.task, _replica_rows(trainer)), soft_wrap=True,
                               markup=False, highlight=False)

    def on_fit_end(self, trainer: EpochLoop) -> None:
        if self.live:
            self.progress.stop()
        last = trainer.history[-1] if trainer.history else None
        if last and trainer.epoch % trainer.cfg.log_every and trainer.epoch != trainer.cfg.epochs:
            # stopped between log rows
            self.console.print(format_row(last, trainer.task, _replica_rows(trainer)), soft_wrap=True)
        if trainer.status == "diverged":
            self.console.print(
                f"[red]training diverged at epoch {trainer.epoch}: the loss is not finite.[/red] "
                "Try a lower train.lr, gradient clipping (train.grad_clip: 1.0), or dataset.standardize: true."
            )
        elif trainer.stopped_early:
            self.console.print(f"early stopping at epoch {trainer.epoch}: no improvement for "
                               f"{trainer.cfg.early_stopping.patience} epochs")


def _replica_rows(trainer) -> list[dict[str, float]] | None:
    """A ReplicaTrainer passes the mean row and keeps each replica's; a Trainer has one model."""
    return getattr(trainer, "replica_rows", None)


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
