"""Datasets: shapes, class names, seeding of generator and split, train-only scaling."""

from __future__ import annotations

import numpy as np
import pytest

from clftrain.config import validate_config
from clftrain.data import DATASETS, build_dataset
from clftrain.errors import UserError


def dataset_for(**dataset):
    return build_dataset(validate_config({"dataset": dataset}))


@pytest.mark.parametrize(
    ("dataset", "n_features", "classes"),
    [
        ({"name": "circles"}, 2, ["0", "1"]),
        ({"name": "moons"}, 2, ["0", "1"]),
        ({"name": "blobs", "centers": 3, "n_features": 5}, 5, ["0", "1", "2"]),
        ({"name": "spirals", "n_classes": 4}, 2, ["0", "1", "2", "3"]),
        ({"name": "classification", "n_features": 6, "n_informative": 3, "n_classes": 3}, 6, ["0", "1", "2"]),
        ({"name": "linear"}, 1, []),
    ],
)
def test_every_dataset_builds_with_its_shapes(dataset, n_features, classes):
    data = dataset_for(**dataset)
    assert data.n_features == n_features and data.class_names == classes
    assert data.X_train.dtype == np.float32 and data.X_test.dtype == np.float32
    n_total = len(data.X_train) + len(data.X_test)
    assert n_total == validate_config({"dataset": dataset}).dataset.n_samples
    assert len(data.X_test) == pytest.approx(0.2 * n_total, abs=1)


def test_registry_lists_every_config_dataset():
    from clftrain.config import DATASET_NAMES

    assert sorted(DATASETS.names()) == sorted(DATASET_NAMES)


def test_targets_have_the_layout_the_task_needs():
    binary = dataset_for(name="circles")
    assert binary.y_train.shape == (800, 1) and binary.y_train.dtype == np.float32
    multi = dataset_for(name="blobs", centers=4)
    assert multi.y_train.shape == (800,) and multi.y_train.dtype == np.int64
    assert set(np.unique(multi.y_train)) == {0, 1, 2, 3}


def test_spirals_has_n_samples_in_total_split_evenly():
    data = dataset_for(name="spirals", n_samples=901, n_classes=3)
    y = np.concatenate([data.y_train, data.y_test])
    assert len(y) == 901
    assert sorted(np.bincount(y).tolist()) == [300, 300, 301]


def test_linear_is_the_tutorial_line():
    data = dataset_for(name="linear", n_samples=50)
    X = np.concatenate([data.X_train, data.X_test])[:, 0]
    y = np.concatenate([data.y_train, data.y_test])[:, 0]
    np.testing.assert_allclose(y, 0.7 * X + 0.3, atol=1e-6)
    np.testing.assert_allclose(np.sort(X), np.arange(50) * 0.02, atol=1e-6)


def test_dataset_seed_fixes_data_and_split_and_changes_them():
    a, b = dataset_for(name="moons", seed=1), dataset_for(name="moons", seed=1)
    c = dataset_for(name="moons", seed=2)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)


def test_split_is_stratified_for_classes():
    data = dataset_for(name="blobs", centers=4, n_samples=400)
    assert np.bincount(data.y_test).tolist() == [20, 20, 20, 20]


def test_standardize_uses_training_statistics_only():
    data = dataset_for(name="blobs", centers=3, standardize=True)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(data.X_test.mean(axis=0), 0, atol=1e-5)  # test rows are scaled, not refitted
    assert data.preprocessor.mean is not None


def test_validation_split_takes_its_fraction_of_all_rows():
    data = dataset_for(name="circles", n_samples=1000, test_size=0.2, val_size=0.1)
    assert (len(data.X_train), len(data.X_val), len(data.X_test)) == (700, 100, 200)


def test_split_too_small_for_the_classes_is_a_user_error():
    with pytest.raises(UserError, match="cannot split dataset 'spirals'"):
        dataset_for(name="spirals", n_classes=5, n_samples=12, test_size=0.1)


# ---------------------------------------------------------------------- the same draws as scikit-learn
@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 - 1])
@pytest.mark.parametrize("n", [2, 3, 101, 1000])
def test_circles_moons_and_blobs_draw_what_scikit_learn_draws(seed, n):
    from types import SimpleNamespace

    from sklearn import datasets

    from clftrain.data import DATASETS

    for noise in (0.0, 0.2):
        mine = DATASETS.get("circles")(SimpleNamespace(n_samples=n, noise=noise, factor=0.5, seed=seed))
        theirs = datasets.make_circles(n, noise=noise, factor=0.5, random_state=seed)
        assert np.array_equal(mine.X, theirs[0]) and np.array_equal(mine.y, theirs[1])
        mine = DATASETS.get("moons")(SimpleNamespace(n_samples=n, noise=noise, seed=seed))
        theirs = datasets.make_moons(n, noise=noise, random_state=seed)
        assert np.array_equal(mine.X, theirs[0]) and np.array_equal(mine.y, theirs[1])
    for centers, features in ((2, 1), (4, 2), (7, 5)):
        mine = DATASETS.get("blobs")(SimpleNamespace(n_samples=max(n, centers), centers=centers, n_features=features,
                                                     cluster_std=0.7, seed=seed))
        theirs = datasets.make_blobs(max(n, centers), n_features=features, centers=centers, cluster_std=0.7,
                                     random_state=seed)
        assert np.array_equal(mine.X, theirs[0]) and np.array_equal(mine.y, theirs[1])


def test_splits_are_scikit_learns_train_test_split_draw_for_draw():
    from sklearn.model_selection import train_test_split

    from clftrain.data.splits import SplitError, train_test_rows

    rng = np.random.RandomState(5)
    for _ in range(400):
        n, classes = rng.randint(4, 300), rng.randint(2, 8)
        test_size, seed = float(rng.choice([0.1, 0.2, 0.25, 1 / 3, 0.5, 0.7])), int(rng.randint(0, 2**31))
        labels, rows = rng.randint(0, classes, size=n), np.arange(n) * 3
        for stratify in (None, labels):
            try:
                theirs = train_test_split(rows, test_size=test_size, random_state=seed, stratify=stratify)
            except ValueError:
                with pytest.raises(SplitError):
                    train_test_rows(rows, test_size, seed, stratify)
                continue
            mine = train_test_rows(rows, test_size, seed, stratify)
            assert np.array_equal(mine[0], theirs[0]) and np.array_equal(mine[1], theirs[1])


def test_fit_of_a_generated_dataset_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = ("import sys\nfrom clftrain.config import validate_config\nfrom clftrain.data import build_dataset\n"
            "for name in ('circles', 'moons', 'blobs', 'spirals', 'linear'):\n"
            "    build_dataset(validate_config({'dataset': {'name': name, 'val_size': 0.1}}))\n"
            "print('sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
