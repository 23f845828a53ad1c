"""What `clftrain fit DATA --target COLUMN` says as it goes (runs/auto_fit.py calls these hooks): the budget, the
probe's timings, the search's plan and candidates, the winner and why, the ensemble's size and why, the time used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clftrain.views.format import metric_text


class AutoFitConsole:
    def __init__(self, console: Console, notes: Console | None = None) -> None:
        self.console, self.notes = console, notes or console

    def read(self, data: Path, target: str, budget: float, budget_text: str, notes: list[str], epochs: int) -> None:
        self.console.print(f"[bold]clftrain fit {data} --target {target}[/bold]: the tabular recipe (the config "
                           f"clftrain init writes) with a search and an ensemble, within --budget {budget_text} "
                           f"({budget:g} s)")
        for note in notes:
            self.notes.print(Text("note: ", style="yellow") + Text(note))

    def probed(self, probe: dict, check: dict, used: float) -> None:
        times = sorted(probe["epoch_seconds"].items())
        batch = f", {times[-1][1]:.3f} s for {times[-1][0]} as one batched model" if len(times) > 1 else ""
        self.console.print(f"probe: an epoch takes {times[0][1]:.3f} s for one model{batch} "
                           f"({probe['train_rows']:,} training rows, {probe['val_rows']:,} validation, "
                           f"{probe['device']}); {used:.1f} s used so far")
        if not check["why"]:
            self.console.print(f"stopping check: early stopping against all {check['epochs']} epochs on every row, "
                               f"cross-validated on {check['folds']} folds as one batched model, about "
                               f"{check['seconds']:.0f} s")

    def planned(self, plan: dict, budget: float, used: float, space: dict) -> None:
        if not plan["trials"]:
            self.console.print(f"search: none ({plan['why']}): the recipe's own values")
            return
        keys = ", ".join(f"{key} ~ {dist}" for key, dist in space.items())
        capped = f"up to {plan['search_epochs']} epochs" + (
            f" (of the recipe's {plan['epochs']}, to fit the budget)" if plan["search_epochs"] < plan["epochs"] else "")
        self.console.print(f"search: {plan['trials']} trials of {keys}, trained as one batched model, {capped}, "
                           f"about {plan['search_seconds']:.0f} s at most")

    def searched(self, candidates: list, winner: Any, metric: str, seconds: float, planned: float, search_dir: Path,
                 space: dict) -> None:
        label = "MAE" if metric == "mae" else "accuracy"
        table = Table(title=f"{search_dir}: the candidates, by validation {label} (the test split decides nothing)",
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        keys = list(space)
        for header in ["run", *(key.rsplit(".", 1)[-1] for key in keys), f"val {label}", "val loss", "epochs", ""]:
            table.add_column(header, justify="left" if header in ("run", "") else "right")
        for c in candidates:
            table.add_row(c.run.split("-", 1)[0], *(_value(c.values.get(key)) for key in keys),
                          metric_text(f"val_{metric}", c.score, 4), metric_text("val_loss", c.val_loss, 4),
                          f"{c.epochs_run}{'' if c.stopped_early else ' (cap)'}" if c.status == "completed"
                          else c.status, "winner" if c is winner else "")
        self.console.print(table)
        if winner is None:
            self.console.print("winner: none (no trial ended with a validation score): the final run uses the "
                               "recipe's own values")
        else:
            tied = [c.run.split("-", 1)[0] for c in candidates if c is not winner and c.score == winner.score]
            why = f"the {'lowest' if metric == 'mae' else 'highest'} validation {label}, " \
                  f"{metric_text(f'val_{metric}', winner.score, 4)}"
            if tied:
                why += f" (tied with {', '.join(tied)}: the lower validation loss decides)"
            values = ", ".join(f"{key.rsplit('.', 1)[-1]} {_value(v)}" for key, v in winner.values.items())
            self.console.print(f"[bold]winner: {winner.run.split('-', 1)[0]}[/bold] ({values}): {why}")
        self.console.print(f"search: {seconds:.1f} s (planned at most {planned:.0f} s)")

    def checked(self, check: Any) -> None:
        if not check.folds:
            self.console.print(f"stopping check: {check.why}")
            return
        choice = "every epoch on every row" if check.long else "early stopping"
        self.console.print(f"[bold]stopping check: {choice}[/bold] ({check.seconds:.1f} s): {check.why}")

    def final_planned(self, final: dict, winner: Any, values: dict, seed: int, left: float) -> None:
        what = "the winner" if winner is not None else "the recipe"
        members = final["members"]
        shape = (f"an ensemble of {members} members (seeds {seed}-{seed + members - 1}) trained as one batched "
                 f"model, predicting with their mean") if members > 1 else f"one model (seed {seed})"
        self.console.print(f"final: {what} as {shape}, up to {final['epochs']} epochs, in the {left:.1f} s left: "
                           f"{final['why']}")

    def finished(self, run_dir: Path, record: dict) -> None:
        phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in record.get("phases", {}).items())
        within = "within" if record.get("within_budget") else "[bold red]over[/bold red]"
        if record["final"].get("stopped_by_budget_at"):
            self.console.print(f"final run: stopped at epoch {record['final']['stopped_by_budget_at']}, where "
                               "another epoch would not have finished within the budget")
        self.console.print(f"time used: {record['seconds']:.1f} s, {within} the {record['budget_seconds']:g} s "
                           f"budget ({phases} s; counted {record['counted']})")
        search = f", {record['search']['dir']}/ the search (clftrain report {run_dir / record['search']['dir']})" \
            if record["search"].get("dir") else ""
        self.console.print(f"wrote {run_dir}: config.yaml is the config it settled on (clftrain fit "
                           f"{run_dir / 'config.yaml'} trains it again){search}, auto_fit.json what it chose and why")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)
