"""A CSV or Parquet table read as a stream of typed batches, each knowing the position of its first row.

The streamed path (streamed.py) never holds a table whole. A CSV file is read in blocks of about
BLOCK_BYTES cut at a line's end, each parsed by pyarrow with the column types fixed by the first block
(numbers as float64, text as strings, the target as text), so a block's rows are numbered exactly and a
bad cell deep in the file is named by its row and column. Parquet files are read a batch of rows at a
time, in file order (files of a folder in name order), with the same types. Text values are stripped of
surrounding spaces and the missing markers the CSV readers know (csvtable.MISSING_MARKERS) are missing.
A CSV value with a line break inside quotes is not supported here (the in-memory readers take it).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from clftrain.errors import UserError

BLOCK_BYTES = 8 * 2**20
PARQUET_BATCH_ROWS = 65_536


@dataclass
class Batch:
    start: int  # the position (0-based) of its first row in the whole table
    columns: dict  # column name -> pyarrow Array: float64 (numbers; null = missing) or string (text, targets)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))


class TableBatches:
    """The batches of a `dataset: {name: csv | parquet}` table; `numeric[name]` says how each column is read."""

    def __init__(self, cfg) -> None:
        self.path = Path(cfg.path)
        self.kind = cfg.name
        self.targets = [cfg.target] if isinstance(cfg.target, str) else list(cfg.target)
        if self.kind == "parquet":
            self.files = _parquet_files(self.path)
            self.header, self.numeric = self._parquet_types()
        else:
            self.header, self.numeric, self._header_line = self._csv_types()

    def __iter__(self) -> Iterator[Batch]:
        return self._parquet_batches() if self.kind == "parquet" else self._csv_batches()

    # ------------------------------------------------------------------ Parquet
    def _parquet_types(self) -> tuple[list[str], dict[str, bool]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(self.files[0])
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"cannot read Parquet {self.files[0]}: {str(exc).splitlines()[0][:300]}") from None
        numeric = {}
        for field in schema:
            kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
            numeric[field.name] = field.name not in self.targets and (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                or pa.types.is_decimal(kind) or pa.types.is_null(kind))
        return list(schema.names), numeric

    def _parquet_batches(self) -> Iterator[Batch]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        start = 0
        for path in self.files:
            try:
                # Not pre-buffered: pyarrow would hold a whole row group's bytes (884 MiB at 1M-row groups).
                file = pq.ParquetFile(path, pre_buffer=False, buffer_size=2**20)
                if file.schema_arrow.names != self.header:
                    raise UserError(f"{path} has the columns {file.schema_arrow.names}, not those of {self.files[0]} "
                                    f"({self.header}); a folder's Parquet files need one schema")
                for batch in file.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                    columns = {name: self._typed(name, batch.column(name)) for name in self.header}
                    yield Batch(start, columns)
                    start += batch.num_rows
            except pa.ArrowException as exc:
                raise UserError(f"cannot read Parquet {path} (after row {start:,}): "
                                f"{str(exc).splitlines()[0][:300]}") from None

    def _typed(self, name: str, values):
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if self.numeric[name]:
            return pc.cast(values, pa.float64())
        return pc.utf8_trim_whitespace(pc.cast(values, pa.string()))

    # ------------------------------------------------------------------ CSV
    def _csv_types(self) -> tuple[list[str], dict[str, bool], bytes]:
        """The header, whether each column is numeric (as pyarrow reads the first block), the header line."""
        import pyarrow as pa

        from clftrain.readers import regular_file

        regular_file(self.path, "CSV file")  # a FIFO or device would block the reader
        with open(self.path, "rb") as f:
            header_line = f.readline()
            first = f.read(BLOCK_BYTES)
        cut = first.rfind(b"\n")
        sample = first[: cut + 1] if cut >= 0 else first
        try:
            table = _read_csv(header_line + sample, {name: pa.string() for name in self.targets})
        except (pa.ArrowException, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read CSV {self.path}: {str(exc).splitlines()[0][:300]}") from None
        numeric = {}
        for name in table.column_names:
            kind = table.column(name).type
            numeric[name] = name not in self.targets and (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind))
        if len(set(table.column_names)) != len(table.column_names):
            raise UserError(f"{self.path}: the header names a column twice; give every column its own name")
        return list(table.column_names), numeric, header_line

    def _csv_types_fixed(self) -> dict:
        import pyarrow as pa

        return {name: pa.float64() if self.numeric[name] else pa.string() for name in self.header}

    def _csv_batches(self) -> Iterator[Batch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        types = self._csv_types_fixed()
        start = 0
        for data in _line_blocks(self.path):
            try:
                table = _read_csv(self._header_line + data, types)
            except pa.ArrowException as exc:
                raise self._bad_block(data, start, exc) from None
            columns = {}
            for name in self.header:
                values = table.column(name).combine_chunks()
                columns[name] = values if self.numeric[name] else pc.utf8_trim_whitespace(values)
            yield Batch(start, columns)
            start += table.num_rows

    def _bad_block(self, data: bytes, start: int, exc: Exception) -> UserError:
        """The first cell of the block that is not what its column holds, by row and column."""
        import pyarrow as pa

        from clftrain.data.csvtable import as_number, is_missing

        try:
            texts = _read_csv(self._header_line + data, {name: pa.string() for name in self.header})
        except pa.ArrowException:  # not even text: a row with the wrong number of cells, say
            return UserError(f"{self.path}, in the rows from {start + 1:,}: {str(exc).splitlines()[0][:300]}; "
                             "every row needs one cell per column of the header")
        for name in self.header:
            if not self.numeric[name]:
                continue
            for i, cell in enumerate(texts.column(name).to_pylist()):
                if cell is not None and not is_missing(cell.strip()) and as_number(cell) is None:
                    return UserError(
                        f"{self.path}, row {start + i + 1:,}, column '{name}': {cell[:80]!r} is not a number, and the "
                        f"rows before it made '{name}' a numeric column; fix the cell, or read the column as text: "
                        f"declare it in dataset.categorical")
        return UserError(f"{self.path}, in the rows from {start + 1:,}: {str(exc).splitlines()[0][:300]}")


def estimated_shape(cfg) -> tuple[int, int]:
    """(rows, columns) of a table without reading it: Parquet's metadata, or for a CSV file its size over the
    bytes per line of its first megabyte, and its header's columns."""
    import pyarrow as pa

    path = Path(cfg.path)
    try:
        if cfg.name == "parquet":
            import pyarrow.parquet as pq

            metas = [pq.ParquetFile(f).metadata for f in _parquet_files(path)]
            return sum(m.num_rows for m in metas), metas[0].num_columns
        with open(path, "rb") as f:
            header = f.readline()
            sample = f.read(2**20)
    except (pa.ArrowException, OSError, UserError):
        return 0, 0  # not readable: the in-memory reader says why
    per_line = len(sample) / max(sample.count(b"\n"), 1) or 1
    return int(path.stat().st_size / per_line), header.count(b",") + 1


def _parquet_files(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise UserError(f"{path} holds no .parquet files; give a Parquet file or a folder of them")
        return files
    return [str(path)]


def _line_blocks(path: Path) -> Iterator[bytes]:
    """The file after its header line, in blocks of about BLOCK_BYTES that end at a line's end."""
    with open(path, "rb") as f:
        f.readline()
        carry = b""
        while True:
            chunk = f.read(BLOCK_BYTES)
            if not chunk:
                if carry.strip():
                    yield carry
                return
            cut = chunk.rfind(b"\n")
            if cut < 0:  # a line longer than a block: keep reading
                carry += chunk
                continue
            block, carry = carry + chunk[: cut + 1], chunk[cut + 1 :]
            if block.strip():
                yield block


def _read_csv(data: bytes, column_types: dict):
    import pyarrow.csv as pacsv

    from clftrain.data.csvtable import null_spellings

    return pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
        null_values=null_spellings(), strings_can_be_null=True, true_values=[], false_values=[], timestamp_parsers=[],
        column_types=column_types))
