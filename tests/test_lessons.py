"""Each lesson config in configs/ reaches the test-split result its top comment promises.

Every test trains a real config end to end (load_config + fit_run), with the
config's own seeds, and checks summary["final"]. The bounds were set from sweeps over
init seeds (`seed`: 0-19 or more, plus 42) and dataset seeds (42, 0, 1), so that
they hold for every initialisation measured, not just for the pinned seed:

    config              metric     measured over the seeds tried   asserted
    circles_linear      test_acc   0.465 - 0.53                    0.35 - 0.65
    linear_regression   test_mae   0.001 - 0.012                   < 0.05
    circles             test_acc   0.535 - 1.0 (seed 42: 0.855)    >= 0.53
    circles_adam        test_acc   0.995 - 1.0                     >= 0.99
    blobs               test_acc   0.99 - 0.995 (dataset seed 42)  >= 0.99
    moons               test_acc   0.995 - 1.0                     >= 0.96
    spirals             test_acc   0.989 - 1.0                     >= 0.95

circles.yaml is the tutorial's model as the tutorial gives it (2 -> 10 -> 10 -> 1, SGD
at lr 0.1, 1,000 epochs): how far it gets depends strongly on the initialisation
(init seeds 0-59 on the lesson's data: median 0.94, but 15 of 60 end below 0.70, the
worst still on the plateau at 0.535). Its floor is the worst seed measured, so it
only catches a broken run: the worst initialisations do no better than circles_linear
(up to 0.53). circles_adam.yaml is the lesson that reaches 99% for every seed.

blobs is checked on its own data (dataset seed 42): other data seeds can draw two
centres close together, and then no classifier reaches 99% (linear discriminant
analysis, near optimal for such blobs, gets 0.815 and 0.92 on dataset seeds 0 and 1).
"""

from __future__ import annotations

import math

import pytest

from clftrain.config import load_config
from clftrain.runs import fit_run
from conftest import CONFIGS

# (config stem, metric, low, high): low <= value <= high; None leaves that side open.
LESSONS = [
    pytest.param("circles_linear", "test_acc", 0.35, 0.65, id="circles_linear"),
    pytest.param("linear_regression", "test_mae", None, 0.05, id="linear_regression"),
    pytest.param("circles", "test_acc", 0.53, None, id="circles"),
    pytest.param("circles_adam", "test_acc", 0.99, None, id="circles_adam"),
    pytest.param("blobs", "test_acc", 0.99, None, id="blobs"),
    pytest.param("moons", "test_acc", 0.96, None, id="moons"),
    pytest.param("spirals", "test_acc", 0.95, None, id="spirals"),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(stem: str, tmp_path, overrides: list[str] = ()) -> dict:
    config = load_config(CONFIGS / f"{stem}.yaml", list(overrides))
    summary = fit_run(config, runs_root=tmp_path).summary
    assert summary["status"] == "completed", summary
    assert summary["epochs_run"] == config.train.epochs  # no early stop, no divergence
    return summary


@pytest.mark.parametrize(("stem", "metric", "low", "high"), LESSONS)
def test_lesson_reaches_its_target(stem, metric, low, high, tmp_path):
    summary = train(stem, tmp_path)
    value = summary["final"][metric]
    assert math.isfinite(value), summary["final"]
    if low is not None:
        assert value >= low, f"{stem}: {metric} = {value:.4f}, expected >= {low}"
    if high is not None:
        assert value <= high, f"{stem}: {metric} = {value:.4f}, expected <= {high}"


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_circles_adam_reaches_99_percent_for_other_initialisations(seed, tmp_path):
    summary = train("circles_adam", tmp_path, [f"seed={seed}"])
    assert summary["final"]["test_acc"] >= 0.99, f"seed {seed}: test_acc = {summary['final']['test_acc']:.4f}"


def test_tutorial_circles_model_beats_a_straight_line_on_average(tmp_path):
    """One seed of circles.yaml can stall on the plateau; five seeds on average cannot
    (measured mean over seeds 0-4: 0.689; circles_linear never exceeds 0.53)."""
    accuracies = [train("circles", tmp_path / str(seed), [f"seed={seed}"])["final"]["test_acc"] for seed in range(5)]
    assert sum(accuracies) / len(accuracies) >= 0.62, accuracies
