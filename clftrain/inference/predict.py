"""`clftrain predict`: probabilities and labels for the rows of a CSV, from a run's checkpoint.

Output: every input column as it was (extra columns pass through), then one
probability column per class (`prob_<class>`) and `predicted`, the class name
as it was in the training data (multi-label: the predicted labels, separated
by ';'). Regression runs get `predicted` only.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from clftrain.data import CsvTable, positive_index
from clftrain.errors import UserError
from clftrain.inference.evaluate import check_threshold
from clftrain.inference.metrics import thresholded
from clftrain.inference.trained import TrainedRun
from clftrain.store.rundir import atomic_write_text

PREDICTED = "predicted"


def predict_csv(run_dir: Path, input_csv: Path, checkpoint: str = "last", device: str | None = None,
                seed: int | None = None, ensemble: bool = False, threshold: float | None = None) -> tuple[str, list[str]]:
    """The output CSV as text, one row per input row in the input's order; and notes for the user."""
    # The training data is not needed: feature order, scaling and classes come from the checkpoint.
    run = TrainedRun.load(run_dir, checkpoint, device, with_data=False, seed=seed, ensemble=ensemble)
    table = CsvTable.read(input_csv)
    inputs = run.inputs
    table.require(inputs.input_columns, f"the run was trained on features {', '.join(inputs.input_columns)}")
    added = output_columns(inputs.class_names)
    clashes = [name for name in added if name in table.header]
    if clashes:
        raise UserError(f"{input_csv} already has column(s) {', '.join(map(repr, clashes))}, which predict adds; "
                        "rename or drop them")
    probabilities, labels = run.predict(inputs.features(table))
    if threshold is not None:  # two classes: the positive class from this probability of it
        check_threshold(threshold, run)
        positive = positive_index(run.config, inputs.task, inputs.class_names)
        labels = thresholded(probabilities, positive, threshold)
    if not np.isfinite(probabilities).all():
        raise UserError(f"the model in {run_dir}'s {checkpoint}.pt gives outputs that are not numbers (NaN or "
                        "infinite): its training diverged; predict with --checkpoint best (from before) or train "
                        "it again with a lower train.lr")
    multilabel = inputs.task.target == "labels"
    rows = [row + _predicted_cells(p, label, inputs.class_names, multilabel)
            for row, p, label in zip(table.rows, probabilities, labels)]
    notes = inputs.unseen_categories(table)
    if run.replicas is not None and run.replicas.why == "median":  # say which of the run's models answered
        notes.append(f"predicted by {run.replicas.describe()}; choose with --seed S, or --ensemble to average them")
    return to_csv(table.header + added, rows), notes


def output_columns(class_names: list[str]) -> list[str]:
    if not class_names:  # regression
        return [PREDICTED]
    return [f"prob_{name}" for name in class_names] + [PREDICTED]


def _predicted_cells(probabilities: np.ndarray, label, class_names: list[str], multilabel: bool) -> list[str]:
    # str() of a float32 is its shortest round-trip form: '0.9731' rather than 17 digits of noise.
    if not class_names:
        return [str(probabilities[0])]
    if multilabel:  # every label predicted for the row, ';'-separated ('' when none)
        return [str(p) for p in probabilities] + [";".join(n for n, on in zip(class_names, label) if on)]
    if len(probabilities) == 1:  # binary: the model gives P(class 1)
        probabilities = np.array([1 - probabilities[0], probabilities[0]], dtype=probabilities.dtype)
    return [str(p) for p in probabilities] + [class_names[int(label)]]


def write_output(out: Path, text: str, input_csv: Path) -> None:
    if out.resolve() == input_csv.resolve():
        raise UserError(f"-o {out} is the input file; write the predictions to a new file")
    try:
        atomic_write_text(out, text)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
