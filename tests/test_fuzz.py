"""A fixed sample of the hostile-input matrix (tests/fuzz_matrix.py): every case ends in exit 0 or 2, with no
traceback, no hang, the key named in the message and nothing left where the run would go. `make fuzz` runs
all of it."""

from __future__ import annotations

import random

import pytest

import fuzz_matrix

SAMPLE = 120
CASES = random.Random(16).sample(fuzz_matrix.all_cases(), SAMPLE)


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("finished")
    fuzz_matrix.make_finished_runs(folder)
    return folder


@pytest.mark.parametrize("case", CASES, ids=[c.id[:80] for c in CASES])
def test_hostile_input_ends_cleanly(case, finished_runs, tmp_path, one_torch_thread):
    outcome = fuzz_matrix.run_case(case, tmp_path / "case", finished_runs)
    assert not outcome.problems, f"{outcome.problems}: {outcome.output[-1500:]}"
