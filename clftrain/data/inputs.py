"""What a trained model expects of its input rows, and turning a CSV table into such rows.

Every checkpoint records the raw input columns and the preprocessing fitted on the
training split (imputation, one-hot encoding, scaling; features.Preprocessor) and
the class names in label order. `predict` and `eval --data` use them to turn a
user's CSV into exactly the features the model was trained on, and its labels
back into the user's classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clftrain.components.tasks import Task, get_task
from clftrain.data.csvtable import CsvTable, as_number, multilabel_targets
from clftrain.data.features import Preprocessor
from clftrain.data.types import Dataset
from clftrain.errors import UserError

# The target column of an external CSV when the run's dataset was generated (not read from a CSV column).
DEFAULT_TARGET = "target"


def target_columns(config, class_names: list[str], task: Task) -> list[str]:
    """The column(s) with the true labels: the dataset's own target, else `target` (multi-label: one per label)."""
    target = getattr(config.dataset, "target", None)  # only CSV datasets name one
    if target is not None:
        return [target] if isinstance(target, str) else list(target)
    return list(class_names) if task.target == "labels" else [DEFAULT_TARGET]


@dataclass
class ModelInputs:
    task: Task
    feature_names: list[str]  # in the order of the model's input columns
    class_names: list[str]  # label index -> class name as in the training data; [] for regression
    preprocessor: Preprocessor  # imputation, one-hot encoding and scaling fitted on the training split

    @classmethod
    def from_dataset(cls, data: Dataset) -> ModelInputs:
        return cls(data.task, list(data.feature_names), list(data.class_names), data.preprocessor)

    @classmethod
    def from_checkpoint(cls, payload: dict) -> ModelInputs:
        pre = payload.get("preprocessor")
        if pre is None:  # written before categorical columns and imputation: numbers, perhaps standardised
            scaler = payload.get("scaler") or {}
            pre = {"numeric": payload["feature_names"], "mean": scaler.get("mean"), "std": scaler.get("std")}
        return cls(get_task(payload["task"]), list(payload["feature_names"]), list(payload["class_names"]),
                   Preprocessor.from_dict(pre))

    @property
    def input_columns(self) -> list[str]:
        """The raw columns a table must have (before one-hot encoding)."""
        return self.preprocessor.input_columns

    def features(self, table: CsvTable) -> np.ndarray:
        """The table's input columns, imputed, encoded and scaled as in training: float32 [N, F]."""
        pre = self.preprocessor
        columns = {name: table.numbers(name, allow_missing=name in pre.fill) for name in pre.numeric}
        columns.update({name: table.texts(name) for name in pre.categorical})
        return pre.transform(columns)

    def targets(self, table: CsvTable, columns: list[str]) -> np.ndarray:
        """The target column(s) as the model's loss expects them: class indices, 0/1 per label, or values."""
        if self.task.target == "labels":  # read as training read them: the same yes/no spellings
            return self.task.prepare_targets(multilabel_targets(table, columns))
        (column,) = columns
        if self.task.target == "value":
            return self.task.prepare_targets(table.numbers(column))
        index = _class_index(self.class_names)
        labels = []
        for line, cell in table.cells(column):
            label = index.get(cell.strip(), index.get(as_number(cell)))
            if label is None:
                raise UserError(
                    f"{table.path} line {line}, column '{column}': '{cell}' is not a class this run was trained on; "
                    f"its classes are: {', '.join(self.class_names)}"
                )
            labels.append(label)
        return self.task.prepare_targets(np.asarray(labels))

    def unseen_categories(self, table: CsvTable) -> list[str]:
        """One note per categorical column holding values training never saw (they encode as all zeros)."""
        notes = []
        for column, known in self.preprocessor.categorical.items():
            unseen = sorted({v for v in table.texts(column) if v is not None} - set(known))
            if unseen:
                notes.append(f"{table.path} column '{column}': {', '.join(map(repr, unseen[:5]))}"
                             f"{' ...' if len(unseen) > 5 else ''} not seen in training (encoded as no category); "
                             f"known: {', '.join(map(repr, known))}")
        return notes


def _class_index(class_names: list[str]) -> dict:
    """Class name -> label index; numeric names also match by value, so '1.0' finds class '1'."""
    index: dict = {}
    for i, name in enumerate(class_names):
        index[name] = i
        number = as_number(name)
        if number is not None:
            index.setdefault(number, i)
    return index
