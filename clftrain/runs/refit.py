"""`clftrain sweep --refit`: the sweep's winner trained again on every row it was chosen with, as its own run.

A sweep's runs hold rows back to rank them (a validation split, or each fold in turn with --cv); once the
ranking has chosen, those rows are better spent training. The refit is the winner's config with the
validation split folded back into the training rows (dataset.val_size: 0, no cv_folds), one model (the
first seed; model.ensemble stays an ensemble) and no decision left that needs held-out rows: early stopping
becomes a fixed number of epochs, the median of the winner's replicas' (folds' or seeds') best epochs (or
of the epochs they ran, without restore_best), and a plateau schedule is left out. The test split is the
sweep's own (the same dataset.seed and test_size draw it), so the refit's test score stands beside the
sweep's. It is written to SWEEP_DIR/refit, a run directory like any other (eval, predict, plot, report,
export), and sweep.json records what it was made from and why.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clftrain.config import Config, validate_config
from clftrain.errors import UserError
from clftrain.store import rundir

REFIT_DIR = "refit"


@dataclass
class Refit:
    config: Config  # what the refit trains
    winner: str  # the winning run's directory name in the sweep
    epochs: int
    why: list[str]  # what changed from the winner's config, and why

    def record(self) -> dict[str, Any]:
        return {"run": REFIT_DIR, "from": self.winner, "epochs": self.epochs, "changes": self.why}


def plan_refit(plan, result) -> Refit:
    """The refit of `result`'s best run (a runs.sweep.SweepResult of `plan`)."""
    row = next((row for row in result.rows if _scored(row.get(result.ranked_by))), None)
    if row is None:
        raise UserError(f"no run of {result.sweep_dir} has a finite {result.ranked_by}: there is no winner to "
                        "refit; see sweep.csv")
    combo = next(c for c in plan.combinations if c.dir_name == row["run"])
    summary = rundir.read_json(result.sweep_dir / combo.dir_name / rundir.SUMMARY, "summary")
    config = combo.config
    data = config.to_dict()
    why = []
    replicas = "folds" if config.dataset.cv_folds else "seeds"
    if config.dataset.cv_folds:
        why.append(f"one model trained on the rows of all {config.dataset.cv_folds} folds")
    else:
        why.append("trained on the training and validation rows together")
    data["dataset"].update(cv_folds=None, val_size=0.0)
    data["seeds"], data["seed"] = None, config.seeds[0] if config.model.ensemble is None else config.seed
    epochs = config.train.epochs
    if config.train.early_stopping is not None:
        epochs = _chosen_epochs(summary, config.train.restore_best)
        key = "best epochs by " + summary.get("monitor", "val_loss") if config.train.restore_best else "stopping epochs"
        why.append(f"{epochs} epochs, the median of its {replicas}' {key}, in place of early stopping "
                   "(no rows are left to stop on)")
        data["train"]["early_stopping"] = None
    scheduler = config.train.scheduler
    if scheduler is not None and scheduler.name == "plateau":
        why.append("no plateau schedule (it watches validation rows, which the refit trains on)")
        data["train"]["scheduler"] = None
    data["train"]["epochs"] = epochs
    refit = validate_config(data, source=f"the refit of {combo.dir_name}", base_dir=plan.source.parent)
    return Refit(refit, combo.dir_name, epochs, why)


def _scored(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _chosen_epochs(summary: dict, restore_best: bool) -> int:
    """The median over the winner's replicas of the epoch whose weights it kept (best, or where it stopped)."""
    key = "best" if restore_best else "final"
    epochs = [replica[key]["epoch"] for replica in summary.get("replicas", []) if replica.get(key)]
    if not epochs:
        return int(summary["epochs_run"])
    return max(1, math.floor(statistics.median(epochs) + 0.5))


def run_refit(refit: Refit, sweep_dir: Path, callbacks=(), on_model=None):
    """Train the refit into SWEEP_DIR/refit and add its record to sweep.json; the runs.FitResult."""
    from clftrain.runs.fit import fit_run
    from clftrain.runs.sweep import SWEEP_JSON
    from clftrain.training import distributed

    result = fit_run(refit.config, out=sweep_dir / REFIT_DIR, callbacks=callbacks, on_model=on_model)
    if distributed.main_process():  # under torchrun every rank trains its share of the rows; rank 0 writes
        record = rundir.read_json(sweep_dir / SWEEP_JSON, "sweep record")
        record["refit"] = refit.record()
        rundir.write_json(sweep_dir / SWEEP_JSON, record)
    return result
