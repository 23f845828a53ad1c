"""`clftrain report` and the report.html fit writes: self-contained, complete, right numbers, rendered by a browser.

The browser tests run Debian's chromium headless (`.ci/run` and `make test` install it where they can); they
skip, saying so, only where /usr/bin/chromium is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import tiny_config
from trained_runs import fit_run, invoke

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is absent (Debian's chromium "
                                                                    "package: apt-get install chromium)")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = {
        "circles": fit_run(root, tiny_config(name="circles", dataset={"val_size": 0.2})),
        "blobs": fit_run(root, tiny_config(name="blobs", dataset={"name": "blobs", "centers": 3},
                                           train={"optimizer": "adam", "lr": 0.02})),
        "line": fit_run(root, tiny_config(name="line", task="regression", dataset={"name": "linear"},
                                          model={"layers": []})),
        "multi": fit_run(root, tiny_config(name="multi", dataset={"name": "multilabel", "n_features": 3,
                                                                   "n_classes": 3})),
    }
    config = root / "sweep.yaml"
    config.write_text(yaml.safe_dump(tiny_config(name="sw", train={"epochs": 6, "log_every": 3})))
    result = invoke("sweep", config, "--grid", "train.lr=0.3,0.03", "--out", root / "sweep", "-q")
    assert result.exit_code == 0, result.output
    made["sweep"] = root / "sweep"
    return made


def page_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="clftrain-data">(.*?)</script>', html, re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def loads_nothing(html: str) -> list[str]:
    """Every src/href/url() that would load something from elsewhere (anything but data: URIs and #anchors;
    relative links to other reports are navigation, loaded only when clicked)."""
    found = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\'\s>]+)', html) + re.findall(r"url\(([^)]*)\)", html)
    return [url for url in found if re.match(r"\s*(https?:|//|ftp:|file:)", url)
            or (url.startswith(("http", "//")))]


# ---------------------------------------------------------------------- what fit writes
def test_fit_writes_a_self_contained_report_with_every_section(runs):
    run = runs["circles"]
    html = (run / "report.html").read_text()
    assert loads_nothing(html) == []
    assert "Content-Security-Policy" in html and "default-src 'none'" in html  # the browser may load nothing
    assert not re.search(r"<(img|script)[^>]+src=[\"'](?!data:)", html)  # no image or script from a file either
    for anchor in ("glance", "metrics", "curves", "boundary", "classes", "ranking", "model", "data", "config"):
        assert f'<section id="{anchor}">' in html, anchor
    images = re.findall(r'<img src="data:image/(png|gif);base64,', html)
    assert images.count("gif") == 1 and images.count("png") >= 4 + 2  # curves, boundary, confusion + the frames
    assert "name: circles" in html and "report: true" in html  # the resolved config
    summary = json.loads((run / "summary.json").read_text())
    assert f"{summary['model']['parameters']:,}" in html and "2 → 8 → 1" in html  # capacity
    data = page_data(html)
    assert data["summary"]["final"] == summary["final"] and len(data["metrics_csv"]) == 20
    assert "validation" in html and f"epoch {summary['best']['epoch']}" in html  # the chosen checkpoint's column
    assert "test (reported only)" in html
    snapshots = np.load(run / "snapshots" / "boundary.npz")
    # before the first step, then 7 of the 20 evaluated epochs spaced geometrically, the last included
    assert snapshots["epochs"].tolist() == [0, 1, 2, 4, 6, 8, 13, 20] and snapshots["regions"].shape == (8, 101, 101)
    assert (run / "snapshots" / "boundary.npz").stat().st_size < 20_000  # stored small
    assert "before training" in html and "epoch 20 · train" in html


def test_no_report_writes_none_and_takes_no_snapshots(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    result = invoke("fit", config, "--out", tmp_path / "run", "-q", "--no-report")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "report.html").exists() and not (tmp_path / "run" / "snapshots").exists()
    assert "report: false" in (tmp_path / "run" / "config.yaml").read_text()
    assert (tmp_path / "run" / "plots" / "curves.png").is_file()  # the plots as always
    # resumed with more epochs: the config's setting holds
    result = invoke("fit", "--resume", tmp_path / "run", "--set", "train.epochs=30")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "run" / "report.html").exists()
    # the command writes one all the same, on request, and says the run has no snapshots
    result = invoke("report", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "no snapshots/boundary.npz (trained with report: false" in (tmp_path / "run" / "report.html").read_text()


def test_a_resumed_run_keeps_its_snapshots_and_goes_on(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(train={"epochs": 20, "log_every": 10, "eval_every": 10})))
    assert invoke("fit", config, "--out", tmp_path / "run", "-q").exit_code == 0
    assert np.load(tmp_path / "run" / "snapshots" / "boundary.npz")["epochs"].tolist() == [0, 10, 20]
    result = invoke("fit", "--resume", tmp_path / "run", "--set", "train.epochs=40")
    assert result.exit_code == 0, result.output
    epochs = np.load(tmp_path / "run" / "snapshots" / "boundary.npz")["epochs"].tolist()
    assert epochs == [0, 10, 20, 30, 40]  # the first session's, then the second's
    assert "epoch 40 · train" in (tmp_path / "run" / "report.html").read_text()


def test_snapshot_epochs_are_few_evaluated_epochs_spaced_geometrically():
    from clftrain.config import TrainConfig
    from clftrain.runs.snapshots import SNAPSHOT_COUNT, snapshot_epochs

    epochs = snapshot_epochs(TrainConfig(epochs=1000, log_every=100))  # evaluated every 10 epochs
    assert len(epochs) == SNAPSHOT_COUNT and epochs[0] == 10 and epochs[-1] == 1000
    assert all(e % 10 == 0 for e in epochs) and all(b > a for a, b in zip(epochs, epochs[1:]))
    assert epochs[3] - epochs[2] < epochs[-1] - epochs[-2]  # denser early, where the boundary moves most
    assert snapshot_epochs(TrainConfig(epochs=3, log_every=1)) == [1, 2, 3]
    assert snapshot_epochs(TrainConfig(epochs=1001, log_every=7, eval_every=1))[-1] == 1001


# ---------------------------------------------------------------------- kinds of runs
def test_multiclass_report_has_one_vs_rest_curves_of_every_class(runs):
    html = (runs["blobs"] / "report.html").read_text()
    data = page_data(html)
    assert data["classifier"]["scope"] == "one-vs-rest per class"
    assert [label for label, _, _ in data["classifier"]["auc"]] == ["0", "1", "2"]
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 3  # ROC, PR, reliability
    assert "top-class probability (confidence)" in html
    assert [row["class"] for row in data["classifier"]["per_class"]] == ["0", "1", "2", "macro average",
                                                                         "weighted average"]


def test_regression_report_says_the_curves_do_not_apply(runs):
    html = (runs["line"] / "report.html").read_text()
    assert "ROC, precision-recall and calibration curves</b>: not applicable to a regression task" in html
    assert '<section id="ranking">' not in html and '<section id="predictions">' in html
    assert "mean absolute error" in html and page_data(html)["regression"]["mae"] >= 0
    assert not (runs["line"] / "snapshots").exists()


def test_multilabel_report_has_a_row_and_a_curve_per_label(runs):
    data = page_data((runs["multi"] / "report.html").read_text())
    assert data["classifier"]["scope"] == "per label" and len(data["classifier"]["auc"]) == 3
    assert len(data["classifier"]["per_class"]) == 3 + 2


def test_the_numbers_are_scikit_learns():
    from sklearn import metrics as skm

    from clftrain.inference.report import per_class_table, ranking_curve, reliability

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.4
    score = np.round(rng.random(300) * 0.6 + y * 0.3, 2)  # rounded: ties between rows
    curve = ranking_curve(y, score)
    assert curve["auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    assert curve["ap"] == pytest.approx(skm.average_precision_score(y, score), abs=1e-12)
    fpr, tpr, _ = skm.roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(curve["fpr"], fpr, atol=1e-6) and np.allclose(curve["tpr"], tpr, atol=1e-6)
    assert ranking_curve(np.ones(5, bool), np.arange(5.0))["auc"] is None  # one class only: undefined
    truth, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    counts = skm.confusion_matrix(truth, predicted, labels=range(4))
    table = per_class_table(counts, list("abcd"))
    p, r, f, s = skm.precision_recall_fscore_support(truth, predicted, labels=range(4), zero_division=0)
    assert [row["f1"] for row in table[:4]] == pytest.approx(f) and [row["support"] for row in table[:4]] == list(s)
    macro = skm.precision_recall_fscore_support(truth, predicted, average="macro", zero_division=0)
    assert table[4]["f1"] == pytest.approx(macro[2]) and table[4]["precision"] == pytest.approx(macro[0])
    bins = reliability(np.array([0.05, 0.05, 0.95, 0.95]), np.array([0, 1, 1, 1]), "p", "freq")
    assert bins["counts"][0] == 2 and bins["observed"][0] == 0.5 and bins["ece"] == pytest.approx((0.45 + 0.05) / 2)


def test_the_frames_use_the_plots_region_colours():
    from clftrain.views import plots, report_figures

    assert report_figures.REGION_ALPHA_OF_PLOTS == plots.REGION_ALPHA
    assert np.array_equal(report_figures.TAB10 / 255, np.round(plots.class_colours(10)[:, :3] * 255) / 255)


# ---------------------------------------------------------------------- sweeps, several runs
def test_sweep_report_ranks_the_runs_in_a_sortable_table(runs):
    sweep = runs["sweep"]
    result = invoke("report", sweep)
    assert result.exit_code == 0, result.output
    html = (sweep / "report.html").read_text()
    assert loads_nothing(html) == []
    ranked = [line.split(",")[1] for line in (sweep / "sweep.csv").read_text().splitlines()[1:]]
    table = html[html.index('<table class="sortable">'):]
    assert [table.index(f">{name}<") for name in ranked] == sorted(table.index(f">{name}<") for name in ranked)
    assert 'addEventListener("click"' in html and "aria-sort" in html
    assert f'href="{ranked[0]}/report.html"' in html  # each run's own report, a click away
    assert '<section id="curves">' in html and html.count("data:image/png;base64,") >= 1
    assert page_data(html)["ranked_by"] == "val_acc_mean"
    run_page = (sweep / ranked[0] / "report.html").read_text()  # a run trained with seeds has its own report
    assert "runs trained with seeds take no snapshots" in run_page and "median" in run_page


def test_report_of_several_runs_compares_them(runs, tmp_path):
    out = tmp_path / "both.html"
    result = invoke("report", runs["circles"], runs["blobs"], "-o", out)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert loads_nothing(html) == []
    assert '<section id="differences">' in html and "dataset.name" in html and "blobs" in html
    assert html.count('class="sortable"') == 1 and "data:image/png;base64," in html
    assert [row["run"] for row in page_data(html)["runs"]] == ["circles", "blobs"]
    assert re.search(r'href="[^"]*circles/report\.html"', html)


# ---------------------------------------------------------------------- bad input, what is never overwritten
def test_bad_input_is_a_user_error(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        ((tmp_path / "missing",), "not found"),
        ((tmp_path / "file.txt",), "is a file"),
        ((tmp_path / "empty",), "is not a clftrain run directory (no config.yaml) nor a sweep directory"),
        ((runs["circles"], "-o", tmp_path), "is a directory"),
        ((runs["circles"], "-o", tmp_path / "file.txt" / "r.html"), "cannot write the report to"),
        ((runs["circles"], "-o", runs["circles"] / "config.yaml"), "is a file of the run directory"),
        ((runs["circles"], runs["sweep"]), "is a sweep directory: report it alone"),
        ((runs["circles"], runs["line"]), "cannot compare classification runs with regression runs"),
        ((runs["circles"], runs["blobs"], "--seed", "3"), "apply to the report of one run"),
    ]
    for args, message in cases:
        result = invoke("report", *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert "name: circles" in (runs["circles"] / "config.yaml").read_text()  # untouched


def test_only_a_report_is_replaced(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["circles"], run)
    (run / "report.html").write_text("my own notes")  # not a report: the default path refuses it
    result = invoke("report", run)
    assert result.exit_code == 2 and "exists and is not a clftrain report" in result.output
    assert (run / "report.html").read_text() == "my own notes"
    mine = tmp_path / "mine.html"
    mine.write_text("named explicitly")  # -o names it: replaced
    assert invoke("report", run, "-o", mine).exit_code == 0 and "clftrain report" in mine.read_text()
    (run / "report.html").unlink()
    assert invoke("report", run).exit_code == 0 and invoke("report", run).exit_code == 0  # its own report, again
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["confusion_matrix.png", "curves.png",
                                                                  "decision_boundary.png"]


# ---------------------------------------------------------------------- in a real browser
CHECK_HEAD = """<script>
window.__problems = [];
window.addEventListener("error", function (e) { window.__problems.push("error: " + (e.message || e.type)); }, true);
document.addEventListener("securitypolicyviolation", function (e) {
  window.__problems.push("blocked: " + e.blockedURI + " by " + e.violatedDirective); });
var __error = console.error;
console.error = function () { window.__problems.push("console.error: " + Array.prototype.join.call(arguments, " "));
  __error.apply(console, arguments); };
</script>"""
CHECK_END = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {alt: img.alt, ok: img.complete && img.naturalWidth > 0, width: img.naturalWidth}; });
  var sorted = null, table = document.querySelector("table.sortable");
  if (table) {
    var head = table.tHead.rows[0].cells[0], first = function () {
      return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; }); };
    head.click(); var up = first(); head.click(); var down = first();
    sorted = {up: up, down: down};
  }
  var out = document.createElement("pre");
  out.id = "__check";
  out.textContent = JSON.stringify({problems: window.__problems, images: images, sorted: sorted,
                                    svgs: document.querySelectorAll("svg").length});
  document.body.appendChild(out);
});
</script>"""


def chromium(args: list[str], page: Path) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=90)


def rendered(html_file: Path, tmp_path: Path) -> dict:
    """The page loaded by chromium with the checks above injected: its problems, its images, a sort."""
    html = html_file.read_text()
    checked = tmp_path / f"checked-{html_file.parent.name}-{html_file.name}"
    checked.write_text(html.replace("<head>", "<head>" + CHECK_HEAD, 1).replace("</body>", CHECK_END + "</body>", 1))
    result = chromium(["--dump-dom"], checked)
    found = re.search(r'<pre id="__check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"chromium gave no result (exit {result.returncode}): {result.stderr[-2000:]}"
    import html as html_module

    return json.loads(html_module.unescape(found.group(1)))


@needs_chromium
def test_chromium_loads_the_run_report_without_errors_and_decodes_every_image(runs, tmp_path):
    check = rendered(runs["circles"] / "report.html", tmp_path)
    assert check["problems"] == []
    assert len(check["images"]) >= 6 and all(image["ok"] for image in check["images"]), check["images"]
    assert check["svgs"] == 3
    assert check["sorted"]["up"] == sorted(check["sorted"]["up"]) and check["sorted"]["down"] == check["sorted"]["up"][::-1]
    shot = tmp_path / "shot.png"
    result = chromium([f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars"],
                      runs["circles"] / "report.html")
    assert shot.is_file(), result.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as picture:
        assert picture.size == (1280, 2000)
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 500  # text, figures, cards: not a blank page
    assert max(count for count, _ in colours) < 0.9 * 1280 * 2000  # nor one colour nearly everywhere


@needs_chromium
def test_chromium_sorts_the_sweep_table_and_shows_the_compare_page(runs, tmp_path):
    sweep = runs["sweep"]
    assert invoke("report", sweep).exit_code == 0
    check = rendered(sweep / "report.html", tmp_path)
    assert check["problems"] == [] and all(image["ok"] for image in check["images"]) and check["images"]
    ranks = [float(r) for r in check["sorted"]["up"]]
    assert ranks == sorted(ranks) and [float(r) for r in check["sorted"]["down"]] == sorted(ranks, reverse=True)
    out = tmp_path / "compare.html"
    assert invoke("report", runs["circles"], runs["blobs"], "-o", out).exit_code == 0
    check = rendered(out, tmp_path)
    assert check["problems"] == [] and len(check["images"]) >= 3 and all(image["ok"] for image in check["images"])
