"""fit does not pay for torch._dynamo or matplotlib before its first epoch, and the workaround changes no numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from clftrain.components import OPTIMIZERS, build_optimizer


def test_training_starts_without_importing_dynamo_or_matplotlib():
    code = (
        "import sys\n"
        "from clftrain.config import validate_config\nfrom clftrain.training import setup_single\n"
        "s = setup_single(validate_config({'dataset': {'name': 'circles', 'n_samples': 100},"
        " 'train': {'epochs': 3, 'optimizer': 'adam', 'scheduler': {'name': 'onecycle'}}}))\n"
        "s.trainer.fit()\n"
        "print(' '.join(m for m in ('torch._dynamo', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_the_step_workaround_gives_torchs_own_updates(name):
    from clftrain.config import TrainConfig

    cfg = TrainConfig(optimizer=name, lr=0.05, momentum=0.9 if name in ("sgd", "rmsprop") else 0.0, weight_decay=0.01)
    results = []
    for build in (build_optimizer, lambda p, c: OPTIMIZERS.get(c.optimizer).build(p, c)):
        torch.manual_seed(0)
        layer = torch.nn.Linear(3, 2)
        optimizer = build(layer.parameters(), cfg)
        for _ in range(5):
            optimizer.zero_grad()
            layer(torch.ones(4, 3)).pow(2).sum().backward()
            optimizer.step()
        results.append(layer.weight.detach().clone())
    assert torch.equal(results[0], results[1])
