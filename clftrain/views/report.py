"""report.html: one self-contained HTML page of a run, of a sweep, or of several runs compared.

Everything is inside the file: images as base64 `data:` URIs, the numbers as inline JSON (a
`<script type="application/json" id="clftrain-data">` block), the style and a few lines of script (tables
sorted by a click on a column's header). The page loads nothing: its Content-Security-Policy allows no
source but its own inline style and script and `data:` images, so it opens from disk, offline, the same
everywhere. The figures are static matplotlib images (views/plots.py, views/report_figures.py); the
decision boundary over training is an animated GIF and a strip of its frames, no script needed.

Functions take plain data (content mappings built by inference/report.py and runs/report.py, image bytes)
and return the page's text; nothing here reads a run directory.
"""

from __future__ import annotations

import base64
import html
import json
import math

from clftrain.views.charts import MAX_CURVES, ranking_charts
from clftrain.views.format import metric_text

GENERATOR = "clftrain report"  # the page's <meta name="generator">: a file with it is a report clftrain may rewrite
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

STYLE = """
:root { --ink: #1d232b; --muted: #5b6673; --line: #d9dee4; --soft: #f4f6f8; --accent: #1f6fb2; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1320px; margin: 0 auto; padding: 0 24px 48px; }
header { background: #16324f; color: #fff; padding: 20px 24px 16px; }
header h1 { margin: 0 auto; max-width: 1272px; font-size: 26px; }
header p { margin: 4px auto 0; max-width: 1272px; color: #c9d6e3; word-break: break-all; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line); }
nav div { max-width: 1320px; margin: 0 auto; padding: 8px 24px; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; font-size: 14px; }
section { margin-top: 30px; }
h2 { font-size: 20px; border-bottom: 2px solid var(--line); padding-bottom: 4px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
p.lead, p.hint { color: var(--muted); margin: 4px 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px; }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-weight: 600; margin-top: 2px; }
.card .s { color: var(--muted); font-size: 13px; }
.wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 4px 0 8px; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px 5px 7px; text-align: right; white-space: nowrap; }
table.sortable { font-size: 13px; }
table.sortable th, table.sortable td { padding: 4px 7px 4px 5px; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
th { background: var(--soft); font-weight: 600; }
tr.average td { color: var(--muted); font-style: italic; }
tr.best td { background: #eef6ee; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa5b1; font-size: 11px; }
table.sortable th[aria-sort=ascending]::after { content: " \\2191"; color: var(--ink); }
table.sortable th[aria-sort=descending]::after { content: " \\2193"; color: var(--ink); }
figure { margin: 8px 0 16px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.strip { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.strip figure { margin: 0; }
.strip figcaption { text-align: center; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0 12px; }
.charts svg { border: 1px solid var(--line); border-radius: 4px; max-width: 100%; height: auto; }
figure.narrow img { max-width: min(100%, 780px); }
.side { display: flex; flex-wrap: wrap; gap: 20px; align-items: flex-start; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow-x: auto;
      font-size: 13px; line-height: 1.4; }
.note { background: #fff8e6; border-left: 4px solid #e0a800; padding: 6px 10px; margin: 6px 0; }
.na { background: var(--soft); border-left: 4px solid #9aa5b1; padding: 6px 10px; margin: 6px 0; }
.muted { color: var(--muted); }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; border-top: 1px solid var(--line); padding-top: 8px; }
code { background: var(--soft); padding: 0 4px; border-radius: 3px; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column], raw = cell.getAttribute("data-sort");
        return raw === null ? cell.textContent.trim() : raw;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


# ---------------------------------------------------------------------- pieces
def esc(value) -> str:
    return html.escape(str(value), quote=True)


def data_uri(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def image(data: bytes | None, alt: str, caption: str = "", kind: str = "image/png", css: str = "") -> str:
    if not data:
        return f'<p class="na">{esc(alt)}: not drawn (see the notes)</p>'
    text = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    kind_of = f' class="{css}"' if css else ""
    return f'<figure{kind_of}><img src="{data_uri(data, kind)}" alt="{esc(alt)}">{text}</figure>'


def table(headers: list[str], rows: list[list], sortable: bool = False, row_classes: list[str] | None = None,
          text_columns: tuple[int, ...] = (0,)) -> str:
    """A table; a cell is text, or (shown text, sort key) for a number shown formatted."""
    head = "".join(f'<th class="text">{esc(h)}</th>' if i in text_columns else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            shown, key = cell if isinstance(cell, tuple) else (cell, None)
            attrs = ' class="text"' if i in text_columns else ""
            if key is not None:
                attrs += f' data-sort="{esc(key)}"'
            cells.append(f"<td{attrs}>{shown if isinstance(shown, Markup) else esc(shown)}</td>")
        css = f' class="{row_classes[n]}"' if row_classes and row_classes[n] else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    kind = ' class="sortable"' if sortable else ""
    return f'<div class="wrap"><table{kind}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


class Markup(str):
    """Text that is HTML already (a link), put in a table cell as it is."""


def number(key: str, value, digits: int = 5) -> tuple[str, str]:
    """(shown, sort key) of a metric: percentages for fractions (views/format.py), '-' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-", ""
    return metric_text(key, value, digits), repr(float(value))


def cards(items: list[tuple[str, str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div>'
        f'<div class="s">{esc(s)}</div></div>' for k, v, s in items) + "</div>"


def notes_html(notes: list[str], skipped: list[tuple[str, str]] = ()) -> str:
    parts = [f'<p class="na"><b>{esc(what)}</b>: {esc(why)}</p>' for what, why in skipped]
    parts += [f'<p class="note">{esc(note)}</p>' for note in notes]
    return "".join(parts) or '<p class="muted">None.</p>'


def json_block(data) -> str:
    text = json.dumps(data, default=_plain, allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="clftrain-data">{text}</script>'


def _plain(value):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        raise TypeError(type(value)) from None
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _finite(value):
    """NaN and infinities (JSON has neither) as null, through mappings and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def page(title: str, subtitle: str, sections: list[tuple[str, str, str]], data, footer: str) -> str:
    """The whole document: `sections` are (anchor, heading, inner HTML)."""
    nav = "".join(f'<a href="#{esc(anchor)}">{esc(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(f'<section id="{esc(anchor)}"><h2>{esc(heading)}</h2>{inner}</section>'
                   for anchor, heading, inner in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        f'<meta name="generator" content="{GENERATOR}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<nav><div>{nav}</div></nav><main>{body}<footer>{footer}</footer></main>"
        f"{json_block(_finite(data))}<script>{SORT_SCRIPT}</script></body></html>\n"
    )


def _footer(content: dict) -> str:
    return (f"Written by clftrain {esc(content['version'])} on {esc(content['made'])}. Self-contained: every image "
            "and number is in this file; it loads nothing. Figures are static images drawn by matplotlib.")


# ---------------------------------------------------------------------- one run
def run_page(content: dict, images: dict) -> str:
    """A run's page: at a glance, metrics per split, curves, boundary (and its history), confusion matrix with
    the per-class table, ROC / precision-recall / calibration, model, data, config, notes."""
    summary, metric = content["summary"], content["metric"]
    sections = [("glance", "At a glance", _glance(content)), ("metrics", "Metrics per split", _splits(content))]
    if "curves.png" in images:
        sections.append(("curves", "Learning curves", image(images["curves.png"], "learning curves",
                         "Loss and the task's metric per evaluated epoch, train / validation / test; the dotted "
                         "line marks the epoch of the weights this report shows (none where the seeds or members "
                         "each end at their own best epoch).")))
    if "regression" in content:
        sections.append(("predictions", "Predictions", _regression(content, images)))
    else:
        sections.append(("boundary", "Decision boundary", _boundary(content, images)))
        sections.append(("classes", "Confusion matrix and per-class table", _classes(content, images)))
        sections.append(("ranking", "ROC, precision-recall and calibration", _ranking(content, images)))
    sections += [("model", "Model and capacity", _model(content)), ("data", "Data and splits", _data(content)),
                 ("config", "Config", f'<p class="lead">The resolved config.yaml (defaults filled in): '
                                      f'<code>clftrain fit</code> of it trains this run again.</p>'
                                      f'<pre>{esc(content["config_yaml"])}</pre>'),
                 ("notes", "Notes", notes_html(content["notes"], content.get("skipped", [])))]
    classifier = content.get("classifier")
    if classifier is not None:  # the numbers, not the charts' points
        classifier = {k: v for k, v in classifier.items() if k != "curves"}
    data = {"kind": "run", "name": content["name"], "run_dir": content["run_dir"], "summary": summary,
            "test_score": content["test_score"], "classifier": classifier,
            "regression": content.get("regression"), "metric": metric, "metrics_csv": content["rows"]}
    subtitle = f"{content['run_dir']} · {content['task']} · status {content['status']} · {content['weights']}"
    return page(f"{content['name']}: clftrain report", subtitle, sections, data, _footer(content))


def _glance(content: dict) -> str:
    summary, metric, label = content["summary"], content["metric"], content["metric_label"]
    splits, model, data = content["splits"], content["model"], content["data"]
    items = [("status", str(content["status"]),
              f"{summary.get('epochs_run', '?')} of {summary.get('epochs_planned', '?')} epochs"
              + (", stopped early" if summary.get("stopped_early") else ""))]
    score = content["test_score"].get(metric)
    items.append((f"test {label}", number(f"test_{metric}", score)[0], content["weights"]))
    best = next((row for row in splits["rows"] if row["split"] == "val"), None)
    if best is not None and splits.get("best_epoch") is not None:
        items.append((f"best val {label}", number(f"val_{metric}", best["best_metric"])[0],
                      f"{splits['best_at']} (best.pt, by {splits.get('monitor')})"))
    items.append(("parameters", f"{model['parameters']:,}", " → ".join(map(str, model["widths"]))))
    items.append(("rows", f"{data['sizes']['train']:,} train", f"{data['sizes']['val']:,} val · "
                                                               f"{data['sizes']['test']:,} test"))
    if "seconds" in summary:
        items.append(("training time", f"{summary['seconds']:.2f} s", f"on {summary.get('device', '?')}"))
    return cards(items)


def _splits(content: dict) -> str:
    splits, metric, label = content["splits"], content["metric"], content["metric_label"]
    if not splits["rows"]:
        return '<p class="na">No metrics recorded (no summary.json and no metrics.csv rows).</p>'
    final = f"epoch {int(splits['final_epoch'])}" if splits.get("final_epoch") is not None else "final"
    best = splits.get("best_at") or "best"
    best_header = f"best, {best}" if splits.get("final_at") else best  # beside "final": which is the best
    headers = ["split", f"loss ({final})", f"{label} ({final})", f"loss ({best_header})", f"{label} ({best_header})"]
    rows, classes = [], []
    for row in splits["rows"]:
        name = {"train": "train", "val": "validation", "test": "test (reported only)"}[row["split"]]
        rows.append([name, number(f"{row['split']}_loss", row["final_loss"]),
                     number(f"{row['split']}_{metric}", row["final_metric"]),
                     number(f"{row['split']}_loss", row["best_loss"]),
                     number(f"{row['split']}_{metric}", row["best_metric"])])
        classes.append("")
    ended = splits.get("final_at") or final
    lead = (f"Final: the weights training ended with ({ended}). Best: the checkpoint the validation split chose "
            f"(best.pt, {best}, by {splits.get('monitor')}). ") if splits.get("best_epoch") is not None else (
        f"Final: the weights training ended with ({final}). No best checkpoint: without a validation split "
        "nothing chooses one (set dataset.val_size to keep one). ")
    if splits.get("seeds"):
        lead += f"Means over the run's {splits['seeds']} seeds. "
    if splits.get("restored_best"):
        lead += "The run ends with the best epoch's weights (train.restore_best). "
    lead += "The test split decides nothing: it is only reported."
    return f'<p class="lead">{esc(lead)}</p>' + table(headers, rows, row_classes=classes)


def _boundary(content: dict, images: dict) -> str:
    parts = [image(images.get("decision_boundary.png"), "decision boundary",
                   "The model's predicted class over the plane; points are the rows, crosses those predicted wrong.")]
    evolution, frames = content.get("evolution"), images.get("boundary_evolution")
    if evolution and frames:
        parts.append("<h3>Over training</h3>")
        parts.append(f'<p class="lead">The predicted class over the two features at {len(evolution["epochs"])} '
                     "moments of training (snapshots taken during fit, spaced geometrically over the epochs), "
                     "with a sample of the training rows.</p>")
        strip = "".join(f'<figure><img src="{data_uri(png)}" alt="{esc(caption)}"><figcaption>{esc(caption)}'
                        "</figcaption></figure>" for png, caption in zip(frames["frames"], evolution["captions"]))
        parts.append(f'<div class="side"><figure><img src="{data_uri(frames["gif"], "image/gif")}" '
                     f'alt="the decision boundary over training, animated" style="width:360px">'
                     "<figcaption>Animated: the snapshots in order, looping.</figcaption></figure>"
                     f'<div style="flex:1; min-width:320px"><div class="strip">{strip}</div></div></div>')
    else:
        reason = next((why for what, why in content.get("skipped", []) if what == "Decision boundary over training"),
                      None)
        if reason:
            parts.append(f'<p class="na"><b>Over training</b>: {esc(reason)}</p>')
    return "".join(parts)


def _classes(content: dict, images: dict) -> str:
    classifier = content["classifier"]
    rows, classes = [], []
    for row in classifier["per_class"]:
        rows.append([row["class"], number("precision", row["precision"]), number("recall", row["recall"]),
                     number("f1", row["f1"]), (f"{row['support']:,}", str(row["support"]))])
        classes.append("average" if row.get("average") else "")
    what = "label" if content["task"] == "multilabel" else "class"
    narrow = "narrow" if len(content["data"]["classes"]) <= 6 else ""
    return (image(images.get("confusion_matrix.png"), "confusion matrix", "Test split: counts, and each true "
                  f"{what}'s share of the predictions.", css=narrow)
            + f"<h3>Per {what} (test split)</h3>"
            + table([what, "precision", "recall", "F1", "support"], rows, sortable=True, row_classes=classes))


def _ranking(content: dict, images: dict) -> str:
    classifier = content["classifier"]
    rows = [[label, number("auc", auc, 4), number("ap", ap, 4)] for label, auc, ap in classifier["auc"]]
    more = (f" The charts draw the first {MAX_CURVES} of {len(classifier['curves'])} curves; the table has all."
            if len(classifier["curves"]) > MAX_CURVES else "")
    calibration = classifier["calibration"]
    return (f'<p class="lead">Test split ({classifier["rows"]:,} rows), {esc(classifier["scope"])}. ROC: the true '
            "against the false positive rate over every threshold; precision-recall: the same ranking judged by the "
            "rows it admits; reliability: the mean predicted probability of each tenth against how often it came "
            "true (the diagonal is perfect calibration; ECE, the expected calibration error, is the row-weighted "
            f"mean gap; bars: rows per bin).{esc(more)}</p>"
            + f'<div class="charts">{ranking_charts(classifier["curves"], calibration)}</div>'
            + table(["curve", "ROC-AUC", "average precision"], rows, sortable=True)
            + f'<p class="hint">ECE {calibration["ece"]:.4f} over {len(calibration["counts"])} equal-width bins '
              f"of {esc(calibration['what'])}.</p>")


def _regression(content: dict, images: dict) -> str:
    scores = content["regression"]
    rows = [[name, number(key, scores[key], 5)] for key, name in (("mae", "mean absolute error"),
                                                                   ("mse", "mean squared error"), ("r2", "R²"))]
    return (image(images.get("predictions.png"), "predictions", "Test split: the model's predictions against the "
                                                                "data.")
            + table(["test split", "value"], rows)
            + "".join(f'<p class="na"><b>{esc(what)}</b>: {esc(why)}</p>' for what, why in content["skipped"]))


def _model(content: dict) -> str:
    model = content["model"]
    rows = [[name, kind, (f"{params:,}", str(params))] for name, kind, params in model["layers"]]
    rows.append(["total", "", (f"{model['parameters']:,}", str(model["parameters"]))])
    settings = (f"activation {model['activation']}, dropout {model['dropout']:g}, batch norm "
                f"{'on' if model['batch_norm'] else 'off'}")
    capacity = (f"{model['parameters']:,} parameters for {model['train_rows']:,} training rows "
                f"({model['per_row']:.2f} per row)" if model.get("per_row") is not None
                else f"{model['parameters']:,} parameters")
    seeds = f" Trained as {model['seeds']} replicas (one per seed), each this size." if model.get("seeds") else ""
    return (f'<p class="lead">Widths {esc(" → ".join(map(str, model["widths"])))}; {esc(settings)}. '
            f"{esc(capacity)}.{esc(seeds)}</p>" + table(["layer", "kind", "parameters"], rows, text_columns=(0, 1)))


def _data(content: dict) -> str:
    """The dataset, the features, and a table of the splits' sizes with their rows per class (classes as columns,
    or past MANY_CLASSES as rows)."""
    data = content["data"]
    sizes, counts = data["sizes"], data.get("counts") or {}
    splits = [split for split in ("train", "val", "test") if sizes.get(split)]
    label = {"train": "train", "val": "validation", "test": "test"}
    names = data["classes"] if counts else []
    features = data["features"]
    shown = ", ".join(features[:40]) + (f", … ({len(features):,} in all)" if len(features) > 40 else "")
    lead = (f"Dataset {data['dataset']} (seed {data['seed']}, test_size {data['test_size']:g}, val_size "
            f"{data['val_size']:g}{'; standardized on the training split' if data.get('standardize') else ''}). "
            f"{len(features):,} input features: {shown}.")

    def count(split: str, i: int):
        value = counts.get(split, [])[i] if i < len(counts.get(split, [])) else None
        return "-" if value is None else (f"{value:,}", str(value))

    if len(names) <= MANY_CLASSES:
        rows = [[label[split], (f"{sizes[split]:,}", str(sizes[split])), *[count(split, i) for i in range(len(names))]]
                for split in splits]
        tables = table(["split", "rows", *names], rows)
    else:
        tables = table(["split", "rows"], [[label[s], (f"{sizes[s]:,}", str(sizes[s]))] for s in splits])
        tables += table(["class", *(label[s] for s in splits)],
                        [[name, *[count(s, i) for s in splits]] for i, name in enumerate(names)], sortable=True)
    counted = f" Per class: {data['counted']}." if counts else ""
    return f'<p class="lead">{esc(lead)}{esc(counted)}</p>' + tables


MANY_CLASSES = 12  # past this the class counts are a table of their own, a class per row


# ---------------------------------------------------------------------- a sweep, runs compared
def run_cells(row: dict, columns: list[str], metric) -> list:
    """One run's table cells: its name linked to its own report where it has one, numbers by `metric(column,
    value)` (shown text, sort key), the rest as text."""
    cells = []
    for column in columns:
        value = row.get(column)
        if column == "run" and row.get("report"):
            cells.append((Markup(f'<a href="{esc(row["report"])}">{esc(value)}</a>'), str(value)))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            cells.append(metric(column, value))
        else:
            cells.append("" if value is None else str(value))
    return cells


def sweep_page(content: dict, images: dict) -> str:
    """A sweep's page: the grid, the ranked runs (sortable), the best runs' validation curves overlaid and the
    best run's decision boundary."""
    ranked = content["ranked_by"]
    columns = content["columns"]
    def metric(column, value):
        if column in ("rank", "batch", "epochs_run"):
            return f"{value:g}", repr(float(value))
        return number(column.removesuffix("_mean").removesuffix("_std").removesuffix("_min").removesuffix("_max"),
                      value, 4)

    rows = [run_cells(row, columns, metric) for row in content["rows"]]
    classes = ["best" if row.get("rank") == 1 else "" for row in content["rows"]]
    grid = "".join(f"<li><code>{esc(key)}</code>: {esc(', '.join(values))}</li>"
                   for key, values in content["grid"].items())
    sections = [
        ("glance", "At a glance", cards(content["cards"])),
        ("grid", "Grid", f"<ul>{grid}</ul><p class=\"lead\">{len(content['rows'])} runs from "
                         f"<code>{esc(content['config'])}</code>; each combination trained with seed(s) "
                         f"{esc(content['seeds'])}.</p>"),
        ("ranked", "Runs, ranked", f'<p class="lead">Ranked by <code>{esc(ranked)}</code>, the mean final '
                                   "validation score over the seeds (the test split decides nothing). Click a "
                                   "column's header to sort by it; a run's name opens its own report where it has "
                                   "one.</p>" + table(columns, rows, sortable=True, row_classes=classes,
                                                      text_columns=tuple(i for i, c in enumerate(columns)
                                                                         if c in content["text_columns"]))),
        ("curves", "Best runs' learning curves", image(images.get("overlaid_curves"), "the best runs' curves",
                                                        content["curves_caption"])),
    ]
    if images.get("best_boundary"):
        sections.append(("boundary", "Best run's decision boundary", image(images["best_boundary"],
                         "the best run's decision boundary", f"{content['best_run']}: its plots/decision_boundary.png")))
    sections.append(("notes", "Notes", notes_html(content["notes"])))
    data = {"kind": "sweep", "sweep_dir": content["sweep_dir"], "ranked_by": ranked, "grid": content["grid"],
            "rows": content["rows"]}
    return page(f"{content['name']}: clftrain sweep report", f"{content['sweep_dir']} · {len(content['rows'])} runs",
                sections, data, _footer(content))


def compare_page(content: dict, images: dict) -> str:
    """Several runs side by side: their metrics (sortable), where their configs differ, their curves overlaid
    and each one's decision boundary."""
    columns = content["columns"]
    rows = [run_cells(row, columns, lambda column, value: number(column, value, 4) if "_" in column
                      else (f"{value:,}", repr(float(value)))) for row in content["rows"]]
    differ = content["differences"]
    labels = [row["run"] for row in content["rows"]]
    difference_table = (table(["config key", *labels], [[key, *values] for key, values in differ.items()],
                              text_columns=tuple(range(len(labels) + 1)))
                        if differ else '<p class="muted">The configs are the same but for their names.</p>')
    boundaries = "".join(image(images.get(f"boundary:{label}"), f"{label}: decision boundary", label)
                         for label in labels if images.get(f"boundary:{label}"))
    sections = [
        ("runs", "Runs", '<p class="lead">Final metrics (the last metrics.csv row; runs with seeds: the mean over '
                         "the seeds) and the best validation value with its epoch. Click a column's header to sort "
                         "by it.</p>" + table(columns, rows, sortable=True,
                                             text_columns=tuple(i for i, c in enumerate(columns)
                                                                if c in content["text_columns"]))),
        ("differences", "Where the configs differ", difference_table),
        ("curves", "Learning curves", image(images.get("overlaid_curves"), "the runs' curves",
                                            content["curves_caption"])),
    ]
    if boundaries:
        sections.append(("boundaries", "Decision boundaries", boundaries))
    sections.append(("notes", "Notes", notes_html(content["notes"])))
    data = {"kind": "compare", "runs": content["rows"], "differences": differ}
    return page(f"{' vs '.join(labels)}: clftrain compare report", f"{len(labels)} runs", sections, data,
                _footer(content))
