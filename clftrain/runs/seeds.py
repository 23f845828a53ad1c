"""Runs with `seeds`: a group of replicas (training/replica_trainer.py) trained into run directories through
the shared lifecycle; a sweep (sweep.py) trains several such runs as one group.

The run directory is a one-seed run's, with the replicas side by side:
  metrics.csv        a `seed` column after `epoch`: one row per replica per evaluated epoch
  checkpoints/*.pt   `seeds`, and `model` with every replica's tensors stacked along a first
                     dimension (keys as in a one-seed checkpoint); last.pt adds the optimizer,
                     scheduler, shuffling and dropout generators (resume); best.pt holds each
                     replica's weights at its own best epoch, `metrics` one best row per replica
  summary.json       `final`, `best`: means over the replicas; `spread`: mean, std, min and max
                     of every metric; `replicas`: each seed's own final and best rows
  plots/             curves: a mean line in a min-max band; boundary, confusion: the median replica
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import torch

from clftrain.config import Config
from clftrain.inference import ReplicaChoice, TrainedRun, check_same_run, median_replica
from clftrain.runs import lifecycle
from clftrain.store import rundir
from clftrain.training import (
    NOT_IN_ROWS, Callback, Group, Member, ReplicaSelect, build_model, check_not_launched, count_parameters,
    describe_model, setup_group,
)


class MemberRecorder(lifecycle.RunRecorder):
    """The run directory of one member of a group: a run with seeds."""

    def __init__(self, group: Group, member: Member, run_dir: Path) -> None:
        self.group, self.member, self.run_dir, self.config = group, member, run_dir, member.config

    def checkpoint(self, best: bool = False) -> dict[str, Any]:
        trainer, member = self.group.trainer, self.member
        payload = trainer.member_state(member)
        payload["metrics"] = self.final_rows()  # one row per replica
        payload["restored_from"] = "each replica's best epoch" if member.best.restored else None
        if best:  # each replica's weights and row at its own best epoch
            payload.update(model=member.best.state, metrics=member.best.rows, partial=None)
        payload.update(seeds=member.seeds, status=member.status(trainer.status),
                       **lifecycle.checkpoint_facts(member.config, self.group.dataset, trainer.loss.module))
        return payload

    def best_version(self) -> int:
        return self.member.best.version

    def best_checkpoint(self) -> dict[str, Any]:
        return self.checkpoint(best=True)

    def rows(self) -> list[dict[str, float]]:
        return self.member.history

    def summary(self) -> dict[str, Any]:
        """Final and best averaged over the replicas, their `spread`, and each replica's own rows."""
        group, member, trainer = self.group, self.member, self.group.trainer
        finals, bests = self.final_rows(), member.best.rows
        best_epochs = [int(row["epoch"]) for row in bests if row]
        return {
            **lifecycle.run_summary(member.config, group.dataset, trainer, group.device, model_description(group, member)),
            "status": member.status(trainer.status),
            "epochs_run": member.epochs_run(trainer.epoch),
            "seeds": member.seeds,
            "stopped_early": any(member.stopped_at),
            "monitor": member.best.monitor,
            "final": average(finals),
            "best": {**average(bests), "epoch": statistics.median_low(best_epochs) if best_epochs else None},
            "spread": {"final": spread(finals), "best": spread(bests)},
            "replicas": [_replica(seed, final, best, diverged, stopped) for seed, final, best, diverged, stopped
                         in zip(member.seeds, finals, bests, member.diverged_at, member.stopped_at)],
            "batch": {"replicas": trainer.model.replicas, "runs": len(trainer.members)},  # trained together
            "weights": {"epoch": statistics.median_low(best_epochs) if member.best.restored and best_epochs
                        else trainer.epoch, "restored_best": member.best.restored},
            **lifecycle.validation_facts(member.config),
        }

    def final_rows(self) -> list[dict | None]:
        """Each replica's row of the weights it holds: its best epoch's after restore_best, else its last."""
        return list(self.member.best.rows) if self.member.best.restored else self.member.last_rows()

    def trained_run(self) -> TrainedRun:
        """The member's median replica (by final test metric): what its plots show."""
        group, member = self.group, self.member
        rows = [row or {} for row in self.final_rows()]
        index = median_replica(rows, group.dataset.task)
        model = ReplicaSelect(group.trainer.model, member.first + index)
        choice = ReplicaChoice(member.seeds, member.seeds[index], "median", group.dataset.task)
        epoch = int(rows[index]["epoch"]) if member.best.restored else group.trainer.epoch
        recorded = rows[index] if rows[index].get("epoch") == epoch else {}
        return TrainedRun(member.config, group.dataset, model, group.device, member.history, rundir.LAST,
                          epoch=epoch, recorded=recorded, replicas=choice)


def solo_model(group: Group, member: Member) -> torch.nn.Sequential:
    """An untrained replica of the member's architecture: what its console table and summary describe."""
    data, config = group.dataset, member.config
    return build_model(config.model, data.n_features, data.task.out_features(data.n_classes), config.train.loss)


def model_description(group: Group, member: Member) -> dict:
    solo = solo_model(group, member)
    return {"layers": [layer.kind for layer in describe_model(solo)], "parameters": count_parameters(solo)}


# ---------------------------------------------------------------------- fit and resume
def fit_seeds(config: Config, out: Path | None = None, runs_root: Path = Path("runs"),
              callbacks: list[Callback] = (), on_model=None, restart: Path | None = None) -> lifecycle.FitResult:
    """Train one replica per seed of `config` into a new run directory (or `restart` one from its start)."""
    check_not_launched()
    group = setup_group([config])
    resolved = group.members[0].config
    run_dir = lifecycle.restart_run(restart, resolved) if restart else lifecycle.create_run(resolved, out, runs_root)
    show_model(group, on_model)
    (summary,), signal = train_group(group, [run_dir], callbacks)
    return lifecycle.FitResult(run_dir, summary, signal)


def resume_seeds(run_dir: Path, config: Config, payload: dict, overrides: list[str],
                 callbacks: list[Callback] = (), on_model=None) -> lifecycle.FitResult:
    """Continue a multi-seed run from its last.pt (runs.fit.resume_run has checked the directory and overrides)."""
    check_not_launched()
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    group = setup_group([config])
    check_same_run(payload, config, last)
    member, trainer = group.members[0], group.trainer
    best_file = rundir.checkpoint_path(run_dir, rundir.BEST)
    best = rundir.load_checkpoint(best_file) if best_file.is_file() else None
    trainer.model.load_part_state(member.part, payload["model"], last)  # names the first mismatching layer
    trainer.restore_member(member, payload, best)
    if lifecycle.is_finished(trainer.epoch, config, payload):
        trainer.status = "diverged" if payload["status"] == "diverged" else "completed"
        recorder = MemberRecorder(group, member, run_dir)
        missing = lifecycle.missing_end_steps(recorder, payload["status"])
        if missing:
            return lifecycle.FitResult(run_dir, lifecycle.finish(recorder, trainer, missing))
    lifecycle.check_epochs_left(run_dir, trainer.epoch, config, payload)
    show_model(group, on_model)
    if overrides:
        lifecycle.write_config(run_dir, config)
    (summary,), signal = train_group(group, [run_dir], callbacks, lifecycle.resumed_threads(config, payload))
    return lifecycle.FitResult(run_dir, summary, signal)


def show_model(group: Group, on_model) -> None:
    if on_model is None:
        return
    solo = solo_model(group, group.members[0])
    replicas = group.trainer.model.replicas
    on_model(describe_model(solo), count_parameters(solo),
             f"{group.device}: {replicas} replica{'s' * (replicas > 1)} trained as one batched model")


def train_group(group: Group, run_dirs: list[Path], callbacks: list[Callback] = (),
                threads: int | str | None = None) -> tuple[list[dict], str | None]:
    """Train a group, each member into its run directory; the members' summaries and the signal that stopped it.
    `threads`: a resumed run's (lifecycle.resumed_threads), else the config's."""
    recorders = [MemberRecorder(group, member, run_dir) for member, run_dir in zip(group.members, run_dirs)]
    return lifecycle.train(group.trainer, recorders, group.deciders(), callbacks,
                           threads or group.members[0].config.threads)


# ---------------------------------------------------------------------- summary.json statistics
def _replica(seed: int, final: dict | None, best: dict | None, diverged_at: int | None,
             stopped_at: int | None) -> dict:
    def metrics(row):  # a diverged replica's inf and NaN become null: JSON has neither
        return {k: v if math.isfinite(v) else None for k, v in (row or {}).items() if k not in ("seed", "lr", "seconds")}

    return {"seed": seed, "status": "diverged" if diverged_at else "completed", "stopped_early": stopped_at is not None,
            "epochs_run": int(final["epoch"]) if final else 0, "final": metrics(final), "best": metrics(best)}


def _metric_values(rows: list[dict | None]) -> dict[str, list[float]]:
    """Metric name -> the finite values the replicas' rows hold (a diverged replica's inf and NaN left out)."""
    present = [row for row in rows if row]
    keys = [k for k in (present[0] if present else {}) if k not in NOT_IN_ROWS]
    return {k: [row[k] for row in present if math.isfinite(row[k])] for k in keys}


def average(rows: list[dict | None]) -> dict[str, float | None]:
    """Mean of each metric over the replicas (`epoch`: the latest row's)."""
    present = [row for row in rows if row]
    means = {k: statistics.fmean(v) if v else None for k, v in _metric_values(rows).items()}
    return {"epoch": int(max(row["epoch"] for row in present)), **means} if present else {}


def spread(rows: list[dict | None]) -> dict[str, dict[str, float]]:
    """Per metric across the replicas: mean, std (sample standard deviation; 0 for one replica), min, max."""
    return {
        k: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "min": min(v),
            "max": max(v), "replicas": len(v)}
        for k, v in _metric_values(rows).items() if v
    }
