"""Tables read by pyarrow with their types: a Parquet file (or a folder of files with one schema), and the
CSV files pyarrow reads exactly as the careful reader would (tabular.py).

Typed columns are not parsed per cell in Python: numbers (and Parquet's booleans) become float arrays
(null = missing), text and dictionary columns become categories (a column's distinct values are
encoded once, then every row is an index into them). The choices and the checks are the CSV reader's
(tabular.py): the same keys, the same columns left out with a note, the same errors (a "row" is the
table's row, counted from 1, files of a folder in name order).

A CSV file takes this path only where its cells mean what the careful reader makes of them: a text column
none of whose values is a number, a missing marker or padded with spaces; numbers arrow parsed as
int64/float64; no dates or booleans inferred; a header of unique, unpadded names. Anything else, and any
error, goes to the careful reader, which reads it cell by cell and names the line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from clftrain.components.tasks import classes_task
from clftrain.data.tabular import FREE_TEXT_SHARE, IDENTIFIER_ROWS, MAX_CATEGORIES, check_chosen_columns
from clftrain.data.types import RawData
from clftrain.errors import UserError

TRUE_FALSE = {"0": 0, "1": 1, "false": 0, "true": 1, "no": 0, "yes": 1}


def read_table(path: Path):
    """The pyarrow Table of a Parquet file or of a folder's Parquet files; a UserError naming the path."""
    return _read(path, lambda dataset: dataset.to_table())


def read_column_names(path: Path) -> list[str]:
    """The column names of a Parquet file or folder, from its schema alone (no rows read)."""
    return _read(path, lambda dataset: list(dataset.schema.names))


def _read(path: Path, read):
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file())
            if not files:
                raise UserError(f"{path} holds no .parquet files; give a Parquet file or a folder of them")
            return read(ds.dataset(files, format="parquet"))
        return read(ds.dataset(str(path), format="parquet"))
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"cannot read Parquet {path}: {str(exc).splitlines()[0][:300]}") from None


def load_parquet(cfg) -> RawData:
    table = read_table(Path(cfg.path))
    if table.num_rows == 0:
        raise UserError(f"{cfg.path} has columns but no rows")
    return typed_raw_data(table, Path(cfg.path), cfg)


def read_csv_typed(cfg) -> RawData | None:
    """A CSV file through pyarrow's typed reader, or None where the careful reader must read it (see above)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from clftrain.data.csvtable import as_number, is_missing, null_spellings
    from clftrain.readers import regular_file

    path = Path(cfg.path)
    regular_file(path, "CSV file")  # a FIFO or device would block the reader
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    spellings = null_spellings()
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            null_values=spellings, strings_can_be_null=True, true_values=[], false_values=[],
            timestamp_parsers=[], column_types={name: pa.string() for name in targets}))
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        return None
    header = table.column_names
    if table.num_rows == 0 or len(set(header)) != len(header) or any(n != n.strip() or not n for n in header):
        return None
    for name in header:
        kind = table.column(name).type
        if name in targets:
            continue
        if pa.types.is_string(kind):
            import pyarrow.compute as pc

            values = pc.unique(table.column(name).drop_null()).to_pylist()
            if any(v != v.strip() or is_missing(v) or as_number(v) is not None for v in values):
                return None
        elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
    try:
        return typed_raw_data(table, path, cfg)
    except UserError:
        return None  # the careful reader says what is wrong, with the line


def typed_raw_data(table, source: Path, cfg) -> RawData:
    """The dataset keys applied to a pyarrow Table, as tabular.load_csv applies them to a CSV's cells."""
    header = list(table.column_names)
    targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
    features = check_chosen_columns(source, header, targets, cfg.features, cfg.exclude)
    columns = {name: Column(source, name, table.column(name)) for name in header}
    notes = []
    if cfg.features is None:
        features, notes = _leave_out_identifiers(source, columns, features, table.num_rows)
    if not features:
        raise UserError(f"{source} has no feature columns besides the target; add input columns")
    categorical = _categorical(columns, cfg.categorical, features)
    for name in features:
        columns[name].check(categorical=name in categorical, impute=cfg.impute)
    X = {name: columns[name].texts() if name in categorical else columns[name].numbers() for name in features}
    if len(targets) > 1:
        y = np.stack([columns[name].yes_no() for name in targets], axis=1)
        return RawData(X, y, features, targets, categorical=categorical, task="multilabel", notes=notes)
    y, class_names, task = columns[targets[0]].target()
    return RawData(X, y, features, class_names, categorical=categorical, task=task, notes=notes)


class Column:
    """One column of the table: its type decides whether it is numeric; its errors name the row."""

    def __init__(self, source: Path, name: str, values) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.source, self.name = source, name
        kind = values.type
        if pa.types.is_dictionary(kind):
            values, kind = pc.cast(values, kind.value_type), kind.value_type
        self.values = values
        self.numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        self.text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        self.kind = kind

    def __len__(self) -> int:
        return len(self.values)

    @property
    def missing(self) -> int:
        return int(np.isnan(self.numbers()).sum()) if self.numeric else self.values.null_count  # NaN: null too

    def distinct(self) -> int:
        import pyarrow.compute as pc

        return pc.count_distinct(self.values, mode="only_valid").as_py()

    def numbers(self) -> np.ndarray:
        """float64 per row, NaN where missing."""
        import pyarrow as pa
        import pyarrow.compute as pc

        return pc.cast(self.values, pa.float64()).to_numpy(zero_copy_only=False)

    def texts(self) -> np.ndarray:
        """An object array of str per row (None where missing): each distinct value made a Python str once."""
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(pc.cast(self.values, "string") if not self.text else self.values)
        chunks = encoded.chunks if hasattr(encoded, "chunks") else [encoded]
        out = np.empty(len(self), dtype=object)
        start = 0
        for chunk in chunks:
            names = np.array([None, *(s.strip() for s in chunk.dictionary.to_pylist())], dtype=object)
            index = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
            out[start:start + len(chunk)] = names[index]
            start += len(chunk)
        return out

    def first_row(self, mask: np.ndarray) -> int:
        return int(np.flatnonzero(mask)[0]) + 1

    def check(self, categorical: bool, impute) -> None:
        """The CSV reader's checks on an input column: a type it can use, gaps only with impute, finite numbers."""
        where = f"{self.source} column '{self.name}'"
        if not categorical and not self.numeric:
            raise UserError(f"{where} holds {self.kind} values, not numbers; declare it in dataset.categorical "
                            "(or set categorical: auto) to one-hot encode it, or leave it out with dataset.exclude")
        if categorical and self.distinct() > MAX_CATEGORIES:
            raise UserError(f"{where} has {self.distinct():,} categories; one-hot encoding more than "
                            f"{MAX_CATEGORIES} would drown the other inputs: leave it out with dataset.exclude: "
                            f"['{self.name}'], or group its rare values into fewer categories")
        if not impute and self.missing:
            raise UserError(f"{self.source} has missing values in '{self.name}' ({self.missing} of {len(self)} rows); "
                            "set dataset.impute to mean, median or most_frequent to fill them from the training "
                            "rows, or fill them in the file")
        if not categorical:
            values = self.numbers()
            bad = np.isinf(values)
            if bad.any():
                row = self.first_row(bad)
                raise UserError(f"{where}, row {row}: {values[row - 1]} is not a finite number; fix or remove the value")

    def yes_no(self) -> np.ndarray:
        """A multi-label target column: 0/1 per row."""
        texts = self.texts()
        labels = np.array([TRUE_FALSE.get(str(t).lower(), -1) if t is not None else -1 for t in
                           (texts if not self.numeric else [_plain(v) for v in self.numbers()])])
        if (labels < 0).any():
            row = self.first_row(labels < 0)
            raise UserError(f"{self.source} row {row}, column '{self.name}': not 0/1; with several target columns "
                            "each one is a yes/no label (0/1, true/false or yes/no)")
        return labels.astype(np.int64)

    def target(self) -> tuple[np.ndarray, list[str], str]:
        """Class indices and names (or float targets for regression), and the task they imply: as the CSV reader."""
        if self.values.null_count or (self.numeric and np.isnan(self.numbers()).any()):
            missing = np.isnan(self.numbers()) if self.numeric else np.asarray(self.values.is_null())
            raise UserError(f"{self.source} row {self.first_row(missing)}: the target column '{self.name}' is empty; "
                            "every row needs a label")
        if self.numeric:
            values = self.numbers()
            if not np.isfinite(values).all():
                raise UserError(f"{self.source} row {self.first_row(~np.isfinite(values))}: the target column "
                                f"'{self.name}' is not finite")
            if (values != np.round(values)).any():
                return values, [], "regression"  # fractional values: a quantity
            classes, y = np.unique(values, return_inverse=True)
            names = [_plain(c) for c in classes]
        else:
            texts = self.texts()
            numbers = [float(t) if _finite(t) else None for t in set(texts)]
            if all(n is not None for n in numbers) and any(n != int(n) for n in numbers):
                return np.array([float(t) for t in texts]), [], "regression"  # fractional values: a quantity
            names = sorted(set(texts), key=lambda c: (float(c), c) if _finite(c) else (math.inf, c))
            index = {name: i for i, name in enumerate(names)}
            y = np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts))
        if len(names) < 2:
            raise UserError(f"{self.source}: the target column '{self.name}' has a single class ({names[0]!r}); "
                            "classification needs examples of at least two classes")
        return np.asarray(y, dtype=np.int64), names, classes_task(len(names))


def _plain(value: float) -> str:
    """A whole number as the CSV reader names its class ('3', not '3.0')."""
    return str(int(value)) if value == int(value) else str(value)


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _leave_out_identifiers(source: Path, columns: dict[str, Column], features: list[str],
                           rows: int) -> tuple[list[str], list[str]]:
    """tabular._leave_out_identifiers on typed columns: whole numbers unique per row, text mostly distinct."""
    if rows < IDENTIFIER_ROWS:
        return features, []
    left_out = {}
    for name in features:
        column = columns[name]
        if column.numeric and not column.values.type.equals(_bool()):
            values = column.numbers()
            present = values[~np.isnan(values)]
            if len(np.unique(present)) == rows and np.all(present == np.round(present)):
                left_out[name] = "an identifier (a different whole number on every row)"
        elif column.text and column.distinct() > FREE_TEXT_SHARE * rows:
            left_out[name] = f"free text ({column.distinct()} different values in {rows} rows)"
    if not left_out:
        return features, []
    listed = "; ".join(f"'{c}': {why}" for c, why in left_out.items())
    return [c for c in features if c not in left_out], [
        f"{source}: left out of the inputs, {listed}; to use them anyway, list the input columns in "
        f"dataset.features (e.g. features: [{', '.join(features)}])"]


def _bool():
    import pyarrow as pa

    return pa.bool_()


def _categorical(columns: dict[str, Column], setting, features: list[str]) -> list[str]:
    if setting == "auto":
        return [c for c in features if not columns[c].numeric]
    unknown = [c for c in setting if c not in features]
    if unknown:
        raise UserError(f"dataset.categorical names {', '.join(map(repr, unknown))}, which are not feature columns; "
                        f"the features are: {', '.join(features)}")
    return list(setting)
