"""The user's own CSV table as a dataset: pick columns, check them, infer the task, name the classes.

Every problem names the file, the column and (where one row is to blame) its
line, and says how to fix it: users meet these errors on their own data first.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from clftrain.components.tasks import classes_task
from clftrain.data.csvtable import CsvTable, as_number, is_missing, multilabel_targets
from clftrain.data.types import RawData
from clftrain.errors import UserError
from clftrain.readers import regular_file


# float32 holds every integer below 2**24 exactly; a class id above could merge with its neighbour.
FLOAT32_EXACT = 2**24


def read_careful(cfg) -> RawData:
    """The file cell by cell in Python: what sources.load_csv falls back to for the files the fast readers leave
    (ragged rows, padded or odd cells), and the reader whose errors name the line."""
    table = CsvTable.read(Path(cfg.path))
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    chosen = cfg.features is not None
    features = check_chosen_columns(table.path, table.header, targets, cfg.features, cfg.exclude)
    notes = []
    if not chosen:  # columns nobody picked: leave out what cannot generalise, and say so
        features, notes = _leave_out_identifiers(table, features, cfg)
    if not features:
        why = f" ({notes[0].split(': ', 1)[1]})" if notes else ""
        raise UserError(f"{table.path} has no feature columns besides the target{why}; add input columns")
    categorical = _categorical(table, cfg.categorical, features)
    _check_cardinality(table, categorical)
    _check_missing(table, features, cfg.impute)
    columns = {name: table.texts(name) if name in categorical else _numbers(table, name, categorical)
               for name in features}
    if len(targets) > 1:
        y, class_names, task = multilabel_targets(table, targets), targets, "multilabel"
    else:
        y, class_names, task = _single_target(table, targets[0])
    return RawData(columns, y, features, class_names, categorical=categorical, task=task, notes=notes)


# A text column with more distinct values than this share of the rows is names or free text, not categories.
FREE_TEXT_SHARE = 0.5
# Fewer rows than this and a column unique per row may just be a small table: nothing is left out.
IDENTIFIER_ROWS = 20
# A categorical column with more categories than this is refused: one input per category would drown the rest.
MAX_CATEGORIES = 200


def _leave_out_identifiers(table: CsvTable, features: list[str], cfg) -> tuple[list[str], list[str]]:
    """Features without identifier columns (whole numbers, a different one on every row: a row number, a
    customer id) and free-text columns (text whose distinct values are most of the rows: names, comments);
    a note naming each one left out and how to keep it."""
    rows = len(table.rows)
    if rows < IDENTIFIER_ROWS:
        return features, []
    left_out = {}
    for column in features:
        cells = [cell.strip() for _, cell in table.cells(column) if not is_missing(cell)]
        distinct = len(set(cells))
        numbers = [as_number(cell) for cell in cells]
        if all(n is not None for n in numbers):
            if distinct == rows and all(n == int(n) for n in numbers if math.isfinite(n)):
                left_out[column] = "an identifier (a different whole number on every row)"
        elif distinct > FREE_TEXT_SHARE * rows:
            left_out[column] = f"free text ({distinct} different values in {rows} rows)"
    if not left_out:
        return features, []
    kept = [c for c in features if c not in left_out]
    listed = "; ".join(f"'{c}': {why}" for c, why in left_out.items())
    note = (f"{table.path}: left out of the inputs, {listed}; to use them anyway, list the input columns in "
            f"dataset.features (e.g. features: [{', '.join(features)}])")
    return kept, [note]


def _check_cardinality(table: CsvTable, categorical: list[str]) -> None:
    for column in categorical:
        count = len({cell.strip() for _, cell in table.cells(column) if not is_missing(cell)})
        if count > MAX_CATEGORIES:
            raise UserError(f"{table.path} column '{column}' has {count:,} categories; one-hot encoding more than "
                            f"{MAX_CATEGORIES} would drown the other inputs: leave it out with dataset.exclude: "
                            f"['{column}'], or group its rare values into fewer categories in the file")


def check_chosen_columns(path: Path, header: list[str], targets: list[str], features: list[str] | None,
                         exclude: list[str]) -> list[str]:
    """The input columns the keys pick (every column but the targets and `exclude` unless `features` names
    them), each present in the table and none a target; a UserError naming the key otherwise."""
    _require(path, header, targets, "dataset.target")
    _require(path, header, exclude, "dataset.exclude")
    chosen = features is not None
    picked = [c for c in (features if chosen else header) if (c not in targets or chosen) and c not in exclude]
    _require(path, header, picked, "dataset.features")
    overlap = sorted(set(picked) & set(targets))
    if overlap:
        raise UserError(f"dataset.features includes the target column(s) {', '.join(map(repr, overlap))}; "
                        "a model must not see its labels as inputs")
    return picked


def _require(path: Path, header: list[str], columns: list[str], key: str) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise UserError(f"{key}: {path} has no column(s) {', '.join(map(repr, missing))}; "
                        f"its columns are: {', '.join(header)}")


def read_numeric(cfg) -> RawData | None:
    """All-numeric table with one class column: float32 features without per-cell Python objects.

    None when the file needs the careful path (text, missing values, ragged rows, odd headers,
    several target columns, declared categorical columns): that path then reports any problem.
    """
    import csv
    import warnings

    if not isinstance(cfg.target, str) or (cfg.categorical and cfg.categorical != "auto"):
        return None
    path = Path(cfg.path)
    regular_file(path, "CSV file")  # a FIFO or device would block the reader
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = [name.strip() for name in next(csv.reader(f), [])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file warns; the careful path explains it
            # comments=None: a row starting with '#' is data (numpy would skip it as a comment).
            data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2, encoding="utf-8-sig",
                              comments=None)
    except (OSError, ValueError, UnicodeDecodeError, csv.Error):
        return None
    chosen = cfg.features is not None
    features = [c for c in (cfg.features if chosen else [c for c in header if c != cfg.target])
                if c not in cfg.exclude]
    names = [*features, cfg.target, *cfg.exclude]
    if (data.size == 0 or data.shape[1] != len(header) or len(set(header)) != len(header) or not features
            or not set(names) <= set(header) or cfg.target in features or not np.isfinite(data).all()):
        return None
    notes = []
    if not chosen:
        features, notes = _leave_out_numeric_identifiers(data, header, features, Path(cfg.path))
        if not features:
            return None  # the careful path says what is left
    y_values = data[:, header.index(cfg.target)].astype(np.float64)
    if np.abs(y_values).max() >= FLOAT32_EXACT:  # class ids float32 cannot tell apart: read them as text
        return None
    X = data[:, [header.index(c) for c in features]]
    del data  # only X (a copy of the feature columns) stays
    if (y_values != np.round(y_values)).any():
        return RawData(X, y_values, features, [], task="regression", notes=notes)
    classes = np.unique(y_values)
    if len(classes) < 2:
        return None  # the careful path names the single class
    class_names = [str(int(c)) for c in classes]
    y = np.searchsorted(classes, y_values)
    return RawData(X, y, features, class_names, task=classes_task(len(classes)), notes=notes)


def _leave_out_numeric_identifiers(data: np.ndarray, header: list[str], features: list[str], path: Path):
    """_leave_out_identifiers on the fast path's matrix: whole numbers, a different one on every row."""
    if len(data) < IDENTIFIER_ROWS:
        return features, []
    left_out = []
    for column in features:
        values = data[:, header.index(column)]
        if np.all(values == np.round(values)) and len(np.unique(values)) == len(values):  # rounding check first: fast
            left_out.append(column)
    if not left_out:
        return features, []
    listed = "; ".join(f"'{c}': an identifier (a different whole number on every row)" for c in left_out)
    return [c for c in features if c not in left_out], [
        f"{path}: left out of the inputs, {listed}; to use them anyway, list the input columns in dataset.features "
        f"(e.g. features: [{', '.join(features)}])"]


def _categorical(table: CsvTable, setting, features: list[str]) -> list[str]:
    if setting == "auto":
        return [c for c in features if not _is_numeric(table, c)]
    unknown = [c for c in setting if c not in features]
    if unknown:
        raise UserError(f"dataset.categorical names {', '.join(map(repr, unknown))}, which are not feature columns; "
                        f"the features are: {', '.join(features)}")
    return list(setting)


def _is_numeric(table: CsvTable, column: str) -> bool:
    """Every cell is a number or missing. `inf` and `1e999` are numbers too (not categories): _numbers then
    refuses them with their line."""
    for _, cell in table.cells(column):
        if not is_missing(cell) and as_number(cell) is None:
            return False
    return True


def _finite(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _check_missing(table: CsvTable, features: list[str], impute) -> None:
    if impute:
        return
    counts = {c: sum(is_missing(cell) for _, cell in table.cells(c)) for c in features}
    gaps = {c: n for c, n in counts.items() if n}
    if gaps:
        listed = ", ".join(f"'{c}' ({n} of {len(table.rows)} rows)" for c, n in gaps.items())
        raise UserError(f"{table.path} has missing values in {listed}; set dataset.impute to mean, median or "
                        "most_frequent to fill them from the training rows, or fill them in the file")


def _numbers(table: CsvTable, column: str, categorical: list[str]) -> np.ndarray:
    for line, cell in table.cells(column):
        if is_missing(cell) or _finite(cell):
            continue
        if as_number(cell) is not None:
            raise UserError(f"{table.path} line {line}, column '{column}': '{cell}' is not a finite number "
                            f"(numbers beyond ±{np.finfo(np.float64).max:.3g} read as infinite); fix or remove the value")
        raise UserError(
            f"{table.path} line {line}, column '{column}': '{cell}' is not a number; declare the column in "
            f"dataset.categorical (or set categorical: auto) to one-hot encode it, or fix the value"
        )
    return table.numbers(column, allow_missing=True)


def _single_target(table: CsvTable, column: str) -> tuple[np.ndarray, list[str], str]:
    """Class indices and names (or float targets for regression), and the task they imply."""
    cells = []
    for line, cell in table.cells(column):
        if is_missing(cell):
            raise UserError(f"{table.path} line {line}: the target column '{column}' is empty; every row needs a label")
        cells.append(cell.strip())
    numbers = [float(c) if _finite(c) else None for c in cells]
    if all(n is not None for n in numbers) and any(n != int(n) for n in numbers):
        return np.asarray(numbers, dtype=np.float64), [], "regression"  # fractional values: a quantity
    names = sorted(set(cells), key=lambda c: (float(c), c) if _finite(c) else (math.inf, c))
    if len(names) < 2:
        raise UserError(f"{table.path}: the target column '{column}' has a single class ({names[0]!r}); "
                        "classification needs examples of at least two classes")
    index = {name: i for i, name in enumerate(names)}
    y = np.asarray([index[c] for c in cells], dtype=np.int64)
    return y, names, classes_task(len(names))
