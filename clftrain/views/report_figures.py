"""The report's own figures (views/report.py puts them in the page): static matplotlib images, returned as bytes.

- ROC, precision-recall and reliability (calibration) curves side by side, of a classifier's test split;
- the decision boundary as it evolved over training: one small PNG per snapshot and an animated GIF of them
  (frames rendered by Agg into one reused figure, encoded by Pillow, which matplotlib depends on);
- runs' learning curves overlaid (a sweep's best runs, runs compared).

Each is a ReportFigure job (importing this module imports no matplotlib: fit makes the jobs), drawn by the
same warm worker processes as the run's plots (views/drawing.py) or in this process, and answering with the
image's bytes instead of a path (the report is one file; nothing else is written). Curves arrive as plain
lists and arrays computed elsewhere (inference/report.py).
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass

import numpy as np

DPI = 100
MAX_LINES = 10  # curves per panel with a legend entry each; past that the panel shows the first ten and says so


@dataclass
class ReportFigure:
    """One report figure: a function of this module by name and its arguments; draw() returns its bytes."""

    figure: str
    arguments: dict

    def draw(self):
        return getattr(sys.modules[__name__], self.figure)(**self.arguments)


def png_bytes(fig, dpi: int = DPI) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def classifier_curves(curves: list[dict], calibration: dict, title: str) -> bytes:
    """ROC | precision-recall | reliability. `curves`: one per class (one-vs-rest) or per label, each with
    label, fpr, tpr, auc, recall, precision, ap and prevalence (the positive share: PR's chance level);
    `calibration`: bin centres' mean predicted probability, observed frequency and count, what the probability
    is of, and the expected calibration error."""
    from clftrain.views.plots import new_figure

    fig, (axes,) = new_figure(1, 3, (15, 4.9))
    roc, pr, reliability = axes
    shown = curves[:MAX_LINES]
    for i, curve in enumerate(shown):
        colour = f"C{i % 10}"
        auc = "n/a" if curve["auc"] is None else f"{curve['auc']:.3f}"
        ap = "n/a" if curve["ap"] is None else f"{curve['ap']:.3f}"
        roc.plot(curve["fpr"], curve["tpr"], color=colour, linewidth=1.6, label=f"{curve['label']} (AUC {auc})")
        pr.plot(curve["recall"], curve["precision"], color=colour, linewidth=1.6, drawstyle="steps-post",
                label=f"{curve['label']} (AP {ap})")
        if len(shown) == 1:
            pr.axhline(curve["prevalence"], color="grey", linestyle=":", linewidth=1,
                       label=f"chance ({curve['prevalence']:.2f})")
    roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    more = f" (first {MAX_LINES} of {len(curves)})" if len(curves) > MAX_LINES else ""
    for ax, (name, x, y) in zip((roc, pr), (("ROC" + more, "false positive rate", "true positive rate"),
                                            ("Precision-recall" + more, "recall", "precision"))):
        ax.set_title(name)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right" if ax is roc else "lower left")
    _reliability(reliability, calibration)
    fig.suptitle(title, fontsize=11)
    return png_bytes(fig)


def _reliability(ax, calibration: dict) -> None:
    """Observed frequency against mean predicted probability per bin, the diagonal for perfect calibration,
    and the bins' row counts as bars on a second axis."""
    counts = np.asarray(calibration["counts"], dtype=float)
    edges = np.asarray(calibration["edges"], dtype=float)
    filled = counts > 0
    bars = ax.twinx()
    bars.bar((edges[:-1] + edges[1:]) / 2, counts, width=np.diff(edges) * 0.9, color="C7", alpha=0.25,
             label="rows per bin")
    bars.set_ylabel("rows per bin")
    bars.set_ylim(0, max(counts.max(), 1) * 3)  # bars in the lower third, under the curve
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    ax.plot(np.asarray(calibration["predicted"])[filled], np.asarray(calibration["observed"])[filled], "o-",
            color="C3", linewidth=1.6, markersize=4, label=f"model (ECE {calibration['ece']:.3f})")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_title("Reliability (calibration)")
    ax.set_xlabel(f"mean predicted {calibration['what']}")
    ax.set_ylabel(calibration["observed_label"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")


def boundary_evolution(regions: np.ndarray, captions: list[str], class_names: list[str], points: np.ndarray,
                       classes: np.ndarray, scale: int = 3, frame_ms: int = 700, last_ms: int = 2200) -> dict:
    """{"frames": one PNG per snapshot, "gif": the snapshots as a looping animation}. `regions`: [K, H, W] predicted
    classes, row 0 at the bottom; `points`: [N, 2] training rows in grid cells (column, row: fractional), drawn
    in their true class's colour on every frame; each frame captioned. Drawn by numpy and Pillow alone, no
    matplotlib (nine frames in about 20 ms): the grid's cells as `scale`-pixel squares in the run's region
    colours (views/plots.py), the points as small discs."""
    from PIL import Image, ImageDraw

    colours = _class_rgb(len(class_names))
    pale = np.round(255 - REGION_ALPHA_OF_PLOTS * (255 - colours)).astype(np.uint8)  # regions as plots blends them
    height, width = regions.shape[1] * scale, regions.shape[2] * scale
    band = 22  # the caption's strip above the plane
    palette = np.concatenate([pale, colours, [[255, 255, 255], [0, 0, 0], [40, 40, 40]]]).astype(np.uint8)
    n = len(colours)
    white, black, text = 2 * n, 2 * n + 1, 2 * n + 2
    font = _font()
    xs = points[:, 0] * scale
    ys = height - points[:, 1] * scale  # image rows run down, the grid's up
    frames = []
    for grid, caption in zip(regions, captions):
        cells = np.repeat(np.repeat(np.flipud(np.minimum(grid, n - 1)), scale, axis=0), scale, axis=1)
        canvas = np.full((height + band, width), white, dtype=np.uint8)
        canvas[band:] = cells
        frame = Image.fromarray(canvas, mode="L").convert("P")
        frame.putpalette(palette.ravel().tolist())
        draw = ImageDraw.Draw(frame)
        for x, y, c in zip(xs, ys + band, classes):
            draw.ellipse((x - 2.2, y - 2.2, x + 2.2, y + 2.2), fill=int(n + c), outline=black)
        draw.rectangle((0, band, width - 1, height + band - 1), outline=black)
        draw.text((4, 4), caption, fill=text, font=font)
        frames.append(frame)
    pngs = []
    for frame in frames:
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    gif = io.BytesIO()
    durations = [frame_ms] * (len(frames) - 1) + [last_ms]
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return {"frames": pngs, "gif": gif.getvalue()}


REGION_ALPHA_OF_PLOTS = 0.35  # views/plots.py's REGION_ALPHA, kept here so that no frame needs matplotlib


def _class_rgb(n_classes: int) -> np.ndarray:
    """plots.class_colours as 0-255 RGB, computed with matplotlib's colour maps only where that is cheap: tab10's
    ten colours are written out (the frames need no matplotlib for up to ten classes)."""
    if n_classes <= 10:
        return TAB10[:max(n_classes, 2)].astype(np.float64)
    from clftrain.views.plots import class_colours

    return np.round(class_colours(n_classes)[:, :3] * 255)


TAB10 = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
                  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]])


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def overlaid_curves(runs: list[dict], panels: list[tuple[str, str]], title: str) -> bytes:
    """One panel per (column, axis label) of `panels`, one line per run: runs are {label, epochs, columns:
    {column: values}}; a column a run lacks is left out of its panel."""
    from clftrain.views.plots import new_figure

    fig, (axes,) = new_figure(1, len(panels), (6.2 * len(panels), 4.6))
    for ax, (column, label) in zip(axes, panels):
        for i, run in enumerate(runs):
            values = run["columns"].get(column)
            if values is not None:
                ax.plot(run["epochs"], values, color=f"C{i % 10}", linewidth=1.5 if i else 2.2, label=run["label"])
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if column.endswith("_acc"):
            ax.set_ylim(-0.02, 1.02)
        if ax.get_lines():
            ax.legend(fontsize=8, loc="lower right" if column.endswith("_acc") else "upper right")
    fig.suptitle(title, fontsize=11)
    return png_bytes(fig)
