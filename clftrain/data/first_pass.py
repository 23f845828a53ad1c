"""The first pass over a streamed table: every block parsed once, written to the spill file (streamed.py), and
everything preprocessing needs gathered on the way, so that scaling, one-hot encoding, imputation, class
weights and `task: auto` come out as the in-memory path makes them.

Gathered per block, in bounded memory: the row count and each split's rows (hashed_split.py); per numeric
column over the training rows its count, mean and sum of squared deviations (merged block by block with
Chan's formula in float64), the first missing and the first non-finite cell of the whole table; per text
column its values (codes in order of appearance) and their training counts; the targets' values and
class counts per split. Medians are exact: two more passes over the spill (a histogram of each value's
top 16 bits, then the values of the buckets holding the middle). The checks are the in-memory readers'
(tabular.py, arrow_tables.py), with the cell's row named; one differs: an identifier column (left out of
the inputs) is, streamed, a column of whole numbers that rise on every row (a row number, an id given in
order), since uniqueness cannot be checked without holding the column.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from clftrain.components.tasks import classes_task
from clftrain.data.csvtable import TRUE_FALSE
from clftrain.data.features import Preprocessor
from clftrain.data.hashed_split import SPLIT_CODES, TRAIN, split_codes
from clftrain.data.streamed import Block, StreamedTable
from clftrain.data.table_batches import TableBatches, estimated_shape
from clftrain.data.tabular import FREE_TEXT_SHARE, IDENTIFIER_ROWS, MAX_CATEGORIES, check_chosen_columns
from clftrain.errors import UserError

# Distinct values kept per text or target column: beyond it a column is free text (or a regression target).
DISTINCT_CAP = 100_000
FLOAT32_MAX = float(np.finfo(np.float32).max)


def estimated_float32_bytes(cfg) -> int:
    """About what the table takes as float32: its rows (Parquet's metadata, or a CSV file's size over its
    first megabyte's bytes per line) times its columns, times 4."""
    rows, columns = estimated_shape(cfg)
    return 4 * rows * columns


class FirstPass:
    """One pass over the table's batches into a spill file and the statistics; `run()` -> (StreamedTable, task, class names, notes)."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.batches = TableBatches(cfg)
        b = self.batches
        self.source = str(b.path)
        self.candidates = check_chosen_columns(b.path, b.header, b.targets, cfg.features, cfg.exclude)
        self.numeric = [c for c in self.candidates if b.numeric[c]]
        self.text = [c for c in self.candidates if not b.numeric[c]]
        k = len(self.numeric)
        self.count, self.mean, self.m2 = np.zeros(k), np.zeros(k), np.zeros(k)
        self.first_missing: dict[str, int] = {}
        self.missing: dict[str, int] = {}
        self.rising = {c: True for c in self.numeric}  # whole numbers rising on every row so far
        self.last = {c: -np.inf for c in self.numeric}
        self.values: dict[str, dict[str, int]] = {c: {} for c in self.text}  # value -> code
        self.overflow: set[str] = set()
        self.train_counts: dict[str, np.ndarray] = {c: np.zeros(0, np.int64) for c in self.text}
        self.frequent: dict[str, dict[float, int]] = {c: {} for c in self.numeric} \
            if cfg.impute == "most_frequent" else {}
        self.target_values: dict[str, int] = {}  # single target: its texts -> code
        self.target_numeric = True
        self.split_counts = {name: np.zeros(0, np.int64) for name in SPLIT_CODES}
        self.sizes = dict.fromkeys(SPLIT_CODES, 0)
        self.blocks: list[Block] = []
        fd, name = tempfile.mkstemp(prefix="clftrain-stream-", suffix=".bin")
        self.spill = os.fdopen(fd, "w+b")
        os.unlink(name)  # the space is the OS's again when the process ends, however it ends

    # ------------------------------------------------------------------ the pass
    def run(self) -> tuple[StreamedTable, str, list[str], list[str]]:
        """(the table, the task its targets imply, class names, notes of columns left out)."""
        for batch in self.batches:
            self._add(batch)
        if not self.blocks:
            raise UserError(f"{self.source} has columns but no rows")
        return self.finish()

    def _add(self, batch) -> None:
        n, start = batch.rows, batch.start
        val = self.cfg.val_size or 0.0
        splits = split_codes(np.arange(start, start + n), self.cfg.seed, self.cfg.test_size, val)
        train = splits == TRAIN
        for name, code in SPLIT_CODES.items():
            self.sizes[name] += int((splits == code).sum())
        numbers = self._numbers(batch, start, train)
        codes = np.stack([self._codes(name, batch.columns[name], train) for name in self.text], axis=1) \
            if self.text else np.zeros((n, 0), np.int32)
        target_codes, target_values = self._targets(batch, start, splits)
        self.blocks.append(Block(start, n, self.spill.tell()))
        for array in (numbers, codes, target_codes, target_values):
            array.tofile(self.spill)

    def _numbers(self, batch, start: int, train: np.ndarray) -> np.ndarray:
        n = batch.rows
        columns = []
        for j, name in enumerate(self.numeric):
            values = batch.columns[name].to_numpy(zero_copy_only=False).astype(np.float64)
            gap = np.isnan(values)
            if gap.any():
                self.missing[name] = self.missing.get(name, 0) + int(gap.sum())
                self.first_missing.setdefault(name, start + int(np.argmax(gap)) + 1)
            big = np.abs(values) > FLOAT32_MAX
            if big.any():
                row = int(np.argmax(big))
                raise UserError(f"{self.source}, row {start + row + 1:,}, column '{name}': {values[row]} is "
                                f"{'not finite' if np.isinf(values[row]) else 'beyond float32 (±3.4e38)'}; a "
                                "streamed table holds float32 numbers: fix, rescale or remove the value")
            if self.rising[name]:
                present = values[~gap]
                self.rising[name] = not gap.any() and bool(np.all(present == np.round(present))) and bool(
                    np.all(np.diff(present) > 0)) and (len(present) == 0 or present[0] > self.last[name])
                if len(present):
                    self.last[name] = present[-1]
            columns.append(values.astype(np.float32))
        numbers = np.stack(columns, axis=1) if columns else np.zeros((n, 0), np.float32)
        self._merge_moments(numbers[train].astype(np.float64))
        for j, name in enumerate(self.frequent):
            kept = numbers[train, j]
            found, counts = np.unique(kept[~np.isnan(kept)], return_counts=True)
            table = self.frequent[name]
            for value, count in zip(found.tolist(), counts.tolist()):
                table[value] = table.get(value, 0) + count
            if len(table) > 10 * DISTINCT_CAP:
                raise UserError(f"{self.source} column '{name}' has more than {10 * DISTINCT_CAP:,} different values: "
                                "streamed, dataset.impute: most_frequent counts them all; use mean or median")
        return numbers

    def _merge_moments(self, T: np.ndarray) -> None:
        """Chan et al.'s merge of this block's per-column count, mean and squared deviations into the totals."""
        present = ~np.isnan(T)
        nb = present.sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(nb > 0, np.nansum(T, axis=0) / np.maximum(nb, 1), 0.0)
            m2b = np.nansum((T - mb) ** 2, axis=0)
            total = self.count + nb
            delta = mb - self.mean
            self.mean = np.where(total > 0, self.mean + delta * nb / np.maximum(total, 1), 0.0)
            self.m2 = self.m2 + m2b + delta**2 * self.count * nb / np.maximum(total, 1)
        self.count = total

    def _codes(self, name: str, values, train: np.ndarray) -> np.ndarray:
        """A text column's cells as codes of its values in order of appearance (-1: missing, or past the cap)."""
        codes = self._encode(values, self.values[name], name)
        if values.null_count:
            gap = np.asarray(values.is_null())
            self.missing[name] = self.missing.get(name, 0) + int(gap.sum())
        counts = np.bincount(codes[train & (codes >= 0)], minlength=len(self.values[name]))
        old = self.train_counts[name]
        self.train_counts[name] = np.pad(old, (0, len(counts) - len(old))) + counts
        return codes

    def _encode(self, values, table: dict[str, int], name: str) -> np.ndarray:
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(values)
        local = encoded.dictionary.to_pylist()
        for value in local:
            if value not in table and len(table) < DISTINCT_CAP:
                table[value] = len(table)
            elif value not in table:
                self.overflow.add(name)
        lookup = np.array([table.get(v, -1) for v in local] + [-1], dtype=np.int32)
        index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return lookup[index]

    def _targets(self, batch, start: int, splits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow as pa
        import pyarrow.compute as pc

        targets = self.batches.targets
        for name in targets:
            column = batch.columns[name]
            if column.null_count:
                row = int(np.argmax(np.asarray(column.is_null())))
                raise UserError(f"{self.source} row {start + row + 1:,}: the target column '{name}' is empty; every "
                                "row needs a label")
        if len(targets) > 1:
            codes = np.stack([self._yes_no(name, batch.columns[name], start) for name in targets], axis=1)
            self._count_classes(codes, splits, labels=True)
            return codes, np.zeros(0)
        column = batch.columns[targets[0]]
        values = np.zeros(batch.rows)
        if self.target_numeric:
            try:
                values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            except pa.ArrowInvalid:
                self.target_numeric = False
        codes = self._encode(column, self.target_values, targets[0])[:, None]
        self._count_classes(codes, splits, labels=False)
        return codes, values

    def _yes_no(self, name: str, column, start: int) -> np.ndarray:
        texts = np.asarray(column.to_pylist(), dtype=object)
        labels = np.array([TRUE_FALSE.get(str(t).lower(), -1) for t in texts], dtype=np.int32)
        if (labels < 0).any():
            row = int(np.argmax(labels < 0))
            raise UserError(f"{self.source} row {start + row + 1:,}, column '{name}': not 0/1; with several target "
                            "columns each one is a yes/no label (0/1, true/false or yes/no)")
        return labels

    def _count_classes(self, codes: np.ndarray, splits: np.ndarray, labels: bool) -> None:
        for name, code in SPLIT_CODES.items():
            rows = codes[splits == code] if labels else codes[splits == code, 0]
            counts = rows.sum(axis=0) if labels else np.bincount(rows[rows >= 0], minlength=len(self.target_values))
            old = self.split_counts[name]
            size = max(len(old), len(counts))
            self.split_counts[name] = np.pad(old, (0, size - len(old))) + np.pad(counts, (0, size - len(counts)))

    # ------------------------------------------------------------------ after the pass
    def finish(self) -> StreamedTable:
        cfg, rows = self.cfg, sum(self.sizes.values())
        self.spill.flush()
        features, notes = self._features(rows)
        categorical = self._categorical(features)
        self._check(features, categorical)
        task, class_names, target_map, kind = self._target()
        val = cfg.val_size or 0.0
        table = StreamedTable(
            source=self.source, spill=self.spill, blocks=self.blocks, numeric_columns=self.numeric,
            text_columns=self.text, dictionaries={c: list(self.values[c]) for c in self.text}, target_kind=kind,
            target_count=len(self.batches.targets), target_map=target_map, seed=cfg.seed, test_size=cfg.test_size,
            val_size=val, sizes={k: v for k, v in self.sizes.items() if k != "val" or val > 0})
        for name in table.sizes:
            counts = self.split_counts[name]
            if target_map is not None:
                counts = np.pad(counts, (0, len(target_map) - len(counts)))[np.argsort(target_map)]
            table.class_counts[name] = counts
        numeric = [c for c in features if c not in categorical]
        table.preprocessor = self._preprocessor(table, numeric, categorical)
        return table, task, class_names, notes

    def _features(self, rows: int) -> tuple[list[str], list[str]]:
        features = list(self.candidates)
        if self.cfg.features is not None or rows < IDENTIFIER_ROWS:
            return features, []
        left_out = {}
        for name in features:
            if self.rising.get(name):
                left_out[name] = "an identifier (whole numbers rising on every row)"
            elif name in self.values and (name in self.overflow or len(self.values[name]) > FREE_TEXT_SHARE * rows):
                shown = f"more than {DISTINCT_CAP:,}" if name in self.overflow else f"{len(self.values[name]):,}"
                left_out[name] = f"free text ({shown} different values in {rows:,} rows)"
        if not left_out:
            return features, []
        listed = "; ".join(f"'{c}': {why}" for c, why in left_out.items())
        kept = [c for c in features if c not in left_out]
        if not kept:
            raise UserError(f"{self.source} has no feature columns besides the target ({listed}); add input columns")
        note = (f"{self.source}: left out of the inputs, {listed}; to use them anyway, list the input columns in "
                f"dataset.features (e.g. features: [{', '.join(features)}])")
        return kept, [note]

    def _categorical(self, features: list[str]) -> list[str]:
        setting = self.cfg.categorical
        if setting == "auto":
            return [c for c in features if c in self.values]
        unknown = [c for c in setting if c not in features]
        if unknown:
            raise UserError(f"dataset.categorical names {', '.join(map(repr, unknown))}, which are not feature "
                            f"columns; the features are: {', '.join(features)}")
        numeric_declared = [c for c in setting if c not in self.values]
        if numeric_declared:
            raise UserError(f"dataset.categorical names the numeric column(s) {', '.join(map(repr, numeric_declared))}; "
                            "streamed, a categorical column must hold text in the file's first block")
        return list(setting)

    def _check(self, features: list[str], categorical: list[str]) -> None:
        for name in features:
            where = f"{self.source} column '{name}'"
            if name in self.values and name not in categorical:
                raise UserError(f"{where} holds text, not numbers; declare it in dataset.categorical (or set "
                                "categorical: auto) to one-hot encode it, or leave it out with dataset.exclude")
            if name in categorical and (name in self.overflow or len(self.values[name]) > MAX_CATEGORIES):
                raise UserError(f"{where} has {len(self.values[name]):,}{'+' if name in self.overflow else ''} "
                                f"categories; one-hot encoding more than {MAX_CATEGORIES} would drown the other "
                                f"inputs: leave it out with dataset.exclude: ['{name}'], or group its rare values")
            if not self.cfg.impute and self.missing.get(name):
                first = self.first_missing.get(name)
                at = f", the first in row {first:,}" if first else ""
                raise UserError(f"{self.source} has missing values in '{name}' ({self.missing[name]:,} rows{at}); set "
                                "dataset.impute to mean, median or most_frequent to fill them from the training "
                                "rows, or fill them in the file")

    def _target(self) -> tuple[str, list[str], np.ndarray | None, str]:
        """(implied task, class names, code -> class index, how the spill holds the targets)."""
        targets = self.batches.targets
        if len(targets) > 1:
            return "multilabel", list(targets), None, "codes"
        name = targets[0]
        texts = list(self.target_values)
        overflow = name in self.overflow
        if self.target_numeric:
            numbers = [float(t) for t in texts]
            if overflow or any(v != int(v) for v in numbers if np.isfinite(v)):
                return "regression", [], None, "values"
        elif overflow:
            raise UserError(f"{self.source}: the target column '{name}' has more than {DISTINCT_CAP:,} different "
                            "values and not all are numbers: too many classes to classify")
        names = sorted(texts, key=lambda c: (float(c), c) if _finite(c) else (np.inf, c))
        if len(names) < 2:
            raise UserError(f"{self.source}: the target column '{name}' has a single class ({names[0]!r}); "
                            "classification needs examples of at least two classes")
        order = sorted(range(len(texts)), key=lambda i: (float(texts[i]), texts[i]) if _finite(texts[i])
                       else (np.inf, texts[i]))
        target_map = np.empty(len(texts), dtype=np.int64)
        target_map[order] = np.arange(len(texts))
        return classes_task(len(names)), names, target_map, "codes"

    def _preprocessor(self, table: StreamedTable, numeric: list[str], categorical: list[str]) -> Preprocessor:
        cfg = self.cfg
        index = [self.numeric.index(c) for c in numeric]
        fill: dict = {}
        if cfg.impute:
            if cfg.impute == "mean":
                fill.update({c: float(self.mean[j]) if self.count[j] else 0.0 for c, j in zip(numeric, index)})
            elif cfg.impute == "median":
                fill.update(zip(numeric, exact_medians(table, index, [int(self.count[j]) for j in index])))
            else:
                fill.update({c: _most_frequent(self.frequent[c]) for c in numeric})
            for col in categorical:
                fill[col] = _most_frequent_text(self.values[col], self.train_counts[col])
        categories = {}
        for col in categorical:
            seen = [v for v, code in self.values[col].items() if code < len(self.train_counts[col])
                    and self.train_counts[col][code] > 0]
            categories[col] = sorted(set(seen) | ({fill[col]} if isinstance(fill.get(col), str) else set()))
        pre = Preprocessor(numeric=list(numeric), categorical=categories, fill=fill)
        if cfg.standardize and numeric:
            transform = getattr(cfg, "numeric_transform", "standard")
            pre.numeric_transform = transform
            if transform == "robust_clip":
                pre.mean, pre.std = robust_statistics(table, index, [int(self.count[j]) for j in index],
                                                     [fill.get(c) for c in numeric])
            else:
                pre.mean, pre.std = self._moments_after_fill(index, [fill.get(c) for c in numeric])
        return pre

    def _moments_after_fill(self, index: list[int], fills: list) -> tuple[list[float], list[float]]:
        """Each column's mean and std over the training rows once its missing cells hold the fill value."""
        n_train = self.sizes["train"]
        means, stds = [], []
        for j, value in zip(index, fills):
            n, mean, m2 = self.count[j], self.mean[j], self.m2[j]
            k = n_train - n
            if k > 0 and value is not None:
                delta = value - mean
                mean, m2 = mean + delta * k / n_train, m2 + delta**2 * n * k / n_train
                n = n_train
            std = float(np.sqrt(m2 / n)) if n else 0.0
            means.append(float(mean))
            stds.append(std if std > 0 else 1.0)
        return means, stds


def order_statistics(table: StreamedTable, wanted: dict[int, tuple[list[int], float | None, int]]
                     ) -> dict[int, list[float]]:
    """For each numeric column j of `wanted` (j -> (ranks, extra, extra_count)): the values at those ranks
    (0-based) of its present training values (the float32 values the spill holds) plus `extra_count` copies of
    `extra` (the fill of its missing cells). Exact, in two passes over the spill for all the columns together:
    a histogram of the values' top 16 bits, then the sorted values of the buckets holding the ranks."""
    def training_values():  # (column, its present training values of one block), and the fills' copies
        for block in table.blocks:
            numbers = table.raw(block)[0][table.split_of(block) == TRAIN]
            for j in wanted:
                yield j, numbers[:, j][~np.isnan(numbers[:, j])]
        for j, (_, extra, count) in wanted.items():
            if count:
                yield j, np.full(count, extra, np.float32)

    histograms = {j: np.zeros(2**16, np.int64) for j in wanted}
    for j, values in training_values():
        histograms[j] += np.bincount(_order_key(values) >> 16, minlength=2**16)
    ends = {j: np.cumsum(h) for j, h in histograms.items()}
    buckets = {j: sorted({int(np.searchsorted(ends[j], r, side="right")) for r in ranks})
               for j, (ranks, _, _) in wanted.items()}
    kept: dict[int, list[np.ndarray]] = {j: [] for j in wanted}
    for j, values in training_values():
        kept[j].append(values[np.isin(_order_key(values) >> 16, buckets[j])])
    out = {}
    for j, (ranks, _, _) in wanted.items():
        values = np.sort(np.concatenate(kept[j]))
        offset, seen = {}, 0  # where each kept bucket begins among the kept values
        for b in buckets[j]:
            offset[b], seen = seen, seen + int(histograms[j][b])
        found = []
        for r in ranks:
            b = int(np.searchsorted(ends[j], r, side="right"))
            found.append(float(values[offset[b] + r - int(ends[j][b] - histograms[j][b])]))
        out[j] = found
    return out


def exact_medians(table: StreamedTable, columns: list[int], present: list[int]) -> list[float]:
    """The median of each numeric column's `present` training values (order_statistics)."""
    wanted = {j: ([n // 2] if n % 2 else [n // 2 - 1, n // 2], None, 0) for j, n in zip(columns, present) if n}
    found = order_statistics(table, wanted) if wanted else {}
    return [float(np.mean(np.array(found[j], dtype=np.float64))) if j in found else 0.0 for j in columns]


def robust_statistics(table: StreamedTable, columns: list[int], present: list[int],
                      fills: list) -> tuple[list[float], list[float]]:
    """robust_clip's median and spread per column (features._robust_statistics: np.quantile's linear
    interpolation at 0.25, 0.5, 0.75 of the filled training values; half the range where the quartiles meet;
    1 for a constant column), from exact order statistics of the column's `present` training values."""
    n_train = table.sizes["train"]
    wanted, positions = {}, {}
    for j, count, fill in zip(columns, present, fills):
        extra = n_train - count if fill is not None else 0
        n = count + extra
        if n == 0:
            continue
        positions[j] = [(n - 1) * q for q in (0.25, 0.5, 0.75)]
        ranks = {0, n - 1}
        for h in positions[j]:
            ranks |= {int(np.floor(h)), min(int(np.floor(h)) + 1, n - 1)}
        wanted[j] = (sorted(ranks), fill, extra)
    found = order_statistics(table, wanted) if wanted else {}
    medians, spreads = [], []
    for j in columns:
        if j not in found:
            medians.append(0.0)
            spreads.append(1.0)
            continue
        value = dict(zip(wanted[j][0], found[j]))
        low, median, high = (value[int(np.floor(h))] + (h - np.floor(h)) *
                             (value[min(int(np.floor(h)) + 1, max(value))] - value[int(np.floor(h))])
                             for h in positions[j])
        spread = high - low if high - low > 0 else (value[max(value)] - value[0]) / 2
        medians.append(float(median))
        spreads.append(float(spread) if np.isfinite(spread) and spread > 0 else 1.0)
    return medians, spreads


def _order_key(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort as the float32 values do."""
    bits = values.astype(np.float32).view(np.uint32)
    return np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000)).astype(np.int64)


def _most_frequent(counts: dict[float, int]) -> float:
    if not counts:
        return 0.0
    top = max(counts.values())
    return float(min(v for v, c in counts.items() if c == top))


def _most_frequent_text(values: dict[str, int], counts: np.ndarray) -> str:
    if not len(counts) or counts.max() == 0:
        return next(iter(values), "")
    top = counts.max()
    return min(v for v, code in values.items() if code < len(counts) and counts[code] == top)


def _finite(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False
