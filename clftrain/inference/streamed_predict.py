"""`clftrain predict` of a table too large to hold (a Parquet file or folder, a CSV past STREAM_BYTES, or
`--stream`): the input read a block at a time (data/table_batches.py), each block's predictions written
before the next is read, so memory holds one block whatever the input's size.

The output is the one predict_csv writes (every input column, then `prob_<class>` and `predicted`), written
by pyarrow: a CSV, or Parquet where -o ends in .parquet. Passed-through cells are written as pyarrow
formats their values (numbers in their shortest form), not as the input spelled them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from clftrain.data import TableBatches, positive_index
from clftrain.errors import UserError
from clftrain.inference.evaluate import check_threshold
from clftrain.inference.metrics import thresholded
from clftrain.inference.predict import output_columns
from clftrain.inference.table_blocks import block_inputs
from clftrain.inference.trained import TrainedRun


def predict_stream(run_dir: Path, source: Path, out: Path | None, checkpoint: str = "last", device: str | None = None,
                   seed: int | None = None, ensemble: bool = False, threshold: float | None = None,
                   ) -> tuple[int, list[str]]:
    """(rows predicted, notes), the predictions written to `out` (stdout: None) as they are made."""
    run = TrainedRun.load(run_dir, checkpoint, device, with_data=False, seed=seed, ensemble=ensemble)
    inputs = run.inputs
    kind = "parquet" if source.is_dir() or source.suffix == ".parquet" else "csv"
    batches = TableBatches(SimpleNamespace(path=str(source), name=kind, target=[]))
    missing = [c for c in inputs.input_columns if c not in batches.header]
    if missing:
        raise UserError(f"{source} lacks the column(s) {', '.join(map(repr, missing))}; the run's inputs are "
                        f"{', '.join(inputs.input_columns)}")
    added = output_columns(inputs.class_names)
    clashes = [name for name in added if name in batches.header]
    if clashes:
        raise UserError(f"{source} already has column(s) {', '.join(map(repr, clashes))}, which predict adds; "
                        "rename or drop them")
    if threshold is not None:
        check_threshold(threshold, run)
    writer, rows, unseen = _Writer(out, source), 0, {}
    try:
        for batch in batches:
            columns = block_inputs(inputs.preprocessor, batch, source, unseen)
            probabilities, labels = run.predict(inputs.preprocessor.transform(columns))
            if threshold is not None:
                labels = thresholded(probabilities, positive_index(run.config, inputs.task, inputs.class_names),
                                     threshold)
            if not np.isfinite(probabilities).all():
                raise UserError(f"the model in {run_dir}'s {checkpoint}.pt gives outputs that are not numbers (NaN or "
                                "infinite): its training diverged; predict with --checkpoint best or train it again")
            writer.write(batch.columns, _predicted(probabilities, labels, inputs))
            rows += batch.rows
        writer.close()
    finally:
        writer.abandon()
    notes = [f"{source} column '{col}': {', '.join(map(repr, sorted(values)[:5]))} not seen in training (encoded as "
             "no category)" for col, values in unseen.items() if values]
    return rows, notes


def _predicted(probabilities: np.ndarray, labels: np.ndarray, inputs) -> dict:
    names = inputs.class_names
    if not names:
        return {"predicted": probabilities[:, 0]}
    if inputs.task.target == "labels":
        picked = [";".join(n for n, on in zip(names, row) if on) for row in labels]
        return {**{f"prob_{n}": probabilities[:, j] for j, n in enumerate(names)}, "predicted": picked}
    if probabilities.shape[1] == 1:  # binary: the model gives P(class 1)
        probabilities = np.concatenate([1 - probabilities, probabilities], axis=1)
    lookup = np.array(names, dtype=object)
    return {**{f"prob_{n}": probabilities[:, j] for j, n in enumerate(names)},
            "predicted": lookup[labels.astype(np.int64)]}


class _Writer:
    """The output, written a block at a time: to a temporary file beside `out`, renamed over it at the end (a
    failure leaves nothing), or to stdout."""

    def __init__(self, out: Path | None, source: Path) -> None:
        if out is not None and out.resolve() == source.resolve():
            raise UserError(f"-o {out} is the input file; write the predictions to a new file")
        self.out, self.writer = out, None
        self.temporary = None if out is None else out.with_name(f".{out.name}.{os.getpid()}.tmp")
        self.parquet = out is not None and out.suffix == ".parquet"

    def write(self, columns: dict, predicted: dict) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pa.table({**columns, **{k: pa.array(v) for k, v in predicted.items()}})
        if self.writer is None:
            sink = sys.stdout.buffer if self.out is None else str(self.temporary)
            try:
                self.writer = (pq.ParquetWriter(sink, table.schema) if self.parquet
                               else pacsv.CSVWriter(sink, table.schema, write_options=pacsv.WriteOptions(quoting_style="needed")))
            except OSError as exc:
                raise UserError(f"cannot write {self.out}: {exc.strerror or exc}") from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.temporary is not None and self.temporary.exists():
            os.replace(self.temporary, self.out)

    def abandon(self) -> None:
        if self.temporary is not None and self.temporary.exists():
            self.temporary.unlink()
