"""The MLP builder and the component registries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clftrain.components import ACTIVATIONS
from clftrain.config import ModelConfig
from clftrain.components import LOSSES
from clftrain.training import build_model, count_parameters, describe_model, forward_in_chunks
from clftrain.components import OPTIMIZERS
from clftrain.registry import Registry
from clftrain.components import TASKS
from clftrain.errors import UserError


def test_tutorial_model_shape_and_capacity():
    model = build_model(ModelConfig(layers=[10, 10], activation="relu"), 2, 1, "bce_with_logits")
    kinds = [info.kind for info in describe_model(model)]
    assert kinds == ["Linear(2 -> 10)", "ReLU", "Linear(10 -> 10)", "ReLU", "Linear(10 -> 1)"]
    assert count_parameters(model) == 2 * 10 + 10 + 10 * 10 + 10 + 10 + 1


def test_no_hidden_layers_is_logistic_regression():
    model = build_model(ModelConfig(layers=[]), 4, 3, "cross_entropy")
    assert [type(m) for m in model] == [nn.Linear]


def test_bce_loss_gets_a_sigmoid_output_and_logit_losses_do_not():
    with_sigmoid = build_model(ModelConfig(layers=[4]), 2, 1, "bce")
    assert isinstance(with_sigmoid[-1], nn.Sigmoid)
    assert isinstance(build_model(ModelConfig(layers=[4]), 2, 1, "bce_with_logits")[-1], nn.Linear)


def test_batch_norm_and_dropout_are_placed_after_each_hidden_linear():
    model = build_model(ModelConfig(layers=[8, 8], batch_norm=True, dropout=0.2, activation="tanh"), 2, 1, "l1")
    assert [type(m).__name__ for m in model] == [
        "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear", "BatchNorm1d", "Tanh", "Dropout", "Linear"]


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_activation_builds_a_module(name):
    module = ACTIVATIONS.get(name)()
    assert isinstance(module, nn.Module)
    assert module(torch.zeros(2, 3)).shape == (2, 3)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_takes_a_step(name):
    from clftrain.config import TrainConfig

    layer = nn.Linear(2, 1)
    before = layer.weight.detach().clone()
    optimizer = OPTIMIZERS.get(name).build(layer.parameters(), TrainConfig(optimizer=name, lr=0.1))
    layer(torch.ones(4, 2)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, layer.weight)


def test_every_task_loss_is_registered():
    for task in TASKS:
        assert set(TASKS.get(task).losses) <= set(LOSSES.names())


def test_registry_unknown_name_suggests_and_lists():
    registry = Registry("widget")
    registry.register("alpha")(lambda: 1)
    registry.register("beta")(lambda: 2)
    with pytest.raises(UserError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\); choose one of: alpha, beta"):
        registry.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("alpha")(lambda: 3)


def test_evaluation_in_chunks_gives_the_outputs_of_one_pass(monkeypatch):
    from clftrain.training import model as model_module
    from clftrain.training import StackedMLP

    torch.manual_seed(0)
    X = torch.randn(103, 3)
    solo = build_model(ModelConfig(layers=[8], batch_norm=True), 3, 4, "cross_entropy").eval()
    stacked = StackedMLP([build_model(ModelConfig(layers=[8]), 3, 4, "cross_entropy") for _ in range(2)]).eval()
    whole = [solo(X), stacked(X)]
    monkeypatch.setattr(model_module, "EVAL_ROWS", 10)  # 11 chunks, the last of 3 rows
    for model, expected in zip([solo, stacked], whole):
        chunked = forward_in_chunks(model, X)
        assert chunked.shape == expected.shape
        torch.testing.assert_close(chunked, expected)
