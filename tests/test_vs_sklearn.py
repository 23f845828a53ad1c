"""Each real-data example config reaches at least the test accuracy of scikit-learn's MLPClassifier
with the same hidden layers, optimizer, learning rate, batch and epoch budget, on the same rows.

Compared as the mean over three seeds (one seed's result is mostly noise on small data);
clftrain is scored by its best checkpoint, chosen on the validation split."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from clftrain.config import load_config
from clftrain.training import setup_single
from conftest import CONFIGS

SEEDS = (0, 1, 2)


def both_accuracies(path, seed: int) -> tuple[float, float]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    config = load_config(path, [f"seed={seed}"])
    session = setup_single(config)
    session.trainer.callbacks = [session.best, *([session.stopper] if session.stopper else [])]
    session.trainer.fit()
    data, train = session.dataset, config.train
    flat = (lambda y: y[:, 0]) if data.task.name == "binary" else (lambda y: y)
    mlp = MLPClassifier(hidden_layer_sizes=config.model.layers, solver="adam", learning_rate_init=train.lr,
                        max_iter=train.epochs, batch_size=train.batch_size or len(data.X_train),
                        early_stopping=False, n_iter_no_change=10**9, tol=0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # it runs every epoch on purpose
        mlp.fit(data.X_train, flat(data.y_train))
    return session.best.best_row["test_acc"], mlp.score(data.X_test, flat(data.y_test))


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits", "multilabel", "heart"])
def test_example_config_matches_or_beats_mlpclassifier(name, one_torch_thread):
    results = np.array([both_accuracies(CONFIGS / f"{name}.yaml", seed) for seed in SEEDS])
    ours, theirs = results.mean(axis=0)
    assert ours >= theirs, f"clftrain {results[:, 0]} vs MLPClassifier {results[:, 1]}"
    assert ours > {"multilabel": 0.4}.get(name, 0.8)  # and both are real results, not two failures
