"""`clftrain runs` and `clftrain compare`: read run directories only (no torch for runs), tables and a figure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clftrain.views import plots
from conftest import tiny_config
from trained_runs import fit_run, invoke, metrics_rows


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """The tutorial's comparison: the same circles, without and with a non-linearity; and a regression."""
    root = tmp_path_factory.mktemp("runs")
    fit_run(root, tiny_config(name="circles-linear", model={"activation": "none"}), "20260101-090000-circles-linear")
    fit_run(root, tiny_config(name="circles-relu", train={"epochs": 30}, dataset={"val_size": 0.2}),
            "20260102-100000-circles-relu")
    fit_run(root, tiny_config(name="line", task="regression", dataset={"name": "linear"}, model={"layers": []}),
            "nested/line")
    return root


@pytest.fixture
def wide(monkeypatch):
    """A wide terminal, so that every column of a table shows in full."""
    from clftrain import cli

    monkeypatch.setattr(cli.console, "width", 160)


def test_runs_lists_every_run_under_the_root(root, wide):
    result = invoke("runs", root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    linear = next(line for line in lines if "20260101-090000-circles-linear" in line)
    assert all(part in linear for part in ("2026-01-01", "circles", "[8] none", "20", "completed"))
    relu = next(line for line in lines if "20260102-100000-circles-relu" in line)
    assert "[8] relu" in relu and " 30 " in relu
    final_acc = json.loads((root / "20260102-100000-circles-relu" / "summary.json").read_text())["final"]["test_acc"]
    assert f"{final_acc:.2%}" in relu
    line = next(line for line in lines if "nested/line" in line)
    assert "linear" in line and "MAE" in line
    assert lines.index(linear) < lines.index(relu)  # oldest first


def test_runs_shows_unfinished_and_damaged_runs_and_fits_a_narrow_terminal(root, tmp_path, monkeypatch):
    from clftrain import cli

    monkeypatch.setattr(cli.console, "width", 80)
    killed, damaged = root / "20260103-000000-killed", root / "20260104-000000-damaged"
    for run in (killed, damaged):
        run.mkdir()
        (run / "config.yaml").write_text("name: x\ndataset: {name: circles}\n")
        (run / "checkpoints").mkdir()
    (damaged / "summary.json").write_text("{not json")
    try:
        result = invoke("runs", root)
    finally:
        import shutil

        shutil.rmtree(killed)
        shutil.rmtree(damaged)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines if "─" in line) <= 80
    # statuses and scores stay whole (directory names fold on a narrow terminal)
    assert sum("completed" in line for line in lines) == 3
    assert any("incomplete" in line for line in lines) and any("unreadable" in line for line in lines)
    assert sum(line.count("%") for line in lines) == 3  # final of both classification runs, best (val) of one
    assert all(len(line) <= 80 for line in lines if "completed" in line)
    for run in ("20260101-090000-circles-linear", "20260102-100000-circles-relu"):  # whole numbers, not 0.0…
        final = json.loads((root / run / "summary.json").read_text())["final"]["test_acc"]
        assert f"{final:.2%}" in result.output
    assert "…" not in result.output


def test_runs_leaves_out_the_date_then_the_dataset_rather_than_cut_a_number(root, monkeypatch):
    from clftrain import cli

    for width, left_out in ((120, None), (84, "date"), (64, "date and dataset")):
        monkeypatch.setattr(cli.console, "width", width)
        result = invoke("runs", root)
        assert result.exit_code == 0, result.output
        header = next(line for line in result.output.splitlines() if "status" in line and "run" in line)
        if left_out is None:
            assert "date" in header and "dataset" in header and "left out" not in result.output
        else:
            assert f"left out for the console's width: {left_out}" in result.output
            assert "date" not in header and ("dataset" in header) == (left_out == "date")
        assert "…" not in result.output and all(len(line) <= width for line in result.output.splitlines()
                                                 if "completed" in line)


def test_compare_splits_many_runs_into_tables_that_fit_80_columns(root, monkeypatch):
    from clftrain import cli

    monkeypatch.setattr(cli.console, "width", 80)
    runs = [root / "20260101-090000-circles-linear", root / "20260102-100000-circles-relu"] * 3
    result = invoke("compare", *runs, "-o", root / "cmp.png")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    parts = [line for line in lines if line.startswith("Runs compared")]
    assert len(parts) >= 2 and parts[0].startswith("Runs compared (1-") and parts[-1].endswith("of 6)")
    finals = [f'{json.loads((run / "summary.json").read_text())["final"]["test_acc"]:.2%}' for run in runs]
    shown = [word for line in lines if "final test accuracy" in line for word in line.split() if word.endswith("%")]
    assert shown == finals and "…" not in result.output  # every run once, in order, each number whole


def test_runs_on_an_empty_or_missing_root(tmp_path):
    result = invoke("runs", tmp_path)
    assert result.exit_code == 0 and f"no runs under {tmp_path}" in result.output
    result = invoke("runs", tmp_path / "missing")
    assert result.exit_code == 2 and "no runs directory" in result.output and "clftrain fit" in result.output


def test_runs_does_not_import_torch(root):
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom clftrain.cli import app\n"
        f"r = CliRunner().invoke(app, ['runs', r'{root}'])\nassert r.exit_code == 0, r.output\n"
        "print(' '.join(m for m in ('torch', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_compare_prints_metrics_side_by_side_and_overlays_the_curves(root, tmp_path, wide, monkeypatch):
    drawn = {}
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: (drawn.update(fig=fig), save(fig, path)))
    out = tmp_path / "cmp.png"
    result = invoke("compare", root / "20260101-090000-circles-linear", root / "20260102-100000-circles-relu",
                    "-o", out)
    assert result.exit_code == 0, result.output
    for text in ("circles-linear", "circles-relu", "[8] none", "[8] relu", "final test accuracy",
                 "best validation accuracy (epoch)", "final test loss", "parameters", f"wrote {out}"):
        assert text in result.output, text
    assert out.is_file()
    loss_ax, acc_ax = drawn["fig"].axes
    for ax in (loss_ax, acc_ax):
        assert [line.get_label() for line in ax.lines] == ["circles-linear", "circles-relu"]
    assert len(acc_ax.lines[0].get_xdata()) == 20 and len(acc_ax.lines[1].get_xdata()) == 30
    assert loss_ax.get_title() == "Test loss" and acc_ax.get_title() == "Test accuracy"


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        (["20260101-090000-circles-linear"], "compare needs at least two run directories"),
        (["20260101-090000-circles-linear", "nested/line"], "cannot compare classification runs with regression"),
        (["20260101-090000-circles-linear", "nowhere"], "run directory not found"),
        (["20260101-090000-circles-linear", "nested"], "is not a clftrain run directory"),
    ],
)
def test_compare_user_errors(root, tmp_path, runs, expected):
    result = invoke("compare", *(root / r for r in runs), "-o", tmp_path / "x.png")
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


def test_runs_and_compare_show_a_best_only_where_a_validation_split_chose_it(root, wide):
    """The test split decides nothing: not even which of its own epochs looks best."""
    result = invoke("runs", root)
    linear = next(line for line in result.output.splitlines() if "circles-linear" in line)
    relu = next(line for line in result.output.splitlines() if "circles-relu" in line)
    rows = metrics_rows(root / "20260102-100000-circles-relu")
    assert f"{max(r['val_acc'] for r in rows):.2%}" in relu
    assert linear.count("%") == 1  # its final test accuracy only
