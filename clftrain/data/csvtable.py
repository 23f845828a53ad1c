"""A CSV file as text cells, and the cell spellings every reader shares: missing markers, numbers, yes/no labels.

Values are parsed per column, so an error names the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clftrain.errors import UserError
from clftrain.readers import regular_file

# Cells that mean "no value" in CSV files written by pandas, R, spreadsheets and UCI archives.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_MARKERS


def null_spellings() -> list[str]:
    """Every casing of the missing markers: what pyarrow's CSV readers take as null."""
    from itertools import product

    return sorted({"".join(cased) for marker in MISSING_MARKERS for cased in product(*({c.lower(), c.upper()}
                                                                                        for c in marker))})


def as_number(text: str) -> float | None:
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
        regular_file(path, "CSV file")  # a FIFO or device would block the reader
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

    def require(self, columns: list[str], why: str) -> None:
        """Every column is present, else one error naming all that are missing and `why` they are needed."""
        missing = [name for name in columns if name not in self.header]
        if missing:
            raise UserError(
                f"{self.path} has no column(s) {', '.join(map(repr, missing))}: {why}; "
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
            number = as_number(cell)
            if number is None or not math.isfinite(number):
                shown = f"'{cell}'" if cell.strip() else "an empty value"
                fix = ("the run was trained without dataset.impute, so every value must be given"
                       if is_missing(cell) else "features must be numeric")
                raise UserError(f"{self.path} line {line}, column '{column}': {shown} is not a finite number; {fix}")
            values.append(number)
        return np.asarray(values, dtype=np.float64)


# Spellings of a yes/no label in a multi-label target column.
TRUE_FALSE = {"0": 0, "1": 1, "false": 0, "true": 1, "no": 0, "yes": 1}


def multilabel_targets(table: CsvTable, columns: list[str]) -> np.ndarray:
    """[N, L] 0/1 matrix: each target column must hold yes/no values (0/1, true/false, yes/no)."""
    Y = np.zeros((len(table.rows), len(columns)), dtype=np.int64)
    for j, column in enumerate(columns):
        for i, (line, cell) in enumerate(table.cells(column)):
            value = TRUE_FALSE.get(cell.strip().lower())
            if value is None:
                raise UserError(f"{table.path} line {line}, column '{column}': '{cell}' is not 0/1; with several "
                                "target columns each one is a yes/no label (0/1, true/false or yes/no)")
            Y[i, j] = value
    return Y
