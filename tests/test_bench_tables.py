"""bench/tables.py (`make bench-tables`) runs end to end on a small table and checks every reader against the careful one."""

from __future__ import annotations

import json
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT))  # bench/ is a folder of the repository, not part of the installed package

from bench import tables  # noqa: E402


def test_tables_benchmark_end_to_end(tmp_path, capsys):
    assert tables.main(["--rows", "2000", "--reps", "1", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for reader in ("csv typed", "csv careful", "parquet", "csv numeric"):
        assert f"| {reader} |" in out
    assert "NO" not in out
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("tables-*.json")]
    assert record["rows"] == 2000 and all(record["same_data"].values()) and len(record["median_s"]) == 4
