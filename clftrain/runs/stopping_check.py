"""`clftrain fit DATA`'s stopping check: early stopping on a validation split, or every epoch on every row?

The recipe stops early on a validation split (15% of the training rows) and keeps the best epoch's weights. Most
tables want that; a few (bench/quality.py's cars: 406 cars, trees and a long-trained MLPClassifier ahead) want the
opposite, every row trained on for many epochs (README, 'The one command'). A 60-row validation split cannot tell
the two apart, so the check cross-validates both on the recipe's settings, before any search:

  * one batched model of FOLDS replicas (dataset.cv_folds: replica k trains on every fold but fold k and is scored
    on fold k), trained for LONG_FACTOR times the recipe's epochs without early stopping, every epoch evaluated;
  * "early stopping" scores, per fold, the epoch the config's train.early_stopping would have ended on and the
    weights it keeps (replayed on the fold's history: stopping does not change the epochs before it stops);
  * "every epoch" scores, per fold, the last epoch.

Two things favour early stopping in the folds that the final run does not share: its score is chosen on the rows
it is scored on (biased upwards; every epoch's is not), and the final early-stopped run trains on 85% of the rows
where an every-epoch run trains on all of them. The check therefore keeps early stopping only when it leads by more
than one standard error of its per-fold leads (the one-standard-error rule, ESL 7.10). Under a plain "the higher
mean wins", bench-quality's cars seed 0 kept early stopping on a 0.9-point lead of standard error 2.3 points (75.6%
on test; every epoch: 76.8%); where early stopping stayed it led by 1.4 to 9.4 standard errors (README, 'The one
command'). Trained in memory and thrown away; its numbers go to auto_fit.json.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from clftrain.errors import UserError

FOLDS = 4  # measured with 5 (README); 4 so that on cars the check and a final run fit the default 60 s budget
LONG_FACTOR = 2  # "every epoch" trains twice the recipe's epochs (the preset's 256: 512)
TIE = 1e-9  # a lead equal to its standard error (in floating point) is not more than it
OVERRUN = 1.5  # the check is stopped (and early stopping kept) past this many times its planned seconds


@dataclass
class CheckResult:
    choice: str  # "early_stopping" or "every_epoch"
    why: str
    folds: int = 0
    epochs: int = 0
    early_stopping: list[float] = field(default_factory=list)  # per fold: the score of the epoch it keeps
    stopped_at: list[int] = field(default_factory=list)  # per fold: the epoch it would have stopped on
    every_epoch: list[float] = field(default_factory=list)  # per fold: the last epoch's score
    lead: float = 0.0  # early stopping's mean lead over every epoch (positive: it scores better)
    standard_error: float = 0.0  # of that mean, over the folds
    seconds: float = 0.0
    signal: str | None = None  # a signal that stopped the check (the command stops there)

    @property
    def long(self) -> bool:
        return self.choice == "every_epoch"

    def record(self) -> dict[str, Any]:
        return {"choice": self.choice, "why": self.why, "folds": self.folds, "epochs": self.epochs,
                "early_stopping_scores": self.early_stopping, "early_stopping_epochs": self.stopped_at,
                "every_epoch_scores": self.every_epoch, "early_stopping_lead": self.lead,
                "standard_error": self.standard_error, "seconds": round(self.seconds, 3)}


def skipped(why: str) -> CheckResult:
    return CheckResult("early_stopping", why)


def long_settings(epochs: int) -> dict[str, Any]:
    """The final run's keys when every epoch wins: no validation split, no early stopping, the check's epochs."""
    return {"dataset.val_size": 0.0, "train.early_stopping": None, "train.epochs": epochs}


def check_settings(epochs: int) -> dict[str, Any]:
    return {"dataset.cv_folds": FOLDS, "dataset.val_size": 0.0, "train.early_stopping": None,
            "train.epochs": epochs, "train.eval_every": 1, "seeds": None, "report": False}


def run_check(config, stopping, restore_best: bool, seconds_allowed: float) -> CheckResult:
    """Train `config` (check_settings applied) in memory and compare the two ways to stop, as the module says.
    `stopping`: the recipe's train.early_stopping, replayed on each fold's history. A signal stops the check
    after a step; the result carries it for the caller to stop the command."""
    import time

    from clftrain.runs.lifecycle import train_in_memory
    from clftrain.training import setup_group

    started = time.monotonic()
    try:
        group = setup_group([config])
    except UserError as exc:  # too few rows of a class for the folds: the recipe as it is
        return skipped(f"not cross-validated: {exc}")
    trainer = group.trainer
    trainer.callbacks = []
    received = train_in_memory(trainer, config.threads, OVERRUN * seconds_allowed)
    seconds = time.monotonic() - started
    if received:
        return CheckResult("early_stopping", f"interrupted by {received[0]}", seconds=seconds, signal=received[0])
    if trainer.status != "completed":
        return CheckResult("early_stopping", f"stopped past {OVERRUN:g}x its planned {seconds_allowed:.1f} s; the "
                           "recipe's early stopping kept", seconds=seconds)
    metric = f"val_{group.dataset.task.metric}"
    higher = group.dataset.task.higher_is_better
    result = compare(replica_histories(trainer), metric, higher, stopping, restore_best)
    result.seconds, result.epochs = seconds, config.train.epochs
    return result


def replica_histories(trainer) -> list[list[dict]]:
    """Each replica's evaluated rows, in epoch order (the check's one member holds every fold's replica)."""
    rows = [row for member in trainer.members for row in member.history]
    seeds = sorted({row["seed"] for row in rows})
    return [[row for row in rows if row["seed"] == seed] for seed in seeds]


def compare(histories: list[list[dict]], metric: str, higher: bool, stopping, restore_best: bool) -> CheckResult:
    """Every epoch wins unless early stopping leads it by more than one standard error of the folds' leads
    (the one-standard-error rule, Hastie, Tibshirani & Friedman, ESL 7.10), as the module says why."""
    kept = [early_stopped(rows, stopping, restore_best) for rows in histories]
    early = [row[metric] for row, _ in kept]
    last = [rows[-1][metric] for rows in histories]
    leads = [(e - l) if higher else (l - e) for e, l in zip(early, last)]  # early stopping's lead, per fold
    lead = statistics.fmean(leads)
    error = statistics.stdev(leads) / math.sqrt(len(leads)) if len(leads) > 1 else 0.0
    long = lead <= error + TIE
    label = metric.removeprefix("val_")
    why = (f"over {len(histories)} folds, the last of {histories[0][-1]['epoch']} epochs scores {label} "
           f"{statistics.fmean(last):.4f} against early stopping's {statistics.fmean(early):.4f} (median stop at "
           f"epoch {statistics.median(epoch for _, epoch in kept):g}): early stopping leads by {lead:+.4f}, "
           f"standard error {error:.4f}; "
           + ("every epoch on every row wins (early stopping must lead by more than one standard error: its "
              "score is chosen on the rows it is scored on)" if long else "early stopping wins"))
    return CheckResult("every_epoch" if long else "early_stopping", why, folds=len(histories),
                       early_stopping=[round(v, 6) for v in early], stopped_at=[epoch for _, epoch in kept],
                       every_epoch=[round(v, 6) for v in last], lead=round(lead, 6), standard_error=round(error, 6))


def early_stopped(rows: list[dict], stopping, restore_best: bool) -> tuple[dict, int]:
    """(the row whose weights early stopping ends with, the epoch it stops on), replayed on one replica's rows
    as training/callbacks.py's EarlyStopping and BestTracker decide them."""
    from clftrain.training.callbacks import improves, monitor_mode

    monitor = stopping.monitor
    mode = monitor_mode(monitor, stopping.mode)
    best = patience_best = None
    best_epoch = 0
    for row in rows:
        value = row[monitor]
        if improves(value, best, monitor, mode):
            best = row
        if improves(value, patience_best, monitor, mode, stopping.min_delta):
            patience_best, best_epoch = row, int(row["epoch"])
        elif int(row["epoch"]) - best_epoch >= stopping.patience:
            return (best if restore_best and best is not None else row), int(row["epoch"])
    return (best if restore_best and best is not None else rows[-1]), int(rows[-1]["epoch"])
