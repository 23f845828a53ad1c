"""`clftrain fit` of a config with `seeds`: a batch of replicas (multiseed.py) trained into run directories.

The run directory is fit's (experiment.py), with the replicas side by side:
  metrics.csv        a `seed` column after `epoch`: one row per replica per evaluated epoch
  checkpoints/*.pt   `seeds`, and `model` with every replica's tensors stacked along a first
                     dimension (keys as in a one-seed checkpoint); last.pt adds the optimizer,
                     scheduler, shuffling and dropout generators (resume); best.pt holds each
                     replica's weights at its own best epoch, `metrics` one best row per replica
  summary.json       `final`, `best`: means over the replicas; `spread`: mean, std, min and max
                     of every metric; `replicas`: each seed's own final and best rows
  plots/             curves: a mean line in a min-max band; boundary, confusion: the median replica
`fit_experiment` and `resume_experiment` hand configs with seeds to `fit_seeds` / `resume_seeds`.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import torch

from clftrain import rundir
from clftrain.config import Config, config_to_yaml
from clftrain.errors import UserError
from clftrain.experiment import (
    FitResult, _check_same_run, _stop_on_signals, checkpoint_facts, run_facts, training_threads_of,
)
from clftrain.model import build_model, count_parameters, describe_model
from clftrain.multiseed import NOT_IN_ROWS, Batch, Member, prepare_batch
from clftrain.replicas import ReplicaSelect
from clftrain.train import Callback
from clftrain.trained import ReplicaChoice, TrainedRun, median_replica


def fit_seeds(config: Config, out: Path | None = None, runs_root: Path = Path("runs"),
              callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Train one replica per seed of `config` into a new run directory."""
    batch = prepare_batch([config])
    run_dir = rundir.create_run_dir(config.name, out, runs_root)
    show_model(batch, on_model)
    write_config(run_dir, batch.members[0].config)
    summaries, signal = train_batch(batch, [run_dir], callbacks)
    return FitResult(run_dir, summaries[0], signal)


def resume_seeds(run_dir: Path, config: Config, payload: dict, overrides: list[str],
                 callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Continue a multi-seed run from its last.pt (resume_experiment has checked the directory and overrides)."""
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    batch = prepare_batch([config])
    _check_same_run(payload, config, last)
    member, trainer = batch.members[0], batch.trainer
    best_file = rundir.checkpoint_path(run_dir, rundir.BEST)
    best = rundir.load_checkpoint(best_file) if best_file.is_file() else None
    trainer.model.load_part_state(member.part, payload["model"], last)  # names the first mismatching layer
    trainer.restore_member(member, payload, best)
    if trainer.epoch >= config.train.epochs:
        raise UserError(f"{run_dir} already ran {trainer.epoch} of {config.train.epochs} epochs; "
                        f"to train longer: clftrain fit --resume {run_dir} --set train.epochs=N")
    show_model(batch, on_model)
    if overrides:
        write_config(run_dir, config)
    summaries, signal = train_batch(batch, [run_dir], callbacks)
    return FitResult(run_dir, summaries[0], signal)


def write_config(run_dir: Path, config: Config) -> None:
    try:
        rundir.atomic_write_text(run_dir / rundir.CONFIG, config_to_yaml(config))
    except OSError as exc:
        raise UserError(f"cannot write to run directory {run_dir}: {exc.strerror}") from None


def show_model(batch: Batch, on_model) -> None:
    if on_model is None:
        return
    solo = _solo_model(batch, batch.members[0])
    replicas = batch.trainer.model.replicas
    on_model(describe_model(solo), count_parameters(solo),
             f"{batch.device}: {replicas} replica{'s' * (replicas > 1)} trained as one batched model")


def _solo_model(batch: Batch, member: Member) -> torch.nn.Sequential:
    data, config = batch.dataset, member.config
    return build_model(config.model, data.n_features, data.task.out_features(data.n_classes), config.train.loss)


# ---------------------------------------------------------------------- training into run directories
def train_batch(batch: Batch, run_dirs: list[Path], callbacks: list[Callback] = ()) -> tuple[list[dict], str | None]:
    """Train a batch, each member into its run directory; the members' summaries and the signal that stopped it."""
    trainer = batch.trainer
    writers = [ReplicaRunWriter(batch, member, run_dir) for member, run_dir in zip(batch.members, run_dirs)]
    trainer.callbacks = [*callbacks, *writers]
    try:
        for member, run_dir in zip(batch.members, run_dirs):
            rundir.write_json(run_dir / rundir.SUMMARY, {"name": member.config.name, "status": "running",
                                                         "epochs_run": trainer.epoch})
        with _stop_on_signals(trainer) as received, training_threads_of(trainer, batch.members[0].config) as threads:
            trainer.fit()
        summaries = []
        for member, run_dir in zip(batch.members, run_dirs):
            summaries.append({**summary(batch, member), "threads": threads})
            rundir.write_json(run_dir / rundir.SUMMARY, summaries[-1])
            median_run(batch, member).draw_plots(run_dir)
    except BaseException as exc:
        for member, run_dir in zip(batch.members, run_dirs):
            _mark_failed(run_dir, member, trainer.epoch, exc)
        raise
    return summaries, received[0] if received else None


def median_run(batch: Batch, member: Member) -> TrainedRun:
    """The member's median replica (by final test metric) as a TrainedRun: what its plots show."""
    rows = [row or {} for row in member.last_rows()]
    metric = batch.dataset.task.metric
    index = median_replica(rows, f"test_{metric}", metric != "mae")
    model = ReplicaSelect(batch.trainer.model, member.first + index)
    choice = ReplicaChoice(member.seeds, member.seeds[index], "median", metric)
    epoch = batch.trainer.epoch
    recorded = rows[index] if rows[index].get("epoch") == epoch else {}
    return TrainedRun(member.config, batch.dataset, model, batch.device, member.history, rundir.LAST,
                      epoch=epoch, recorded=recorded, replicas=choice)


class ReplicaRunWriter(Callback):
    """experiment.RunWriter for one member: metrics.csv, last.pt and best.pt every log_every epochs and at the end."""

    def __init__(self, batch: Batch, member: Member, run_dir: Path) -> None:
        self.batch, self.member, self.run_dir = batch, member, run_dir
        self.every = member.config.train.log_every
        self._best_written = member.best.version

    def on_epoch_end(self, trainer, row: dict[str, float]) -> None:
        if trainer.epoch % self.every == 0:
            self.save()

    def on_fit_end(self, trainer) -> None:
        self.save()

    def save(self) -> None:
        best = self.member.best
        try:
            # best.pt first: a crash between the two leaves last.pt one save behind, never ahead.
            if best.state is not None and best.version != self._best_written:
                rundir.save_checkpoint(rundir.checkpoint_path(self.run_dir, rundir.BEST), self.checkpoint(best=True))
                self._best_written = best.version
            rundir.save_checkpoint(rundir.checkpoint_path(self.run_dir, rundir.LAST), self.checkpoint())
            rundir.write_metrics(self.run_dir / rundir.METRICS, self.member.history)
        except OSError as exc:
            raise UserError(
                f"cannot save to {self.run_dir} at epoch {self.batch.trainer.epoch}: {exc.strerror or exc}; "
                "the previous checkpoint is intact: free space (or fix permissions) and resume with "
                f"clftrain fit --resume {self.run_dir}"
            ) from None

    def checkpoint(self, best: bool = False) -> dict:
        """Session.checkpoint for a member: the loop's state plus what eval, predict and resume need."""
        trainer, member, data = self.batch.trainer, self.member, self.batch.dataset
        payload = trainer.member_state(member)
        payload["metrics"] = member.last_rows()  # one row per replica
        if best:  # each replica's weights and row at its own best epoch
            payload.update(model=member.best.state, metrics=member.best.rows, partial=None)
        payload.update(seeds=member.seeds, status=member.status(trainer.status),
                       **checkpoint_facts(member.config, data, trainer.loss.module))
        return payload


def _mark_failed(run_dir: Path, member: Member, epoch: int, exc: BaseException) -> None:
    """Leave a failed run recognisable: summary.json says so and why."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        rundir.write_json(run_dir / rundir.SUMMARY, {
            "name": member.config.name, "status": status, "epochs_run": epoch, "seeds": member.seeds,
            "error": str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"})
    except OSError:
        pass  # the original error matters more than this note


# ---------------------------------------------------------------------- summary.json
def summary(batch: Batch, member: Member) -> dict:
    """experiment._summary's keys, with `final` and `best` averaged over the replicas, their `spread`, and each
    replica's own rows under `replicas`."""

    trainer, data, config = batch.trainer, batch.dataset, member.config
    finals, bests = member.last_rows(), member.best.rows
    best_epochs = [int(row["epoch"]) for row in bests if row]
    solo = _solo_model(batch, member)
    return {
        "name": config.name,
        "status": member.status(trainer.status),
        "task": data.task.name,
        "seeds": member.seeds,
        "epochs_run": trainer.epoch,
        "epochs_planned": config.train.epochs,
        **trainer.epoch_in_progress(),  # interrupted between mini-batches
        "stopped_early": False,
        "monitor": member.best.monitor,
        "final": average(finals),
        "best": {**average(bests), "epoch": statistics.median_low(best_epochs) if best_epochs else None},
        "spread": {"final": spread(finals), "best": spread(bests)},
        "replicas": [_replica(seed, final, best, diverged) for seed, final, best, diverged
                     in zip(member.seeds, finals, bests, member.diverged_at)],
        "seconds": round(trainer.seconds, 3),
        "device": str(batch.device),
        "model": {"layers": [layer.kind for layer in describe_model(solo)], "parameters": count_parameters(solo)},
        "batch": {"replicas": trainer.model.replicas, "runs": len(trainer.members)},  # trained together
        **run_facts(data),
    }


def _replica(seed: int, final: dict | None, best: dict | None, diverged_at: int | None) -> dict:
    def metrics(row):  # a diverged replica's inf and NaN become null: JSON has neither
        return {k: v if math.isfinite(v) else None for k, v in (row or {}).items() if k not in ("seed", "lr", "seconds")}

    return {"seed": seed, "status": "diverged" if diverged_at else "completed",
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
