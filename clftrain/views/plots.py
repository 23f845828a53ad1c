"""Matplotlib figures: a run's decision boundary, learning curves, confusion matrix and regression fit; runs
compared; the activation functions.

Functions take plain numpy arrays, rows and a `predict_labels` callable, never a
trainer, so `fit` and `clftrain plot` draw exactly the same pictures.

Drawn for speed (fit draws three at the end of every run): figures are matplotlib.figure.Figure
objects rendered by Agg, without pyplot's global state or import, laid out by the constrained
layout engine once (no second "tight" render), decision regions as an image rather than
contours, and the confusion matrix without scikit-learn.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from clftrain.errors import UserError
from clftrain.store.rundir import atomic_write_bytes

def new_figure(rows: int, columns: int, size: tuple[float, float], **subplots) -> tuple[Figure, np.ndarray]:
    """A figure and its [rows, columns] axes, laid out by the constrained layout engine when saved."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, columns, squeeze=False, **subplots)


def save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose a writable location") from None


def decision_boundary(
    path: Path, regions: np.ndarray, extent: tuple[float, float, float, float],
    train: tuple, test: tuple, class_names: list[str], title: str,
    axis_labels: tuple[str, str], description: str, multilabel: bool = False,
) -> None:
    """Train | test side by side: predicted class regions, true classes as points on top.

    `regions`: [H, W, L] predicted labels over a grid of the drawing plane (views/plane.py) spanning `extent`;
    `train`, `test`: (points [N, 2] in that plane, targets, [N, L] whether the model predicts each point's row
    right, the split's row count: more than N when only a sample of it is drawn). Points predicted right are
    filled discs, wrong ones crosses, so the picture never claims more than the model does off the plane.
    Multi-label: one row per label, its regions where the model predicts it.
    """
    if multilabel:
        rows = [(f"label '{name}': ", regions[..., j], train[1][:, j], train[2][:, j], test[1][:, j],
                 test[2][:, j], [f"not {name}", name]) for j, name in enumerate(class_names)]
    else:
        rows = [("", regions[..., 0], _first_column(train[1]), train[2][:, 0], _first_column(test[1]),
                 test[2][:, 0], class_names)]
    fig, axes = new_figure(len(rows), 2, (12, 5.2 if len(rows) == 1 else 4.2 * len(rows)), sharex=True, sharey=True)
    for ax_pair, (label, row_regions, y_train, right_train, y_test, right_test, names) in zip(axes, rows):
        splits = [(train[0], y_train, right_train, train[3]), (test[0], y_test, right_test, test[3])]
        _boundary_row(ax_pair, row_regions, extent, splits, names, label, axis_labels)
    fig.suptitle(f"{title}\n{description}", fontsize=11)
    save_figure(fig, path)


def _first_column(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1)[:, 0]


def class_colours(n_classes: int) -> np.ndarray:
    """[n, 4] RGBA, one saturated colour per class: tab10, past ten classes evenly spaced hues of turbo (not
    tab20, whose second half is pale), none near white, so each class stays visible on its own region."""
    if n_classes <= 10:
        return colormaps["tab10"](np.arange(n_classes))
    colours = colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))
    luminance = colours[:, :3] @ LUMINANCE
    colours[:, :3] *= np.minimum(1.0, 0.75 / luminance)[:, None]  # turbo's yellows darkened to stay visible
    return colours


LUMINANCE = np.array([0.2126, 0.7152, 0.0722])  # of linear RGB (ITU-R BT.709)


REGION_ALPHA = 0.35  # regions pale, points full strength: the same hue reads as "this class" on both


def point_size(n_points: int) -> float:
    """Marker area: 22 up to 300 points, shrinking as n^-0.61 to 4 from about 5,000 (the most drawn), so
    thousands do not bury a minority class or the regions."""
    return float(np.clip(22 * (300 / max(n_points, 1)) ** 0.61, 4, 22))


def _boundary_row(axes, regions, extent, splits, class_names: list[str], label: str, axis_labels) -> None:
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    colours = class_colours(max(len(class_names), 2))
    palette = ListedColormap(colours)
    for ax, (points, y, right, total), split in zip(axes, splits, ("Train", "Test")):
        # The regions as an image of the predicted class over the grid: one draw call, not a contour per class.
        ax.imshow(regions, origin="lower", extent=extent, aspect="auto", interpolation="nearest", cmap=palette,
                  alpha=REGION_ALPHA, vmin=-0.5, vmax=len(colours) - 0.5)
        _scatter_points(ax, points, y.astype(int), right, colours)
        shown = f"{len(points):,} of {total:,}" if total > len(points) else f"{total:,}"
        wrong = int((~right).sum())
        ax.set_title(f"{label}{split} ({shown} points, {wrong:,} predicted wrong)")
        ax.set_xlabel(axis_labels[0])
        ax.set_ylabel(axis_labels[1])
    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=colours[i], markeredgecolor="k",
                      label=name) for i, name in enumerate(class_names)]
    handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="k",
                       label="predicted right"),
                Line2D([], [], marker="X", linestyle="", markerfacecolor="white", markeredgecolor="k",
                       markersize=8, label="predicted wrong")]
    # A fixed corner: loc="best" would test every point of the scatter against every legend position.
    axes[1].legend(handles=handles, title="true class", loc="upper right", fontsize=8, framealpha=0.8)


def _scatter_points(ax, points: np.ndarray, y: np.ndarray, right: np.ndarray, colours: np.ndarray) -> None:
    """Right points as discs, wrong ones as larger crosses on top; the rarest class drawn last within each, so
    a minority stays visible among thousands of points."""
    size = point_size(len(points))
    rarity = np.argsort(np.argsort(-np.bincount(y, minlength=len(colours))))  # 0 = the most common class
    for is_right, marker, area in ((True, "o", size), (False, "X", max(2.2 * size, WRONG_SIZE))):
        chosen = np.flatnonzero(right == is_right)
        chosen = chosen[np.argsort(rarity[y[chosen]], kind="stable")]
        if len(chosen):
            ax.scatter(points[chosen, 0], points[chosen, 1], c=colours[y[chosen]], s=area, marker=marker,
                       edgecolors="k", linewidths=0.3 if area < 10 else 0.6)


WRONG_SIZE = 30.0  # a cross stays this big among thousands of small discs: the errors are what to look at


def learning_curves(path: Path, rows: list[dict[str, float]], metric: str, title: str,
                    mark_epoch: int | None = None) -> None:
    """Loss and the task's metric per epoch, one line per split; a dotted line at the drawn weights' epoch."""
    fig, (axes,) = new_figure(1, 2, (12, 4.8))
    epochs = [row["epoch"] for row in rows]
    for ax, quantity in zip(axes, ("loss", metric)):
        for split, style in (("train", "-"), ("val", "-."), ("test", "--")):
            key = f"{split}_{quantity}"
            if rows and key in rows[0]:
                ax.plot(epochs, [row[key] for row in rows], style, label=split)
        _finish_curve_axes(ax, quantity, mark_epoch)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def replica_curves(path: Path, rows: list[dict[str, float]], metric: str, title: str,
                   mark_epoch: int | None = None) -> None:
    """Runs trained with seeds (rows with a `seed` column): per split, the mean over the seeds as a line and
    the band from the lowest to the highest seed; a dotted line at the drawn weights' epoch."""
    epochs = sorted({row["epoch"] for row in rows})
    n_seeds = len({row["seed"] for row in rows})
    fig, (axes,) = new_figure(1, 2, (12, 4.8))
    for ax, quantity in zip(axes, ("loss", metric)):
        for split, style, colour in (("train", "-", "C0"), ("val", "-.", "C2"), ("test", "--", "C1")):
            key = f"{split}_{quantity}"
            if not rows or key not in rows[0]:
                continue
            values = _by_epoch(rows, key, epochs)  # [epochs, seeds], NaN where a seed has no row
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an epoch every seed diverged before: NaN
                mean, low, high = np.nanmean(values, 1), np.nanmin(values, 1), np.nanmax(values, 1)
            ax.fill_between(epochs, low, high, color=colour, alpha=0.2, linewidth=0)
            ax.plot(epochs, mean, style, color=colour, label=f"{split}: mean of {n_seeds} seeds, band min-max")
        _finish_curve_axes(ax, quantity, mark_epoch)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def _finish_curve_axes(ax, quantity: str, mark_epoch: int | None) -> None:
    """A dotted line at the drawn weights' epoch, then labels and legend."""
    if mark_epoch is not None:
        ax.axvline(mark_epoch, color="grey", linestyle=":", linewidth=1, label=f"epoch {mark_epoch}")
    _label_axes(ax, quantity)


def _by_epoch(rows: list[dict[str, float]], key: str, epochs: list[float]) -> np.ndarray:
    seeds = sorted({row["seed"] for row in rows})
    values = np.full((len(epochs), len(seeds)), np.nan)
    epoch_index, seed_index = {e: i for i, e in enumerate(epochs)}, {s: j for j, s in enumerate(seeds)}
    for row in rows:
        values[epoch_index[row["epoch"]], seed_index[row["seed"]]] = row[key]
    values[~np.isfinite(values)] = np.nan  # a diverged seed's inf would stretch the axis to nothing
    return values


_QUANTITY_LABELS = {"loss": "loss", "acc": "accuracy", "mae": "mean absolute error"}


def _label_axes(ax, quantity: str) -> None:
    label = _QUANTITY_LABELS[quantity]
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(label.capitalize())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="lower right" if quantity == "acc" else "upper right")  # not "best": it scans each line
    if quantity == "acc":
        ax.set_ylim(-0.02, 1.02)


def compare_curves(path: Path, runs: list[tuple[str, list[dict[str, float]]]], metric: str, title: str) -> None:
    """Several runs' test loss and test metric per epoch on shared axes: one colour per run."""
    fig, (axes,) = new_figure(1, 2, (12, 4.8))
    for ax, quantity in zip(axes, ("loss", metric)):
        for label, rows in runs:
            ax.plot([row["epoch"] for row in rows], [row[f"test_{quantity}"] for row in rows], label=label)
        _label_axes(ax, quantity)
        ax.set_title(f"Test {_QUANTITY_LABELS[quantity]}")
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def confusion_matrix(path: Path, counts: np.ndarray, class_names: list[str], title: str) -> None:
    """Counts | row-normalised (each true class's share of predictions: the diagonal is its recall)."""
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = min(5 + 0.35 * len(class_names), 20)  # room for the labels of many classes, within a screen
    fig, (axes,) = new_figure(1, 2, (2 * size + 1, size))
    _matrix(axes[0], counts, "{:d}", class_names, "Counts")
    _matrix(axes[1], shares, "{:.2f}", class_names, "Normalised by true class")
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def label_confusions(path: Path, matrices: np.ndarray, label_names: list[str], title: str) -> None:
    """Multi-label: one 2x2 matrix of counts per label (rows: true no/yes, columns: predicted no/yes)."""
    columns = min(5, len(label_names))
    rows = -(-len(label_names) // columns)
    fig, axes = new_figure(rows, columns, (3.3 * columns, 3.3 * rows))
    for ax, counts, name in zip(axes.flat, matrices, label_names):
        _matrix(ax, counts, "{:d}", ["no", "yes"], name)
    for ax in axes.flat[len(label_names):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


# A matrix of more classes than this is drawn as colours alone: its cells are too small for numbers. Beyond
# LABELLED_CLASSES the class names are left off the axes too.
NUMBERED_CLASSES = 30
LABELLED_CLASSES = 60


def _matrix(ax, values: np.ndarray, fmt: str, names: list[str], title: str) -> None:
    """One confusion matrix: rows the true class, columns the predicted one, each cell's value written on it
    (white on the dark cells) where there is room."""
    ax.imshow(values, cmap="Blues", interpolation="nearest")
    if len(names) <= NUMBERED_CLASSES:
        threshold = (values.max() + values.min()) / 2
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, fmt.format(value.item()), ha="center", va="center",
                    color="white" if value > threshold else "black")
    else:
        title += f" ({len(names)} classes: colour only)"
    if len(names) <= LABELLED_CLASSES:
        ticks = range(len(names))
        ax.set_xticks(ticks, names, rotation=45 if len(names) > 6 else 0)
        ax.set_yticks(ticks, names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(title)


ACTIVATION_TITLES = {"none": "none (identity)"}


def activation_functions(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """One small panel per activation: its own y scale, axes through the origin."""
    columns = min(4, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = new_figure(rows, columns, (3.2 * columns, 2.9 * rows), sharex=True)
    for ax, (name, (xs, ys)) in zip(axes.flat, curves.items()):
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.axvline(0, color="grey", linewidth=0.6)
        ax.plot(xs, ys, linewidth=2)
        ax.set_title(ACTIVATION_TITLES.get(name, name))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(curves):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    x = next(iter(curves.values()))[0]
    fig.suptitle(f"Activation functions f(x) on [{x.min():g}, {x.max():g}]", fontsize=12)
    save_figure(fig, path)


def regression_fit(
    path: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], predicted: np.ndarray,
    title: str,
) -> None:
    """One feature: the data and the fitted line (the tutorial's plot_predictions); else predicted vs true.
    `predicted`: the model's value for each test row."""
    fig, ((ax,),) = new_figure(1, 1, (7, 5))
    if train[0].shape[1] == 1:
        ax.scatter(train[0][:, 0], train[1][:, 0], s=14, c="b", label="train data")
        ax.scatter(test[0][:, 0], test[1][:, 0], s=14, c="g", label="test data")
        ax.scatter(test[0][:, 0], predicted, s=14, c="r", label="predictions (test)")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    else:
        truth = test[1][:, 0]
        ax.scatter(truth, predicted, s=14, c="r", label="test rows")
        lims = [min(truth.min(), predicted.min()), max(truth.max(), predicted.max())]
        ax.plot(lims, lims, "k--", label="perfect prediction")
        ax.set_xlabel("true value")
        ax.set_ylabel("predicted value")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=11)
    save_figure(fig, path)
