"""Config validation: defaults, resolution of task and loss, and every error message."""

from __future__ import annotations

import re

import pytest

from clftrain.config import Config, InvalidConfig, load_config, parse_overrides, validate_config
from clftrain.errors import UserError
from conftest import tiny_config


def test_defaults_are_filled_and_task_inferred():
    config = validate_config({"dataset": {"name": "circles"}})
    assert config.task == "binary"
    assert config.train.loss == "bce_with_logits"
    assert config.model.layers == [10, 10]
    assert config.dataset.seed == 42 and config.dataset.test_size == 0.2


@pytest.mark.parametrize(
    ("dataset", "task", "loss"),
    [
        ({"name": "blobs", "centers": 4}, "multiclass", "cross_entropy"),
        ({"name": "blobs", "centers": 2}, "binary", "bce_with_logits"),
        ({"name": "spirals", "n_classes": 3}, "multiclass", "cross_entropy"),
        ({"name": "moons"}, "binary", "bce_with_logits"),
        ({"name": "classification", "n_classes": 3}, "multiclass", "cross_entropy"),
        ({"name": "linear"}, "regression", "l1"),
    ],
)
def test_task_and_default_loss_follow_the_dataset(dataset, task, loss):
    config = validate_config({"dataset": dataset})
    assert (config.task, config.train.loss) == (task, loss)


def test_binary_data_may_be_trained_as_two_class_multiclass():
    config = validate_config({"dataset": {"name": "circles"}, "task": "multiclass"})
    assert config.train.loss == "cross_entropy"


def test_yaml_1_1_exponent_string_still_means_a_number(write_config):
    # PyYAML (YAML 1.1) reads `1e-3` as the string "1e-3".
    path = write_config("dataset: {name: circles}\ntrain: {lr: 1e-3}\n")
    assert load_config(path).train.lr == pytest.approx(0.001)


def test_set_overrides_apply_with_yaml_values(write_config):
    path = write_config(tiny_config())
    config = load_config(path, ["train.lr=0.01", "model.layers=[16, 16]", "train.batch_size=null", "seed=7"])
    assert config.train.lr == 0.01 and config.model.layers == [16, 16]
    assert config.train.batch_size is None and config.seed == 7


def test_set_can_change_the_dataset_kind(write_config):
    path = write_config(tiny_config())
    config = load_config(path, ["dataset.name=blobs", "dataset.centers=3"])
    assert config.dataset.name == "blobs" and config.task == "multiclass"


def _error(write_config, content, overrides=()) -> str:
    path = write_config(content)
    with pytest.raises(UserError) as info:
        load_config(path, list(overrides))
    return str(info.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model": {"activaton": "relu"}}, r"model\.activaton: unknown key \(did you mean 'activation'\?\)"),
        ({"model": {"activation": "rellu"}}, r"model\.activation = 'rellu': unknown activation 'rellu' \(did you mean 'relu'\?\); choose one of: relu, tanh"),
        ({"train": {"optimizer": "adamm"}}, r"train\.optimizer = 'adamm': unknown optimizer .*did you mean 'adam'.*sgd, adam, adamw, rmsprop"),
        ({"train": {"loss": "cross_entropy"}}, r"train\.loss = 'cross_entropy' does not fit the binary task; use one of: bce_with_logits, bce"),
        ({"train": {"lr": 0}}, r"train\.lr = 0: Input should be greater than 0"),
        ({"train": {"lr": -0.1}}, r"train\.lr = -0\.1: Input should be greater than 0"),
        ({"train": {"lr": "fast"}}, r"train\.lr = 'fast': Input should be a valid number"),
        ({"train": {"lr": float("nan")}}, r"train\.lr = nan: Input should be a finite number"),
        ({"train": {"epochs": 0}}, r"train\.epochs = 0: Input should be greater than or equal to 1"),
        ({"train": {"epochs": "ten"}}, r"train\.epochs = 'ten': Input should be a valid integer"),
        ({"dataset": {"name": "circles", "test_size": 1.0}}, r"dataset\.test_size = 1\.0: Input should be less than 1"),
        ({"dataset": {"name": "circles", "test_size": 0}}, r"dataset\.test_size = 0: Input should be greater than 0"),
        ({"dataset": {"name": "circels"}}, r"dataset\.name = 'circels': unknown dataset \(did you mean 'circles'\?\)"),
        ({"dataset": {"name": "circles", "centers": 3}}, r"dataset\.centers: unknown key; valid keys here: .*noise"),
        ({"model": {"layers": [10, -4]}}, r"model\.layers\.1 = -4: Input should be greater than or equal to 1"),
        ({"model": {"layers": [10, 0]}}, r"model\.layers\.1 = 0: Input should be greater than or equal to 1"),
        ({"model": {"layers": 10}}, r"model\.layers = 10: Input should be a valid list"),
        ({"device": "gpu"}, r"device = 'gpu': String should match pattern"),
        ({"train": {"optimizer": "adam", "momentum": 0.9}}, r"train\.momentum = 0\.9 is not used by optimizer 'adam'"),
        ({"task": "regression"}, r"task = 'regression' does not fit dataset 'circles'"),
        ({"dataset": {"name": "blobs", "centers": 4, "n_samples": 5}}, r"dataset\.n_samples = 5 is too few for 4 classes"),
        ({"nmae": "x"}, r"nmae: unknown key \(did you mean 'name'\?\)"),
    ],
)
def test_each_invalid_value_names_file_field_and_value(write_config, change, expected):
    message = _error(write_config, tiny_config(**change))
    assert "config.yaml" in message
    assert re.search(expected, message), message


def test_all_errors_are_listed_at_once(write_config):
    message = _error(write_config, tiny_config(train={"lr": 0, "epochs": 0}, model={"activation": "x"}))
    assert message.count("\n  - ") == 3


def test_missing_dataset_section(write_config):
    assert "dataset: required key is missing" in _error(write_config, {"name": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty"),
        ("- a\n- b\n", "must be a mapping of keys"),
        ("dataset: {name: circles\n", "invalid YAML in"),
        ("dataset: {name: circles}\ndataset: {name: moons}\n", "duplicate key 'dataset'"),
        ("dataset: !!python/object/apply:os.system ['echo hi']\n", "invalid YAML"),
    ],
)
def test_unreadable_yaml(write_config, text, expected):
    assert expected in _error(write_config, text)


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_config_path_that_is_a_directory(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("train.lr", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("train..lr=3", "expected KEY=VALUE"),
        ("train.lr=[1,", "not valid YAML"),
    ],
)
def test_malformed_set_items(item, expected):
    with pytest.raises(UserError, match=expected):
        parse_overrides([item])


def test_set_on_unknown_key_says_it_came_from_set(write_config):
    message = _error(write_config, tiny_config(), ["train.lrr=0.1"])
    assert "train.lrr: unknown key (did you mean 'lr'?) (from --set train.lrr)" in message


def test_set_through_a_value_is_an_error(write_config):
    message = _error(write_config, tiny_config(), ["train.epochs.x=1"])
    assert "--set train.epochs.x: 'train.epochs' is a value (20), not a section" in message


def test_resolved_config_round_trips():
    config = validate_config({"dataset": {"name": "spirals"}})
    again = Config.model_validate(config.to_dict())
    assert again == config


@pytest.mark.parametrize("train, expected", [
    ({}, 10),  # 1,000 epochs, a row every 100: evaluated every 10th epoch, 100 rows
    ({"epochs": 150}, 1),  # short runs: every epoch
    ({"epochs": 5000, "log_every": 50}, 50),  # capped by log_every: logged epochs are regular evaluations
    ({"epochs": 1000, "log_every": 7}, 7),  # 7 has no divisor between 1 and 7 but itself
    ({"epochs": 1000, "log_every": 12}, 6),  # the largest divisor of 12 up to 10
    ({"early_stopping": {"monitor": "val_loss", "patience": 20}}, 1),
    ({"scheduler": {"name": "plateau"}}, 1),
    ({"eval_every": 3}, 3),  # an explicit number is kept
])
def test_eval_every_auto_resolves_to_a_number(train, expected):
    config = validate_config({"dataset": {"name": "circles"}, "train": train})
    assert config.train.eval_every == expected
    assert config.to_dict()["train"]["eval_every"] == expected  # what config.yaml records


def test_logged_epochs_are_evaluated_even_between_eval_every():
    train = validate_config({"dataset": {"name": "circles"},
                             "train": {"epochs": 12, "eval_every": 3, "log_every": 5}}).train
    assert [e for e in range(1, 13) if train.evaluates(e)] == [3, 5, 6, 9, 10, 12]


@pytest.mark.parametrize("value", [0, -1, "some", 1.5])
def test_threads_must_be_auto_or_a_positive_integer(value):
    with pytest.raises(InvalidConfig, match="threads"):
        validate_config({"dataset": {"name": "circles"}, "threads": value})


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"task": "binary", "dataset": {"name": "blobs", "centers": 10}},
         "task = 'binary' does not fit dataset 'blobs' (its targets make 10 classes: binary needs exactly 2); "
         "use task: auto or multiclass"),
        ({"task": "binary", "dataset": {"name": "iris"}},
         "task = 'binary' does not fit dataset 'iris' (its targets make a multiclass task); use task: auto or multiclass"),
        ({"task": "multilabel", "dataset": {"name": "circles"}},
         "task = 'multilabel' does not fit dataset 'circles' (its targets make 2 classes); use task: auto or binary"),
    ],
    ids=["binary-on-ten-blobs", "binary-on-iris", "multilabel-on-circles"],
)
def test_a_forced_task_the_generator_contradicts_is_refused(config, expected):
    with pytest.raises(UserError) as error:
        validate_config(config)
    assert expected in str(error.value)
