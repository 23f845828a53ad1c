"""bench/huge.py (`make bench-huge`) runs end to end on tiny tables, both formats, streamed."""

from __future__ import annotations

import json
import sys

import numpy as np
from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import huge  # noqa: E402


def test_tables_are_generated_once_in_chunks(tmp_path):
    csv, parquet = (huge.ensure_table(tmp_path, 2000, fmt) for fmt in ("csv", "parquet"))
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    a, b = pacsv.read_csv(csv), pq.read_table(parquet)
    assert a.num_rows == b.num_rows == 2000
    assert a.column_names == b.column_names == [f"x{i}" for i in range(1, 21)] + ["y"]
    assert np.array_equal(a.column("x3").to_numpy().astype(np.float32), b.column("x3").to_numpy())
    assert set(b.column("y").to_pylist()) == {0, 1}
    stamp = csv.stat().st_mtime_ns
    assert huge.ensure_table(tmp_path, 2000, "csv") == csv and csv.stat().st_mtime_ns == stamp  # reused


def test_huge_benchmark_end_to_end(tmp_path, capsys):
    # Both formats, streamed only (the in-memory path is measured by the same function): the suite stays short.
    code = huge.main(["--rows", "2000", "--small-rows", "2000", "--no-wide", "--jobs", "4", "--formats",
                      "csv,parquet", "--modes", "streamed", "--data", str(tmp_path / "data"), "--results",
                      str(tmp_path)])
    out = capsys.readouterr().out
    for fmt in ("csv", "parquet"):
        assert f"| huge | 2,000 | {fmt} | streamed |" in out
    assert "streamed peak RSS over imports" in out and "first pass over the CSV, 2,000 rows" in out
    assert code == (0 if "FAIL" not in out else 1)
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("huge-*.json")]
    assert len(record["results"]) == 2 and record["rows"] == 2000
    for row in record["results"]:
        assert row["train_rows"] + row["test_rows"] == 2000 and row["epochs"] == 1
        assert row["test_rows"] in range(300, 500)  # test_size 0.2 (hashed when streamed: about 400)
        assert 0 < row["data_s"] < row["process_s"] and 0 <= row["training_s"] < row["process_s"]
        assert row["rows_per_s"] > 0 and row["mb_per_s"] > 0 and row["file_bytes"] > 0
        assert 0 < row["rss_over_imports_mib"] < 1000 and row["rss_after_imports_mib"] > 100
        assert 0.5 < row["test_acc"] <= 1
        assert bool(row["streamed"]) == (row["mode"] == "streamed")
