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

A run with `model.ensemble: K` is such a run (seeds seed..seed+K-1, resolved by the config) that is one model:
its members' mean probability. Its summary.json's `final` and `best` are the ensemble's own loss and metric on
the validation and test splits, computed once at the end from the ensemble's predictions (last.pt's weights,
and best.pt's: each member at its own best epoch); `members` has the members' means, `spread` and
`replicas` each member's numbers, and metrics.csv each member's rows, as for seeds (the ensemble is not
evaluated per epoch). Its plots and report show the ensemble.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clftrain.config import Config
from clftrain.inference import ReplicaChoice, TrainedRun, check_same_run, median_replica
from clftrain.inference.trained import ensemble_run, ensemble_scores, seed_list
from clftrain.runs import lifecycle
from clftrain.store import rundir
from clftrain.training import (
    NOT_IN_ROWS, Callback, Group, Member, ReplicaSelect, StackedMLP, build_model, count_parameters, describe_model,
    distributed, mean_history, setup_group, slice_best, slice_state, stack_replicas,
)


class MemberRecorder(lifecycle.RunRecorder):
    """The run directory of one member of a group: a run with seeds."""

    def __init__(self, group: Group, member: Member, run_dir: Path) -> None:
        self.group, self.member, self.run_dir, self.config = group, member, run_dir, member.config

    def checkpoint(self, best: bool = False) -> dict[str, Any]:
        trainer, member = self.group.trainer, self.member
        payload = self.member_state()
        payload["metrics"] = self.final_rows()  # one row per replica
        payload["restored_from"] = "each replica's best epoch" if member.best.restored else None
        if best:  # each replica's weights and row at its own best epoch
            payload.update(model=self.best_weights(), metrics=member.best.rows, partial=None)
        payload.update(seeds=member.seeds, status=member.status(trainer.status),
                       **lifecycle.checkpoint_facts(member.config, self.group.dataset, trainer.loss.module))
        return payload

    def member_state(self) -> dict[str, Any]:
        return self.group.trainer.member_state(self.member)

    def best_weights(self) -> dict[str, torch.Tensor]:
        return self.member.best.state

    def stacked(self) -> StackedMLP:
        """A batched model of the member's replicas alone, as eval loads them (the group's own when the member is
        all of it). A sweep's group holds every run's replicas: computing them all for each run's figures cost
        the group's size per run (50 runs x 5 folds: 170 of a 178 s sweep went to figures)."""
        group = self.group
        if len(group.members) == 1:
            return group.trainer.model
        model = stack_replicas([self.config], group.dataset, group.device)
        model.load_part_state(0, group.trainer.model.part_state(self.member.part), "the run's replicas")
        return model

    def best_version(self) -> int:
        return self.member.best.version

    def best_checkpoint(self) -> dict[str, Any]:
        return self.checkpoint(best=True)

    def rows(self) -> list[dict[str, float]]:
        return self.member.history

    def summary(self) -> dict[str, Any]:
        """Final and best averaged over the replicas, their `spread`, and each replica's own rows (model.ensemble:
        final and best are the ensemble's)."""
        summary = self.replica_summary()
        if self.config.model.ensemble is not None:
            summary.update(self.ensemble_summary(summary))
        return summary

    def replica_summary(self) -> dict[str, Any]:
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

    def ensemble_summary(self, replicas: dict[str, Any]) -> dict[str, Any]:
        """model.ensemble: `final` and `best` of the ensemble itself, scored once here on the validation and test
        splits (the weights last.pt holds, and best.pt's); `members`: the members' means that seeds report."""
        member, seeds = self.member, self.member.seeds
        final_state, best_state = self.member_state()["model"], self.best_weights()
        final = {"epoch": replicas["final"].get("epoch"), **ensemble_scores(self.ensemble(final_state))}
        best = {"epoch": replicas["best"]["epoch"]}
        if best_state is not None and best["epoch"] is not None:
            best.update(final if member.best.restored else ensemble_scores(self.ensemble(best_state, rundir.BEST)))
            best["epoch"] = replicas["best"]["epoch"]
        diverged = [seed for seed, at in zip(seeds, member.diverged_at) if at]
        notes = [(f"member seed{'s' * (len(diverged) > 1)} {seed_list(diverged)} diverged: the ensemble's mean "
                  "probability is not finite where theirs is not; train again with a lower train.lr or "
                  "train.grad_clip")] if diverged else []
        mean = "prediction" if self.group.dataset.task.target == "value" else "probability"
        return {
            "ensemble": {"members": len(seeds), "seeds": seeds, "prediction": f"the members' mean {mean}",
                         "metrics": "final and best: the ensemble's, on the validation and test splits, computed "
                                    "once at the end; members, spread, replicas and metrics.csv: each member's"},
            "final": final, "best": best,
            "members": {"final": replicas["final"], "best": replicas["best"]},
            **({"notes": [*replicas.get("notes", []), *notes]} if notes else {}),
        }

    def ensemble(self, state: dict[str, torch.Tensor], checkpoint: str = rundir.LAST) -> TrainedRun:
        """The run's ensemble with the members' weights `state` (stacked)."""
        group, member = self.group, self.member
        restored = checkpoint == rundir.BEST or member.best.restored  # each member at its own best epoch
        return ensemble_run(member.config, group.dataset, state, group.device, member.history, checkpoint,
                            None if restored else group.trainer.epoch)

    def final_rows(self) -> list[dict | None]:
        """Each replica's row of the weights it holds: its best epoch's after restore_best, else its last."""
        return list(self.member.best.rows) if self.member.best.restored else self.member.last_rows()

    def trained_run(self) -> TrainedRun:
        """The member's median replica (by final test metric): what its plots show; model.ensemble: the ensemble."""
        group, member = self.group, self.member
        if member.config.model.ensemble is not None:
            return self.ensemble(self.member_state()["model"])
        rows = [row or {} for row in self.final_rows()]
        index = median_replica(rows, group.dataset.task)
        model = ReplicaSelect(self.stacked(), index)
        choice = ReplicaChoice(member.seeds, member.seeds[index], "median", group.dataset.task)
        epoch = int(rows[index]["epoch"]) if member.best.restored else group.trainer.epoch
        recorded = rows[index] if rows[index].get("epoch") == epoch else {}
        return TrainedRun(member.config, group.dataset, model, group.device, member.history, rundir.LAST,
                          epoch=epoch, recorded=recorded, replicas=choice)


class SpreadRecorder(MemberRecorder):
    """Rank 0's record of a run whose seeds are spread over a launch's ranks (training/seed_spread.py): the
    whole run, from what the ranks sent; the same files as from one process."""

    def __init__(self, group: Group, run_dir: Path) -> None:
        self.group, self.spread, self.run_dir, self.config = group, group.spread, run_dir, group.config

    @property
    def member(self) -> Member:
        """Every replica's records as one Member (no optimizer: nothing trains through it)."""
        spread, local = self.spread, self.group.members[0]
        whole = Member(self.config, part=0, first=0, optimizer=None, generators=[], frozen=None,
                       history=spread.history, diverged_at=list(spread.diverged_at),
                       stopped_at=list(spread.stopped_at))
        whole.best = RecordedBest(local.best.monitor, list(spread.best_rows), spread.restored, spread.best_version)
        return whole

    def member_state(self) -> dict[str, Any]:
        return self.spread.checkpoint_state()

    def best_weights(self) -> dict[str, torch.Tensor]:
        return self.spread.best_state()

    def best_version(self) -> int:
        return self.spread.best_version

    def rows(self) -> list[dict[str, float]]:
        return self.spread.history

    def save_now(self, epoch: int, due: bool) -> bool:
        return self.spread.states_epoch == epoch

    def stacked(self) -> StackedMLP:
        """Every replica in one batched model on this process, with the weights the ranks sent at the end."""
        group = self.group
        model = stack_replicas([self.config], group.dataset, group.device)
        model.load_part_state(0, self.spread.checkpoint_state()["model"], "the ranks' replicas")
        return model

    def summary(self) -> dict[str, Any]:
        sizes = [len(range(len(self.config.seeds))[seed_slice]) for seed_slice in self.spread.slices()]
        return {**super().summary(), "batch": {"replicas": len(self.config.seeds), "runs": 1, "per_process": sizes}}


@dataclass
class RecordedBest:
    """What ReplicaBest holds of a spread run's replicas, gathered on rank 0 (their weights: SeedSpread.best_state)."""

    monitor: str | None
    rows: list[dict | None]
    restored: bool
    version: int


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
    """Train one replica per seed of `config` into a new run directory (or `restart` one from its start); under
    torchrun each process trains its slice of the seeds."""
    group = setup_group([config], spread=distributed.launched())
    resolved = group.config
    run_dir = lifecycle.on_main(group.trainer.world, lambda: lifecycle.restart_run(restart, resolved) if restart
                                else lifecycle.create_run(resolved, out, runs_root))
    show_model(group, on_model)
    (summary,), signal = train_group(group, [run_dir], callbacks)
    return lifecycle.FitResult(run_dir, summary, signal)


def resume_seeds(run_dir: Path, config: Config, payload: dict, overrides: list[str],
                 callbacks: list[Callback] = (), on_model=None) -> lifecycle.FitResult:
    """Continue a multi-seed run from its last.pt (runs.fit.resume_run has checked the directory and overrides),
    on any number of processes: each takes its slice of the saved replicas."""
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    finished = lifecycle.is_finished(int(payload["epoch"]), config, payload)
    group = setup_group([config], spread=distributed.launched() and not finished)
    check_same_run(payload, config, last)
    member, trainer = group.members[0], group.trainer
    best_file = rundir.checkpoint_path(run_dir, rundir.BEST)
    best = rundir.load_checkpoint(best_file) if best_file.is_file() else None
    state = slice_state(payload, group.rows, member.seeds) if group.spread else payload
    trainer.model.load_part_state(member.part, state["model"], last)  # names the first mismatching layer
    trainer.restore_member(member, state, slice_best(best, group.rows) if group.spread else best)
    if group.spread:
        group.spread.restore(payload, best)
        trainer.history = mean_history(payload["history"])
    if finished:
        trainer.status = "diverged" if payload["status"] == "diverged" else "completed"
        recorder = MemberRecorder(group, member, run_dir)
        missing = lifecycle.missing_end_steps(recorder, payload["status"])
        if missing:  # on rank 0 alone under torchrun (the others wait for its summary)
            world = distributed.join_world(group.device) if distributed.launched() else None
            return lifecycle.FitResult(run_dir, lifecycle.on_main(
                world, lambda: lifecycle.finish(recorder, trainer, missing)))
    lifecycle.check_epochs_left(run_dir, trainer.epoch, config, payload)
    show_model(group, on_model)
    if overrides:
        lifecycle.on_main(trainer.world, lambda: lifecycle.write_config(run_dir, config))
    (summary,), signal = train_group(group, [run_dir], callbacks, lifecycle.resumed_threads(config, payload))
    return lifecycle.FitResult(run_dir, summary, signal)


def show_model(group: Group, on_model) -> None:
    if on_model is None:
        return
    solo = solo_model(group, group.members[0])
    replicas = len(group.config.seeds)
    where = f"{replicas} replica{'s' * (replicas > 1)} trained as one batched model"
    if group.config.model.ensemble is not None:
        where = (f"an ensemble of {replicas} members (seeds {seed_list(group.config.seeds)}) trained as one "
                 "batched model, predicting with their mean")
    if group.spread is not None:
        sizes = sorted({len(range(replicas)[part]) for part in group.spread.slices()})
        where = (f"{replicas} replicas over {group.trainer.world.size} processes, "
                 f"{' or '.join(map(str, sizes))} per process as one batched model")
    on_model(describe_model(solo), count_parameters(solo), f"{group.device}: {where}")


def train_group(group: Group, run_dirs: list[Path], callbacks: list[Callback] = (),
                threads: int | str | None = None) -> tuple[list[dict], str | None]:
    """Train a group, each member into its run directory; the members' summaries and the signal that stopped it.
    `threads`: a resumed run's (lifecycle.resumed_threads), else the config's."""
    if group.spread is not None:
        recorders = [SpreadRecorder(group, run_dirs[0])] if group.trainer.world.is_main else []
    else:
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
