"""The registries' contract, checked over their cross product: every registered loss x task x optimizer, for one
seed and for batched replicas. A valid combination trains a few epochs, and each replica equals its seed's solo
run; an invalid one is refused with exit 2 before anything trains. A new loss, optimizer or task entry is
checked by adding it (a task needs a dataset below, and the test says so).
"""

from __future__ import annotations

import itertools
import re

import pytest

from clftrain.components import LOSSES, OPTIMIZERS, TASKS, Optimizer
from clftrain.config import validate_config
from clftrain.errors import UserError
from clftrain.training import setup_group, setup_single
from conftest import tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A small dataset whose targets make each task.
DATA = {
    "binary": {"name": "moons", "n_samples": 60},
    "multiclass": {"name": "blobs", "centers": 3, "n_samples": 60},
    "multilabel": {"name": "multilabel", "n_samples": 60, "n_features": 4, "n_classes": 3},
    "regression": {"name": "linear", "n_samples": 40},
}
SEEDS = [0, 1]
COMBINATIONS = list(itertools.product(LOSSES.names(), TASKS.names(), OPTIMIZERS.names()))


def config_of(loss: str, task: str, optimizer: str) -> dict:
    return tiny_config(task=task, dataset=DATA[task], model={"layers": [6]},
                       train={"loss": loss, "optimizer": optimizer, "lr": 0.05, "epochs": 4, "batch_size": 16,
                              "eval_every": 1})


def valid(loss: str, task: str) -> bool:
    return loss in TASKS.get(task).losses


def test_every_task_has_a_dataset_here():
    assert sorted(DATA) == sorted(TASKS.names()), "add a dataset for the new task to DATA"


@pytest.mark.parametrize(("loss", "task", "optimizer"), [c for c in COMBINATIONS if valid(*c[:2])])
def test_a_valid_combination_trains_and_its_replicas_equal_their_solo_runs(loss, task, optimizer):
    config = config_of(loss, task, optimizer)
    group = setup_group([validate_config({**config, "seeds": SEEDS})])
    group.trainer.fit()
    member = group.members[0]
    for seed in SEEDS:
        solo = setup_single(validate_config({**config, "seed": seed}))
        solo.trainer.fit()
        assert solo.trainer.status == "completed" and solo.trainer.epoch == 4
        mine = [row for row in member.history if row["seed"] == seed]
        assert len(mine) == len(solo.trainer.history) == 4
        for ours, theirs in zip(mine, solo.trainer.history):
            for key, value in theirs.items():
                if key.endswith("_acc") or key in ("epoch", "lr"):
                    assert ours[key] == value, (seed, key)
                elif key != "seconds":
                    assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (seed, key)


@pytest.mark.parametrize(("loss", "task", "optimizer"), [c for c in COMBINATIONS if not valid(*c[:2])])
def test_an_invalid_combination_is_refused_before_training(loss, task, optimizer, write_config, cli, tmp_path):
    config = config_of(loss, task, optimizer)
    for seeds in (None, SEEDS):
        with pytest.raises(UserError, match=rf"train.loss = '{loss}' does not fit the {task} task; use one of: "
                                            + re.escape(", ".join(TASKS.get(task).losses))):
            validate_config({**config, "seeds": seeds})
    result = cli("fit", write_config({**config, "seeds": SEEDS}))
    assert result.exit_code == 2 and "does not fit the" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def non_elementwise_optimizer():
    """An optimizer whose update couples parameter elements (as a global-norm step would)."""
    sgd = OPTIMIZERS.get("sgd")
    OPTIMIZERS.register("coupled")(Optimizer("coupled", sgd.build, elementwise=False))
    yield "coupled"
    OPTIMIZERS.unregister("coupled")


def test_an_optimizer_that_is_not_elementwise_trains_one_seed_but_is_refused_with_seeds(non_elementwise_optimizer):
    config = config_of("bce_with_logits", "binary", non_elementwise_optimizer)
    run = setup_single(validate_config(config))
    run.trainer.fit()
    assert run.trainer.status == "completed"
    with pytest.raises(UserError, match="train.optimizer 'coupled' cannot be used with seeds: its update is not "
                                        "elementwise, so stacked replicas would not each train as alone; use one of: "
                                        "adam, adamw, rmsprop, sgd"):
        validate_config({**config, "seeds": SEEDS})


@pytest.mark.parametrize("option", ["class_weight", "label_smoothing", "pos_weight"])
def test_each_loss_option_is_accepted_by_the_losses_that_take_it_only(option):
    value = {"class_weight": "balanced", "label_smoothing": 0.1, "pos_weight": 2.0}[option]
    for loss in LOSSES.names():
        task = next(t for t in TASKS.names() if valid(loss, t))
        config = config_of(loss, task, "sgd")
        config["train"][option] = value
        if option in LOSSES.get(loss).options:
            setup_single(validate_config(config)).trainer.fit()
        else:
            with pytest.raises(UserError, match=rf"train.{option} = .* needs train.loss '.*', not '{loss}'"):
                validate_config(config)
