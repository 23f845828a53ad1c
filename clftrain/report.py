"""What `fit` shows on the console: the model, a progress bar, a row every log_every epochs, the result."""

from __future__ import annotations

from pathlib import Path

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


def format_row(row: dict[str, float], metric: str) -> str:
    """`Epoch: 100 | Loss: 0.69115, Accuracy: 52.88% | Test loss: 0.69102, Test acc: 52.50%`."""

    def score(value: float) -> str:
        return f"{value:.2%}" if metric == "acc" else f"{value:.5f}"

    short = {"acc": "acc", "mae": "MAE"}[metric]
    parts = [f"Epoch: {int(row['epoch'])}",
             f"Loss: {row['train_loss']:.5f}, {_METRIC_LABELS[metric]}: {score(row[f'train_{metric}'])}"]
    for split in ("val", "test"):
        if f"{split}_loss" in row:
            name = split.capitalize()
            parts.append(f"{name} loss: {row[f'{split}_loss']:.5f}, {name} {short}: {score(row[f'{split}_{metric}'])}")
    return " | ".join(parts)


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
        self.progress.start()

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        # The bar moves on evaluated epochs only: no per-epoch console work on the hot path.
        self.progress.update(self.task_id, completed=trainer.epoch)
        if trainer.epoch % trainer.cfg.log_every == 0 or trainer.epoch == trainer.cfg.epochs:
            self.console.print(format_row(row, trainer.task.metric), soft_wrap=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        self.progress.stop()
        last = trainer.history[-1] if trainer.history else None
        if last and trainer.epoch % trainer.cfg.log_every and trainer.epoch != trainer.cfg.epochs:
            self.console.print(format_row(last, trainer.task.metric), soft_wrap=True)  # stopped between log rows
        if trainer.status == "diverged":
            self.console.print(
                f"[red]training diverged at epoch {trainer.epoch}: the loss is not finite.[/red] "
                "Try a lower train.lr, gradient clipping (train.grad_clip: 1.0), or dataset.standardize: true."
            )
        elif trainer.stopped_early:
            self.console.print(f"early stopping at epoch {trainer.epoch}: no improvement for "
                               f"{trainer.cfg.early_stopping.patience} epochs")


def show_result(console: Console, run_dir: Path, summary: dict) -> None:
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
