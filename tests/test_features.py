"""Training features: schedulers, class imbalance, label smoothing, init, validation monitoring, multilabel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clftrain.config import validate_config
from clftrain.data import build_dataset
from clftrain.errors import UserError
from clftrain.runs import fit_run
from clftrain.training import SingleSetup, setup_single
from conftest import tiny_config


def session_for(**overrides) -> SingleSetup:
    return setup_single(validate_config(tiny_config(**overrides)))


def lrs(session: SingleSetup) -> list[float]:
    return [row["lr"] for row in session.trainer.fit().history]


def test_step_scheduler_decays_every_step_size_epochs():
    session = session_for(train={"epochs": 6, "lr": 0.1, "scheduler": {"name": "step", "step_size": 2, "gamma": 0.5}})
    assert lrs(session) == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_cosine_scheduler_anneals_to_min_lr():
    session = session_for(train={"epochs": 10, "scheduler": {"name": "cosine", "min_lr": 0.001}})
    recorded = lrs(session)
    assert recorded[0] == pytest.approx(0.1) and recorded == sorted(recorded, reverse=True)
    assert session.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_plateau_scheduler_cuts_lr_when_the_monitor_stalls():
    # lr so small the loss moves less than the scheduler's relative threshold (1e-4): a plateau
    session = session_for(train={"epochs": 12, "lr": 1e-5, "scheduler": {"name": "plateau", "patience": 2, "factor": 0.1}})
    recorded = lrs(session)
    assert recorded[:3] == pytest.approx([1e-5] * 3) and recorded[-1] == pytest.approx(1e-8)


def test_onecycle_warms_up_then_anneals_per_batch():
    session = session_for(train={"epochs": 10, "batch_size": 40, "optimizer": "adam", "lr": 0.01,
                                 "scheduler": {"name": "onecycle", "max_lr": 0.05}})
    recorded = lrs(session)
    peak = int(np.argmax(recorded))
    assert 0 < peak < 9 and max(recorded) <= 0.05 and recorded[-1] < recorded[0]


def test_balanced_class_weight_follows_training_frequencies():
    session = session_for(dataset={"name": "classification", "n_classes": 3, "n_samples": 300}, train={"class_weight": "balanced"})
    y = session.dataset.y_train
    expected = len(y) / (3 * np.bincount(y, minlength=3))
    np.testing.assert_allclose(session.trainer.loss_fn.weight.numpy(), expected, rtol=1e-6)


def test_pos_weight_balanced_is_negatives_over_positives():
    session = session_for(train={"pos_weight": "balanced"})
    y = session.dataset.y_train[:, 0]
    assert session.trainer.loss_fn.pos_weight.item() == pytest.approx((y == 0).sum() / (y == 1).sum())
    assert session_for(train={"pos_weight": 3.0}).trainer.loss_fn.pos_weight.tolist() == [3.0]


def test_label_smoothing_reaches_the_loss():
    session = session_for(dataset={"name": "blobs", "centers": 3, "n_samples": 150}, train={"label_smoothing": 0.1})
    assert session.trainer.loss_fn.label_smoothing == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        ({"class_weight": "balanced"}, "train.class_weight = 'balanced' needs train.loss 'cross_entropy'"),
        ({"label_smoothing": 0.1, "loss": "bce"},
         "train.label_smoothing = 0.1 needs train.loss 'bce_with_logits' or 'cross_entropy'"),
        ({"pos_weight": 2.0, "loss": "bce"}, "train.pos_weight = 2.0 needs train.loss 'bce_with_logits'"),
        ({"scheduler": {"name": "warmup"}}, "train.scheduler.name = 'warmup'"),
    ],
)
def test_training_options_that_do_not_fit(train, expected):
    with pytest.raises(UserError, match=expected.replace(".", r"\.").replace("(", r"\(")):
        validate_config(tiny_config(train=train))


def test_pos_weight_list_must_match_the_labels():
    with pytest.raises(UserError, match=r"one per label \(5 here\)"):
        setup_single(validate_config({"dataset": {"name": "multilabel"}, "train": {"pos_weight": [1.0, 2.0]}}))


@pytest.mark.parametrize("init", ["xavier_uniform", "kaiming_normal", "orthogonal", "lecun_normal"])
def test_init_choice_changes_weights_and_zeroes_biases(init):
    default = session_for(seed=3).trainer.model[0]
    chosen = session_for(seed=3, model={"init": init}).trainer.model[0]
    assert not torch.equal(default.weight, chosen.weight)
    assert torch.count_nonzero(chosen.bias) == 0


def test_lecun_normal_draws_weights_of_variance_one_over_fan_in():
    from clftrain.components.inits import INITS

    weight = torch.empty(512, 400)
    torch.manual_seed(0)
    INITS.get("lecun_normal")(weight)
    assert abs(weight.mean().item()) < 1e-3
    assert weight.var().item() == pytest.approx(1 / 400, rel=0.02)  # PyTorch's default: 1 / (3 * 400)


def test_validation_split_is_monitored_and_recorded(tmp_path):
    config = validate_config(tiny_config(dataset={"val_size": 0.2}, train={"epochs": 15}))
    result = fit_run(config, out=tmp_path / "run")
    assert result.summary["monitor"] == "val_loss"
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header == "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,lr,seconds"
    assert result.summary["data"]["val"] == 40


def test_early_stopping_on_validation_touches_test_only_for_reporting(tmp_path):
    config = validate_config(tiny_config(dataset={"val_size": 0.2}, train={
        "epochs": 400, "lr": 1e-6, "early_stopping": {"monitor": "val_loss", "patience": 5, "min_delta": 0.01}}))
    result = fit_run(config, out=tmp_path / "run")
    assert result.summary["stopped_early"] and result.summary["epochs_run"] == 6


def test_multilabel_task_trains_with_one_sigmoid_per_label(tmp_path):
    config = validate_config({"dataset": {"name": "multilabel", "n_samples": 300}, "model": {"layers": [32]},
                              "train": {"optimizer": "adam", "lr": 0.01, "epochs": 60, "log_every": 20}})
    assert (config.task, config.train.loss) == ("multilabel", "bce_with_logits")
    result = fit_run(config, out=tmp_path / "run")
    assert result.summary["task"] == "multilabel"
    assert result.summary["model"]["layers"][-1] == "Linear(32 -> 5)"
    # subset accuracy: far above chance (2**-5) after a short training
    assert result.summary["final"]["test_acc"] > 0.3


@pytest.mark.parametrize(("name", "n_features", "classes"), [
    ("iris", 4, ["setosa", "versicolor", "virginica"]),
    ("wine", 13, ["class_0", "class_1", "class_2"]),
    ("breast_cancer", 30, ["malignant", "benign"]),
    ("digits", 64, [str(d) for d in range(10)]),
])
def test_bundled_datasets_keep_their_real_names(name, n_features, classes):
    data = build_dataset(validate_config({"dataset": {"name": name}}))
    assert data.n_features == n_features and data.class_names == classes
    assert data.feature_names[0] in ("sepal length (cm)", "alcohol", "mean radius", "pixel_0_0")
    assert data.preprocessor.mean is not None  # real data is standardised by default


def test_bundled_datasets_reject_generator_keys():
    with pytest.raises(UserError, match=r"dataset\.n_samples: unknown key"):
        validate_config({"dataset": {"name": "iris", "n_samples": 10}})
