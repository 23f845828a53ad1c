"""`clftrain eval`: score a run's checkpoint on its rebuilt test split or on a CSV, and write eval.json.

On the test split, the loss and accuracy (or MAE) are computed exactly as the
training loop computed them, and compared with the row saved alongside the
checkpoint: "fit_check" says whether eval reproduced what fit recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

from clftrain.data import CsvTable, positive_index, target_columns
from clftrain.errors import UserError
from clftrain.inference import metrics
from clftrain.inference.table_blocks import streams_input
from clftrain.inference.trained import TrainedRun
from clftrain.store import rundir

EVAL = "eval.json"


def evaluate_run(run_dir: Path, checkpoint: str = "last", data: Path | None = None,
                 device: str | None = None, seed: int | None = None, ensemble: bool = False,
                 threshold: float | None = None) -> dict:
    """The content of eval.json: what was evaluated, on what, and every metric. `threshold`: two classes, the
    probability of the positive class from which a row is predicted positive (default: the model's 0.5)."""
    # With --data the training data is not rebuilt: the loss's class weights are in the checkpoint.
    run = TrainedRun.load(run_dir, checkpoint, device, with_data=data is None, seed=seed, ensemble=ensemble)
    notes = []
    if data is None:
        y, scored = run.test_scored()
        source = {"source": "test split", "rows": len(y),
                  "rebuilt_from": f"{rundir.CONFIG} (dataset.seed {run.config.dataset.seed}, "
                                  f"test_size {run.config.dataset.test_size:g})"}
    elif streams_input(data, False):  # a Parquet file or folder, or a CSV too large to hold
        y, scored, source, notes = _score_external_stream(run, data)
    else:
        X, y, source, notes = _read_external(run, data)
        scored = run.score(X, y)
    task = run.inputs.task
    positive = positive_index(run.config, task, run.inputs.class_names) if len(run.inputs.class_names) == 2 else 1
    if threshold is not None:
        check_threshold(threshold, run)
        scored.labels = metrics.thresholded(scored.probabilities, positive, threshold)
    result = _metrics(task, y, scored, run.inputs.class_names, positive)
    result["metrics"]["loss"] = scored.loss
    result["notes"] = run.notes + notes + result["notes"]
    report = {
        "run": run.config.name,
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
        "epoch": run.epoch,
        "task": task.name,
        "loss_function": run.config.train.loss,
        "data": source,
        "device": str(run.device),
        **({"replica": run.replicas.to_dict()} if run.replicas is not None else {}),
        **({"threshold": threshold} if threshold is not None else {}),
        **result,
    }
    hint = _threshold_hint(run, positive)
    if hint is not None:
        report["threshold_hint"] = hint
    if data is None:
        report["fit_check"] = fit_check(run, scored.loss, scored.score)
    report["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return report


def _metrics(task, y, scored, class_names: list[str], positive: int) -> dict:
    if task.target == "value":
        return metrics.regression(y, scored.probabilities[:, 0])
    if task.target == "labels":
        return metrics.multilabel(y, scored.labels, scored.probabilities, class_names)
    return metrics.classification(y, scored.labels, scored.probabilities, class_names, positive)


def check_threshold(threshold: float, run: TrainedRun) -> None:
    if len(run.inputs.class_names) != 2 or run.inputs.task.target != "class":
        raise UserError(f"--threshold applies to two classes; {run.config.name} is a {run.inputs.task.name} task")
    if not 0 < threshold < 1:
        raise UserError(f"--threshold {threshold:g}: give a probability between 0 and 1 (exclusive)")


def _threshold_hint(run: TrainedRun, positive: int) -> dict | None:
    """Two classes and a validation split: the threshold with the best F1 of the positive class there (the
    validation split may choose it; the test split must not)."""
    data = run.dataset
    if (len(run.inputs.class_names) != 2 or run.inputs.task.target != "class" or data is None or data.X_val is None
            or data.stream is not None):  # streamed: X_val is a sample, not the split
        return None
    found = metrics.best_f1_threshold(data.y_val, run.predict(data.X_val)[0], positive)
    if found is None:
        return None
    return {"threshold": round(found[0], 4), "validation_f1": found[1],
            "positive_class": run.inputs.class_names[positive]}


def write_eval(run_dir: Path, report: dict) -> Path:
    path = run_dir / EVAL
    try:
        rundir.write_json(path, report)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def fit_check(run: TrainedRun, loss: float, score: float) -> dict | None:
    """Recorded vs reproduced test metrics for the checkpoint's epoch (None: fit recorded none)."""
    metric = f"test_{run.inputs.task.metric}"
    recorded = run.recorded
    if "test_loss" not in recorded or metric not in recorded:
        return None
    reproduced = {"test_loss": loss, metric: score}
    return {
        "epoch": run.epoch,
        "recorded": {"test_loss": recorded["test_loss"], metric: recorded[metric]},
        "reproduced": reproduced,
        "match": all(reproduced[k] == recorded[k] for k in reproduced),  # exact: same computation, same device
    }


def _score_external_stream(run: TrainedRun, path: Path):
    """(targets, Scored, source, notes) of a Parquet file or folder or a large CSV, read a block at a time."""
    from types import SimpleNamespace

    import torch

    from clftrain.data import TableBatches
    from clftrain.inference.scoring import score_stream
    from clftrain.inference.table_blocks import block_inputs, block_targets
    from clftrain.training import build_loss

    inputs = run.inputs
    targets = target_columns(run.config, inputs.class_names, inputs.task)
    kind = "parquet" if path.is_dir() or path.suffix == ".parquet" else "csv"
    batches = TableBatches(SimpleNamespace(path=str(path), name=kind, target=targets))
    needed = inputs.input_columns + targets
    missing = [c for c in needed if c not in batches.header]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(map(repr, missing))}; eval --data needs the features "
                        f"{', '.join(inputs.input_columns)} and the target {', '.join(map(repr, targets))}")
    unseen: dict = {}

    def blocks():
        for batch in batches:
            X = inputs.preprocessor.transform(block_inputs(inputs.preprocessor, batch, path, unseen))
            y = block_targets(inputs, batch, targets, path)
            yield torch.as_tensor(X, device=run.device), torch.as_tensor(y, device=run.device)

    loss_fn = build_loss(run.config.train, None, run.device, run.loss_weights)
    y, scored = score_stream(run.model, inputs.task, loss_fn, blocks(), run.outputs_are_probabilities)
    source = {"source": kind, "path": str(path), "rows": len(y), "target": ", ".join(targets), "streamed": True}
    notes = [f"{path} column '{c}': {', '.join(map(repr, sorted(v)[:5]))} not seen in training (encoded as no "
             "category)" for c, v in unseen.items() if v]
    return y, scored, source, notes


def _read_external(run: TrainedRun, path: Path):
    table = CsvTable.read(path)
    inputs = run.inputs
    targets = target_columns(run.config, inputs.class_names, inputs.task)
    features = inputs.input_columns
    table.require(features + targets, f"the run was trained on features {', '.join(features)} and target "
                                      f"{', '.join(map(repr, targets))}")
    source = {"source": "csv", "path": str(path), "rows": len(table.rows), "target": ", ".join(targets)}
    return inputs.features(table), inputs.targets(table, targets), source, inputs.unseen_categories(table)
