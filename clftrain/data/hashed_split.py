"""The train / validation / test split as a function of a row's position and dataset.seed (`dataset.split: hash`).

A streamed table is never held whole, so its split cannot be a permutation of all rows: each row's
split is decided by a hash of (seed, position) alone, the same in every epoch, every process and
every later `eval`, with nothing stored. The hash (splitmix64) makes the row's draw uniform in [0, 1);
rows below test_size go to test, the next val_size to validation, the rest to training. This is not
stratified: every class's rows are dealt with the same probabilities, so each class keeps its share of
each split in expectation, within about sqrt(n p (1 - p)) rows for a class of n rows.
"""

from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_CODES = {"train": TRAIN, "val": VAL, "test": TEST}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Different salts: which rows a sample for the plots takes is independent of which split a row is in.
SPLIT_SALT, SAMPLE_SALT = 0, 1


def uniform(positions: np.ndarray, seed: int, salt: int = SPLIT_SALT) -> np.ndarray:
    """A float64 in [0, 1) per row position, fixed by (seed, salt, position)."""
    with np.errstate(over="ignore"):
        z = positions.astype(np.uint64) * _GOLDEN + np.uint64((seed * 2 + salt) & (2**64 - 1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def split_codes(positions: np.ndarray, seed: int, test_size: float, val_size: float) -> np.ndarray:
    """TRAIN, VAL or TEST (int8) per row position."""
    u = uniform(positions, seed)
    codes = np.full(len(u), TRAIN, dtype=np.int8)
    codes[u < test_size + val_size] = VAL
    codes[u < test_size] = TEST
    return codes


def hashed_parts(n_rows: int, seed: int, test_size: float, val_size: float) -> dict[str, np.ndarray]:
    """The rows of each split of an n-row table, in file order ("val" only when val_size > 0)."""
    codes = split_codes(np.arange(n_rows), seed, test_size, val_size)
    parts = {name: np.flatnonzero(codes == code) for name, code in SPLIT_CODES.items()}
    if val_size <= 0:
        del parts["val"]
    return parts
