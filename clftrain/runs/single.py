"""A run of one seed: a setup_single() trained into its run directory through the shared lifecycle.

Everything that can fail on the user's input (data, device, model) is built before the run
directory is created, so a bad config leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clftrain.config import Config
from clftrain.inference import TrainedRun, check_same_run
from clftrain.runs import lifecycle, snapshots
from clftrain.store import rundir
from clftrain.training import Callback, SingleSetup, count_parameters, describe_model, load_weights, setup_single


class SingleRecorder(lifecycle.RunRecorder):
    """The run directory of one seed's run."""

    def __init__(self, run: SingleSetup, run_dir: Path) -> None:
        self.run, self.run_dir, self.config = run, run_dir, run.config

    def checkpoint(self, weights: dict | None = None, row: dict | None = None) -> dict[str, Any]:
        run = self.run
        payload = run.trainer.state()
        payload["metrics"] = self.final_row() or {}
        if weights is not None:  # best.pt: the best epoch's weights and metrics (no epoch in progress)
            payload.update(model=weights, epoch=int(row["epoch"]), metrics=row, partial=None)
        payload.update(
            **lifecycle.checkpoint_facts(run.config, run.dataset, run.trainer.loss_fn),
            callbacks={"best": run.best.state(), "early_stopping": run.stopper.state() if run.stopper else None},
            status=run.trainer.status,
        )
        return payload

    def best_version(self) -> int:
        return self.run.best.version

    def best_checkpoint(self) -> dict[str, Any]:
        return self.checkpoint(weights=self.run.best.best_state, row=self.run.best.best_row)

    def rows(self) -> list[dict[str, float]]:
        return self.run.trainer.history

    def summary(self) -> dict[str, Any]:
        run, trainer = self.run, self.run.trainer

        def metrics(row):
            return {k: v for k, v in (row or {}).items() if k not in ("lr", "seconds")}

        return {
            **lifecycle.run_summary(run.config, run.dataset, trainer, run.device, model_description(run)),
            "stopped_early": trainer.stopped_early,
            "monitor": run.best.monitor,
            "final": metrics(self.final_row()),  # the weights the run ends with
            "best": metrics(run.best.best_row),
            "weights": {"epoch": trainer.restored_from or trainer.epoch, "restored_best": trainer.restored_from is not None},
            **lifecycle.validation_facts(run.config),
        }

    def final_row(self) -> dict | None:
        """The metrics.csv row of the weights the model holds: the best epoch's after restore_best, else the last."""
        trainer = self.run.trainer
        if trainer.restored_from is not None:
            return self.run.best.best_row
        return trainer.history[-1] if trainer.history else None

    def trained_run(self) -> TrainedRun:
        run = self.run
        trained = TrainedRun(run.config, run.dataset, run.trainer.model, run.device, run.trainer.history)
        if run.trainer.restored_from is not None:
            trained.epoch, trained.recorded = run.trainer.restored_from, dict(run.best.best_row)
        return trained

    def restore(self, payload: dict, best_payload: dict | None) -> None:
        run = self.run
        run.trainer.restore(payload)
        states = payload["callbacks"]
        run.best.restore(states["best"], best_payload["model"] if best_payload else None)
        if run.stopper and states["early_stopping"]:
            run.stopper.restore(states["early_stopping"])


def model_description(run: SingleSetup) -> dict:
    model = run.trainer.model
    return {"layers": [layer.kind for layer in describe_model(model)], "parameters": count_parameters(model)}


def fit_single(config: Config, out: Path | None = None, runs_root: Path = Path("runs"),
               callbacks: list[Callback] = (), on_model=None, restart: Path | None = None) -> lifecycle.FitResult:
    """Train one config into a new run directory (or `restart` one from its start); return it and its summary."""
    run = setup_single(config)
    run_dir = lifecycle.on_main(run.trainer.world, lambda: lifecycle.restart_run(restart, run.config) if restart
                                else lifecycle.create_run(run.config, out, runs_root))
    return _train(run, run_dir, callbacks, on_model)


def resume_single(run_dir: Path, config: Config, payload: dict, overrides: list[str],
                  callbacks: list[Callback] = (), on_model=None) -> lifecycle.FitResult:
    """Continue a one-seed run from its last.pt (runs.fit.resume_run has checked the directory and overrides)."""
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    run = setup_single(config)
    check_same_run(payload, config, last)
    best_file = rundir.checkpoint_path(run_dir, rundir.BEST)
    best_payload = rundir.load_checkpoint(best_file) if best_file.is_file() else None
    load_weights(run.trainer.model, payload["model"], last)  # names the first mismatching layer
    recorder = SingleRecorder(run, run_dir)
    recorder.restore(payload, best_payload)
    if lifecycle.is_finished(run.trainer.epoch, config, payload):
        run.trainer.status = payload["status"]
        run.trainer.stopped_early = payload["status"] == "completed" and run.trainer.epoch < config.train.epochs
        missing = lifecycle.missing_end_steps(recorder, payload["status"])
        if missing:
            return lifecycle.FitResult(run_dir, lifecycle.on_main(
                run.trainer.world, lambda: lifecycle.finish(recorder, run.trainer, missing)))
    lifecycle.check_epochs_left(run_dir, run.trainer.epoch, config, payload)
    if overrides:
        lifecycle.on_main(run.trainer.world, lambda: lifecycle.write_config(run_dir, config))
    return _train(run, run_dir, callbacks, on_model, recorder, lifecycle.resumed_threads(config, payload))


def _train(run: SingleSetup, run_dir: Path, callbacks, on_model, recorder: SingleRecorder | None = None,
           threads: int | str | None = None):
    if on_model is not None:
        on_model(describe_model(run.trainer.model), count_parameters(run.trainer.model), run.device)
    recorder = recorder or SingleRecorder(run, run_dir)
    deciders = [run.best, *([run.stopper] if run.stopper else [])]
    if run.config.report and snapshots.wanted(run.dataset):  # the report's boundary over training
        callbacks = [*callbacks, snapshots.BoundarySnapshots(run_dir, run.dataset, run.config.train)]
    (summary,), signal = lifecycle.train(run.trainer, [recorder], deciders, callbacks, threads or run.config.threads)
    return lifecycle.FitResult(run_dir, summary, signal)
