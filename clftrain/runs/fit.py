"""`clftrain fit`: a config to a new run, or a run directory continued; one seed or many, each by its own runner.

The resume checks every kind of run shares (the directory, the keys `--set` may change, the
last checkpoint) are made here, once, before the runner for the run's kind takes over.
"""

from __future__ import annotations

from pathlib import Path

from clftrain.config import Config, load_config
from clftrain.errors import UserError
from clftrain.runs.lifecycle import RESUMABLE_KEYS, FitResult, hold_run, write_summary
from clftrain.runs.seeds import fit_seeds, resume_seeds
from clftrain.runs.single import fit_single, resume_single
from clftrain.runs.tracking import check_trackers
from clftrain.store import rundir
from clftrain.training import Callback, distributed


def fit_run(config: Config, out: Path | None = None, runs_root: Path = Path("runs"),
            callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Train one config into a new run directory (`seeds`: one replica per seed, as one batched model)."""
    check_trackers(config, out if out is not None else runs_root / "(new run)")  # its folder holds MLflow's store
    fit = fit_single if config.seeds is None else fit_seeds
    return fit(config, out, runs_root, callbacks, on_model)


def resume_run(run_dir: Path, overrides: list[str] | None = None,
               callbacks: list[Callback] = (), on_model=None) -> FitResult:
    """Continue a run from its directory alone: config.yaml and checkpoints/last.pt; refused while another
    process trains it (the run directory's lock, held from here to the end)."""
    rundir.config_of(run_dir)
    with hold_run(run_dir):
        return _resume(run_dir, overrides, callbacks, on_model)


def _resume(run_dir: Path, overrides: list[str] | None, callbacks, on_model) -> FitResult:
    config_file = rundir.config_of(run_dir)
    overrides = overrides or []
    changed = {item.partition("=")[0].strip() for item in overrides} - RESUMABLE_KEYS
    if changed:
        raise UserError(f"--set {', '.join(sorted(changed))}: only {', '.join(sorted(RESUMABLE_KEYS))} "
                        "can change when resuming; start a new run to change anything else")
    config = load_config(config_file, overrides)
    check_trackers(config, run_dir)
    last = rundir.checkpoint_path(run_dir, rundir.LAST)
    if not last.is_file():  # stopped before its first save (a kill in its first seconds): start it over here
        fit = fit_single if config.seeds is None else fit_seeds
        result = fit(config, callbacks=callbacks, on_model=on_model, restart=run_dir)
        result.summary.setdefault("notes", []).insert(0, f"{run_dir} had no checkpoint (it stopped before its first "
                                                         "save): trained it again from the start, in place")
        if distributed.main_process():
            write_summary(run_dir, result.summary)
        return result
    payload = rundir.load_checkpoint(last)
    scheduler = config.train.scheduler
    if scheduler and scheduler.name == "onecycle" and any(item.startswith("train.epochs") for item in overrides):
        raise UserError("a onecycle schedule is planned over the original epochs and cannot be extended; "
                        "start a new run with more epochs")
    resume = resume_single if config.seeds is None else resume_seeds
    return resume(run_dir, config, payload, overrides, callbacks, on_model)
