"""`clftrain plot` and `clftrain activations`: which files, and what their titles and axes say."""

from __future__ import annotations

import csv
import json
import shutil

import matplotlib.image
import pytest

from clftrain.views import plots
from conftest import tiny_config
from trained_runs import fit_run, invoke


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "circles": fit_run(root, tiny_config(name="circles", dataset={"val_size": 0.2})),
        "blobs4d": fit_run(root, tiny_config(name="blobs4d", dataset={"name": "blobs", "centers": 3, "n_features": 4},
                                             train={"optimizer": "adam", "lr": 0.01})),
        "line": fit_run(root, tiny_config(name="line", task="regression", dataset={"name": "linear"},
                                          model={"layers": []})),
        "multi": fit_run(root, tiny_config(name="multi", dataset={"name": "multilabel", "n_features": 3,
                                                                   "n_classes": 3})),
    }


@pytest.fixture
def figures(monkeypatch):
    """path name -> the texts of each figure saved: suptitle, axes titles, axis labels, tick labels, legends."""
    drawn = {}
    save = plots.save_figure

    def capture(fig, path):
        texts = [fig.get_suptitle()]
        for ax in fig.axes:
            texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            texts += [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
            if ax.get_legend():
                texts += [t.get_text() for t in ax.get_legend().get_texts()]
        drawn[path.name] = {"text": "\n".join(texts), "axes": fig.axes}
        save(fig, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    return drawn


def png_size(path):
    height, width = matplotlib.image.imread(path).shape[:2]
    return width, height


def test_plot_redraws_every_plot_from_the_run_directory(runs, figures):
    run = runs["circles"]
    shutil.rmtree(run / "plots")
    result = invoke("plot", run)
    assert result.exit_code == 0, result.output
    names = ["decision_boundary.png", "confusion_matrix.png", "curves.png"]
    assert sorted(p.name for p in (run / "plots").iterdir()) == sorted(names)
    for name in names:
        assert f"wrote {run / 'plots' / name}" in result.output
        width, height = png_size(run / "plots" / name)
        assert width > 600 and height > 300
    for name in names:  # every title names the run, the weights drawn and their test accuracy
        assert "circles (last checkpoint, epoch 20): test accuracy " in figures[name]["text"]
    boundary = figures["decision_boundary.png"]["text"]
    last = list(csv.DictReader((run / "metrics.csv").open()))[-1]
    for split, rows in (("Train", 120), ("Test", 40)):  # the crosses are the rows the metrics count as wrong
        wrong = round((1 - float(last[f"{split.lower()}_acc"])) * rows)
        assert f"{split} ({rows} points, {wrong} predicted wrong)" in boundary
    assert "regions: the model's predicted class over the two features" in boundary
    curves = figures["curves.png"]["text"]
    assert all(word in curves for word in ("train", "test", "Loss", "Accuracy", "epoch"))


def test_confusion_matrix_shows_counts_and_row_shares_with_class_labels(runs, figures):
    assert invoke("plot", runs["blobs4d"]).exit_code == 0
    figure = figures["confusion_matrix.png"]
    assert "Counts" in figure["text"] and "Normalised by true class" in figure["text"]
    counts, shares = figure["axes"][:2]
    assert [t.get_text() for t in counts.get_xticklabels()] == ["0", "1", "2"]
    cells = [float(t.get_text()) for t in counts.texts]
    assert sum(cells) == 40  # every test row counted once
    row_sums = [sum(float(t.get_text()) for t in shares.texts[i * 3:(i + 1) * 3]) for i in range(3)]
    assert row_sums == pytest.approx([1, 1, 1], abs=0.02)


def test_more_than_two_features_are_drawn_in_the_principal_component_plane(runs, figures):
    assert invoke("plot", runs["blobs4d"]).exit_code == 0
    text = figures["decision_boundary.png"]["text"]
    assert ("regions: the model's predicted class on the plane of the first two principal components of 4 features;\n"
            "the rows lie off that plane, so a point marked right may sit on another colour") in text
    assert "PC1 (" in text and "PC2 (" in text
    assert "predicted right" in text and "predicted wrong" in text  # the legend


def test_boundary_points_are_discs_when_predicted_right_and_crosses_when_wrong(runs, figures):
    """Each point's mark is the model's prediction of its own row, whatever colour its projection lands on."""
    from clftrain.inference import TrainedRun

    assert invoke("plot", runs["blobs4d"]).exit_code == 0
    trained = TrainedRun.load(runs["blobs4d"])
    train_axes = figures["decision_boundary.png"]["axes"][0]
    predicted = trained.predict(trained.dataset.X_train)[1]
    wrong = int((predicted != trained.dataset.y_train).sum())
    drawn = [len(c.get_offsets()) for c in train_axes.collections]
    assert sum(drawn) == len(predicted)
    assert drawn == ([len(predicted) - wrong, wrong] if wrong else [len(predicted)])
    assert f"Train ({len(predicted)} points, {wrong} predicted wrong)" in train_axes.get_title()


def test_class_colours_are_distinct_and_none_is_near_white():
    for n in (2, 3, 10, 12, 20, 40):
        colours = plots.class_colours(n)
        luminance = colours[:, :3] @ [0.2126, 0.7152, 0.0722]
        assert len(colours) == n and luminance.max() < 0.8, n
        assert len({tuple(c.round(3)) for c in colours}) == n, n


def test_points_shrink_when_there_are_thousands():
    sizes = [plots.point_size(n) for n in (100, 300, 1_000, 5_000, 50_000)]
    assert sizes[0] == sizes[1] == 22 and sizes[-2] == sizes[-1] == 4
    assert sizes == sorted(sizes, reverse=True)


def test_best_checkpoint_is_named_in_the_titles_and_marked_on_the_curves(runs, figures):
    import json

    best = json.loads((runs["circles"] / "summary.json").read_text())["best"]["epoch"]
    assert invoke("plot", runs["circles"], "--checkpoint", "best").exit_code == 0
    assert f"best checkpoint, epoch {int(best)}" in figures["curves.png"]["text"]
    assert f"epoch {int(best)}" in figures["curves.png"]["text"].split("\n")  # the legend of the dotted line


def test_regression_run_gets_a_predictions_plot_instead(runs, figures):
    shutil.rmtree(runs["line"] / "plots")
    assert invoke("plot", runs["line"]).exit_code == 0
    assert sorted(p.name for p in (runs["line"] / "plots").iterdir()) == ["curves.png", "predictions.png"]
    assert "line (last checkpoint, epoch 20): test MAE " in figures["predictions.png"]["text"]


def test_multilabel_run_gets_one_boundary_row_and_one_matrix_per_label(runs, figures):
    assert invoke("plot", runs["multi"]).exit_code == 0
    boundary = figures["decision_boundary.png"]
    assert len(boundary["axes"]) == 6  # 3 labels x (train | test)
    for name in ("label1", "label2", "label3"):
        assert f"label '{name}': Train (160 points, " in boundary["text"] and f"not {name}" in boundary["text"]
    assert "test subset accuracy" in boundary["text"]
    confusion = figures["confusion_matrix.png"]
    assert [ax.get_title() for ax in confusion["axes"]] == ["label1", "label2", "label3"]
    for ax in confusion["axes"]:
        assert sum(int(t.get_text()) for t in ax.texts) == 40  # each label's 2x2 counts every test row


def test_plot_user_errors(tmp_path):
    result = invoke("plot", tmp_path / "nope")
    assert result.exit_code == 2 and "run directory not found" in result.output


def test_activations_draws_every_registered_function_in_one_figure(tmp_path, figures):
    from clftrain.components import ACTIVATIONS

    out = tmp_path / "act.png"
    result = invoke("activations", "-o", out)
    assert result.exit_code == 0, result.output
    figure = figures["act.png"]
    drawn = [ax for ax in figure["axes"] if ax.lines]
    names = ACTIVATIONS.names()
    assert len(drawn) == len(names) >= 10 and names[-1] == "none"  # relu ... mish, none
    titles = [ax.get_title() for ax in drawn]
    assert titles[:-1] == names[:-1] and titles[-1] == "none (identity)"
    x, y = drawn[0].lines[-1].get_data()  # relu over [-10, 10]
    assert x.min() == -10 and x.max() == 10 and y.min() == 0 and y.max() == 10
    assert png_size(out)[0] > 1000


def test_activations_can_draw_a_few_and_rejects_unknown_names(tmp_path, figures):
    assert invoke("activations", "relu", "tanh", "-o", tmp_path / "two.png").exit_code == 0
    assert [ax.get_title() for ax in figures["two.png"]["axes"] if ax.lines] == ["relu", "tanh"]
    result = invoke("activations", "rleu", "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "unknown activation 'rleu' (did you mean 'relu'?)" in result.output


DRAW_BOUNDARY = plots.decision_boundary  # the real one, kept for when a test has replaced it


def test_a_plot_that_cannot_be_drawn_leaves_a_finished_run_completed(write_config, cli, monkeypatch, tmp_path):
    """The run trained and saved its checkpoints: a broken picture is a note, not a failure."""
    def broken(*args, **kwargs):
        raise RuntimeError("the figure could not be rendered")

    monkeypatch.setattr(plots, "decision_boundary", broken)
    result = cli("fit", write_config(tiny_config()), "--out", "run")
    assert result.exit_code == 0, result.output
    summary = json.loads(open("run/summary.json").read())
    assert summary["status"] == "completed" and summary["final"]["test_acc"] > 0
    assert summary["notes"] == ["plots not drawn: RuntimeError: the figure could not be rendered; redraw with "
                                "clftrain plot run"]
    assert "note: plots not drawn: RuntimeError" in result.output
    monkeypatch.setattr(plots, "decision_boundary", DRAW_BOUNDARY)
    assert cli("plot", tmp_path / "run").exit_code == 0  # the run directory is whole: plot draws them afterwards
    assert (tmp_path / "run" / "plots" / "decision_boundary.png").stat().st_size > 10_000


def test_in_a_sweep_a_broken_plot_marks_no_run_failed(write_config, cli, monkeypatch):
    monkeypatch.setattr(plots, "learning_curves", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    monkeypatch.setattr(plots, "replica_curves", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space")))
    result = cli("sweep", write_config(tiny_config()), "--grid", "train.lr=0.1,0.2", "--out", "sweep", "-q")
    assert result.exit_code == 0, result.output
    for run in ("01-lr=0.1", "02-lr=0.2"):
        summary = json.loads(open(f"sweep/{run}/summary.json").read())
        assert summary["status"] == "completed" and "plots not drawn" in summary["notes"][0]
