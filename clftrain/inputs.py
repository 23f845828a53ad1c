"""What a trained model expects of its input rows, and reading such rows from a CSV file.

Every checkpoint records the raw input columns and the preprocessing fitted on the
training split (imputation, one-hot encoding, scaling; features.Preprocessor) and
the class names in label order. `predict` and `eval --data` use them to turn a
user's CSV into exactly the features the model was trained on, and its labels
back into the user's classes.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clftrain.data import Dataset
from clftrain.features import Preprocessor
from clftrain.errors import UserError
from clftrain.tasks import Task, get_task

# The target column of an external CSV when the run's dataset was generated (not read from a CSV column).
DEFAULT_TARGET = "target"


def target_columns(config, class_names: list[str], task: str) -> list[str]:
    """The column(s) with the true labels: the dataset's own target, else `target` (multi-label: one per label)."""
    target = getattr(config.dataset, "target", None)  # only CSV datasets name one
    if target is not None:
        return [target] if isinstance(target, str) else list(target)
    return list(class_names) if task == "multilabel" else [DEFAULT_TARGET]


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
        if self.task.name == "multilabel":
            from clftrain.tabular import _multilabel_targets  # the reader training used: same yes/no spellings

            return self.task.prepare_targets(_multilabel_targets(table, columns))
        (column,) = columns
        if self.task.name == "regression":
            return self.task.prepare_targets(table.numbers(column))
        index = _class_index(self.class_names)
        labels = []
        for line, cell in table.cells(column):
            label = index.get(cell.strip(), index.get(_as_number(cell)))
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
        number = _as_number(name)
        if number is not None:
            index.setdefault(number, i)
    return index


# Cells that mean "no value" in CSV files written by pandas, R, spreadsheets and UCI archives.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_MARKERS


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class CsvTable:
    """A CSV file's header and rows as text; values are parsed per column, with their line in errors."""

    path: Path
    header: list[str]
    rows: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> CsvTable:
        try:
            # utf-8-sig: files saved by spreadsheet programs often start with a byte-order mark.
            with path.open(newline="", encoding="utf-8-sig") as f:
                records = list(csv.reader(f))
        except FileNotFoundError:
            raise UserError(f"CSV file not found: {path}") from None
        except IsADirectoryError:
            raise UserError(f"{path} is a directory; give a CSV file") from None
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise UserError(f"cannot read CSV file {path}: {exc}") from None
        records = [r for r in records if any(cell.strip() for cell in r)]  # blank lines carry no rows
        if not records:
            raise UserError(f"{path} is empty; it needs a header row naming its columns, then one row per sample")
        header = [name.strip() for name in records[0]]
        table = cls(path, header, records[1:])
        table._check_shape()
        return table

    def _check_shape(self) -> None:
        duplicates = sorted({name for name in self.header if self.header.count(name) > 1})
        if duplicates:
            raise UserError(f"{self.path}: column(s) {', '.join(map(repr, duplicates))} appear more than once "
                            "in the header; give each column a unique name")
        if not self.rows:
            raise UserError(f"{self.path} has a header but no data rows")
        for line, row in enumerate(self.rows, start=2):
            if len(row) != len(self.header):
                raise UserError(f"{self.path} line {line}: {len(row)} values for {len(self.header)} columns "
                                f"({', '.join(self.header)}); every row needs one value per column")

    def require(self, columns: list[str], what: str) -> None:
        """Every column is present, else one error naming all that are missing."""
        missing = [name for name in columns if name not in self.header]
        if missing:
            raise UserError(
                f"{self.path} has no column(s) {', '.join(map(repr, missing))}: the run was trained on {what}; "
                f"the file's columns are: {', '.join(self.header)}"
            )

    def cells(self, column: str):
        """(line number, text) for each row: line 1 is the header."""
        j = self.header.index(column)
        return ((line, row[j]) for line, row in enumerate(self.rows, start=2))

    def texts(self, column: str) -> np.ndarray:
        """Stripped text per row (None where missing): values of a categorical column."""
        return np.array([None if is_missing(cell) else cell.strip() for _, cell in self.cells(column)], dtype=object)

    def numbers(self, column: str, allow_missing: bool = False) -> np.ndarray:
        """Float per row; a missing cell is NaN when allowed (it will be imputed), else an error."""
        values = []
        for line, cell in self.cells(column):
            if allow_missing and is_missing(cell):
                values.append(math.nan)
                continue
            number = _as_number(cell)
            if number is None or not math.isfinite(number):
                shown = f"'{cell}'" if cell.strip() else "an empty value"
                fix = ("the run was trained without dataset.impute, so every value must be given"
                       if is_missing(cell) else "features must be numeric")
                raise UserError(f"{self.path} line {line}, column '{column}': {shown} is not a finite number; {fix}")
            values.append(number)
        return np.asarray(values, dtype=np.float64)
