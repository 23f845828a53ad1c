"""A streamed table after its first pass: its rows in a spill file, read back a block at a time, each block
split (hashed_split.py) and preprocessed exactly as the in-memory path preprocesses rows.

The first pass (first_pass.py) parses the source once and writes each block's raw values to one spill
file: the candidate numeric columns as float32 (NaN = missing), the text columns as int32 codes into the
categories met so far (-1 = missing), the targets as codes (classes, labels) or float64 values. Every
epoch then reads float32 blocks instead of parsing text again. The file is unlinked as soon as it is
open, so the space comes back when the process ends, however it ends; it takes about 4 bytes a cell, in
the system's temporary folder (TMPDIR). Memory holds one block and the shuffle buffer, whatever the
table's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from clftrain.data.features import Preprocessor
from clftrain.data.hashed_split import SAMPLE_SALT, SPLIT_CODES, split_codes, uniform

# Rows of each split kept in memory for the plots and the report (the metrics always use every row).
VIEW_ROWS = 20_000


@dataclass
class Block:
    start: int  # the position of its first row in the table
    rows: int
    offset: int  # where its arrays begin in the spill file


@dataclass
class StreamedTable:
    source: str  # the file, for messages
    spill: object  # the open, unlinked spill file
    blocks: list[Block]
    numeric_columns: list[str]  # the float32 matrix's columns, in order
    text_columns: list[str]  # the int32 codes' columns, in order
    dictionaries: dict[str, list[str]]  # text column -> its values, by code
    target_kind: str  # "codes" (class or label codes, int32 [n, targets]) or "values" (float64 [n])
    target_count: int  # target columns
    target_map: np.ndarray | None  # code -> class index (classes); None for values and labels
    seed: int
    test_size: float
    val_size: float
    sizes: dict[str, int]  # rows per split
    preprocessor: Preprocessor | None = None  # fitted on the training rows: set at the end of the first pass
    prepare_targets: object = None  # the task's: targets as the loss wants them
    class_counts: dict[str, np.ndarray] = field(default_factory=dict)  # split -> rows per class (or per label)

    # ------------------------------------------------------------------ one block's raw arrays
    def raw(self, block: Block) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(numbers float32 [n, numeric], codes int32 [n, text], targets) of a block."""
        n = block.rows
        self.spill.seek(block.offset)
        numbers = np.fromfile(self.spill, np.float32, n * len(self.numeric_columns)).reshape(n, -1)
        codes = np.fromfile(self.spill, np.int32, n * len(self.text_columns)).reshape(n, -1)
        if self.target_kind == "values":
            targets = np.fromfile(self.spill, np.float64, n)
        else:
            targets = np.fromfile(self.spill, np.int32, n * self.target_count).reshape(n, -1)
        return numbers, codes, targets

    def split_of(self, block: Block) -> np.ndarray:
        return split_codes(np.arange(block.start, block.start + block.rows), self.seed, self.test_size, self.val_size)

    # ------------------------------------------------------------------ preprocessed rows
    def inputs(self, numbers: np.ndarray, codes: np.ndarray, rows: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """The preprocessor's input columns of these rows as the in-memory readers give them: one float32 matrix
        for numbers only, else columns by name (float64 numbers, str or None for text)."""
        pre = self.preprocessor
        picked = numbers[rows]
        numeric = [self.numeric_columns.index(name) for name in pre.numeric]
        if not pre.categorical:
            return picked[:, numeric]
        out = {name: picked[:, j].astype(np.float64) for name, j in zip(pre.numeric, numeric)}
        for name in pre.categorical:
            lookup = np.array([*self.dictionaries[name], None], dtype=object)
            out[name] = lookup[codes[rows, self.text_columns.index(name)]]
        return out

    def targets(self, targets: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
        """The task's targets of these rows: class indices, 0/1 labels or values, as in memory."""
        picked = targets[rows]
        if self.target_kind == "values":
            return self.prepare_targets(picked)
        if self.target_map is not None:
            return self.prepare_targets(self.target_map[picked[:, 0]])
        return self.prepare_targets(picked.astype(np.int64))

    def split_batches(self, split: str, blocks: list[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(features float32, targets) of a split's rows, a block at a time in file order (`blocks`: only these)."""
        code = SPLIT_CODES[split]
        for index in range(len(self.blocks)) if blocks is None else blocks:
            block = self.blocks[index]
            rows = np.flatnonzero(self.split_of(block) == code)
            if len(rows) == 0:
                continue
            numbers, codes, targets = self.raw(block)
            yield self.preprocessor.transform(self.inputs(numbers, codes, rows)), self.targets(targets, rows)

    def share(self, rank: int, ranks: int) -> list[int]:
        """The blocks rank `rank` of `ranks` reads (every ranks-th): disjoint, together every block."""
        return list(range(rank, len(self.blocks), ranks))

    def split_rows(self, split: str, blocks: list[int]) -> int:
        """The rows of a split in these blocks (hashed, nothing read)."""
        code = SPLIT_CODES[split]
        return sum(int((self.split_of(self.blocks[i]) == code).sum()) for i in blocks)

    def samples(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """At most about VIEW_ROWS rows of each split for the plots, drawn by hash (the same rows every time), in
        one pass over the spill; a split without rows is absent."""
        shares = {name: min(1.0, VIEW_ROWS / size) for name, size in self.sizes.items() if size}
        parts: dict[str, list] = {name: [] for name in shares}
        for block in self.blocks:
            codes_of_rows = self.split_of(block)
            draw = uniform(np.arange(block.start, block.start + block.rows), self.seed, SAMPLE_SALT)
            picked = {name: np.flatnonzero((codes_of_rows == SPLIT_CODES[name]) & (draw < share))
                      for name, share in shares.items()}
            if not any(len(rows) for rows in picked.values()):
                continue
            numbers, codes, targets = self.raw(block)
            for name, rows in picked.items():
                if len(rows):
                    parts[name].append((self.preprocessor.transform(self.inputs(numbers, codes, rows)),
                                        self.targets(targets, rows)))
        return {name: (np.concatenate([X for X, _ in got]), np.concatenate([y for _, y in got]))
                for name, got in parts.items() if got}

    def describe(self) -> dict:
        """summary.json's note of how the table was read."""
        return {"streamed": True, "blocks": len(self.blocks), "rows": sum(self.sizes.values())}
