"""Many replicas of one MLP as one batched model, and each replica's own loss, score and gradient norm.

R replicas of the MLP that model.build_model describes, their weights stacked along a
leading replica dimension: a layer of every replica is one batched matmul, so a step
costs a few operations instead of R times as many (small-MLP training is dominated by
per-operation overhead, not arithmetic). Replica r computes what its own nn.Sequential
computes. An elementwise optimizer (SGD, momentum, Adam, RMSprop, weight decay) over the
stacked tensors keeps for each replica exactly the state it would have alone, provided
each replica's gradient is its own: differentiate the SUM over replicas of each replica's
mean loss (`ReplicaLoss`), and clip gradient norms per replica (`clip_grad_norms_`).

Shapes: R replicas, N rows, F input features, C a hidden width, O outputs.
Inside the model activations are [R, C, N], rows last: a layer is one
`baddbmm(b [R, out, 1], W [R, out, in], h [R, in, N])` whose bias broadcasts along the
contiguous rows (measured ~20% faster than [R, N, C] for 2-10-10-1 on CPU, where the
bias add over a last dimension of 10 is slow). Inputs are [N, F] (the same rows for
every replica: full batch) or [R, N, F] (each replica its own mini-batch); outputs are
[R, N, O], replica r's slice shaped like its solo model's output.

Parameters live in "parts", one per run of a batch (a sweep trains several runs together,
each with its own optimizer); forward concatenates the parts along the replica dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clftrain.components.losses import LOSSES
from clftrain.errors import UserError
from clftrain.training.model import InputScale, ParametricActivation, PeriodicEmbedding, first_mismatch


@dataclass
class _Layer:
    kind: str  # "linear" | "batch_norm" | "dropout" | "scale" | "periodic" | "parametric" | "elementwise"
    name: str  # its index in the solo nn.Sequential: state dict keys are f"{name}.weight", ...
    module: nn.Module | None = None  # elementwise, parametric: the activation (or final Sigmoid), stateless
    p: float = 0.0  # dropout probability
    eps: float = 1e-5  # batch norm
    momentum: float = 0.1  # batch norm


def _plan(model: nn.Sequential) -> list[_Layer]:
    layers = []
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            layers.append(_Layer("linear", name))
        elif isinstance(module, nn.BatchNorm1d):
            layers.append(_Layer("batch_norm", name, eps=module.eps, momentum=module.momentum))
        elif isinstance(module, nn.Dropout):
            layers.append(_Layer("dropout", name, p=module.p))
        elif isinstance(module, InputScale):
            layers.append(_Layer("scale", name))
        elif isinstance(module, PeriodicEmbedding):
            layers.append(_Layer("periodic", name))
        elif isinstance(module, ParametricActivation):
            layers.append(_Layer("parametric", name, module=module.f))
        else:
            assert not list(module.parameters()), f"{type(module).__name__} has parameters: not elementwise"
            layers.append(_Layer("elementwise", name, module=module))
    return layers


class _Part(nn.Module):
    """One run's stacked parameters, in the solo model's parameter order (what its optimizer sees)."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        self.values = nn.ParameterList([nn.Parameter(t) for t in tensors])


class StackedMLP(nn.Module):
    """R solo MLPs of one architecture as one model; replica i starts from `models[i]`'s weights.

    `part_sizes` splits the replicas into runs that have their own parameters (and optimizer):
    [5] is one run of five seeds, [5, 5, 5] three runs of a sweep trained together.
    """

    def __init__(self, models: list[nn.Sequential], part_sizes: list[int] | None = None) -> None:
        super().__init__()
        part_sizes = part_sizes or [len(models)]
        assert sum(part_sizes) == len(models) and models
        self.plan = _plan(models[0])
        self.replicas = len(models)
        self.part_sizes = list(part_sizes)
        states = [model.state_dict() for model in models]
        self.param_keys = [name for name, _ in models[0].named_parameters()]
        self.buffer_keys = [name for name, _ in models[0].named_buffers()]
        bounds = self.part_bounds()
        self.parts = nn.ModuleList(
            _Part([torch.stack([s[key] for s in states[lo:hi]]) for key in self.param_keys]) for lo, hi in bounds)
        # Buffers (batch-norm running statistics) are updated in place, never optimised: one tensor for all parts.
        for key in self.buffer_keys:
            self.register_buffer(_buffer_name(key), torch.stack([s[key] for s in states]))
        # Dropout draws from one generator per replica (set by the trainer): see _dropout.
        self.dropout_generators: list[torch.Generator] | None = None
        # The parts forward computes (None: all). A sweep's run whose replicas have all stopped (early stopping,
        # pruning) drops out of the batched work: forward takes and returns only the active parts' replicas.
        self.active: list[int] | None = None

    def set_active(self, parts: list[int]) -> None:
        """Compute only these parts from now on (all of them: None). Batch norm keeps every part: its running
        statistics are one stacked buffer that forward updates in place."""
        self.active = None if len(parts) == len(self.parts) or self.has_batch_norm else list(parts)

    def active_replicas(self) -> list[int] | None:
        """Positions of the replicas forward computes, in its output's order (None: every replica)."""
        if self.active is None:
            return None
        bounds = self.part_bounds()
        return [r for part in self.active for r in range(*bounds[part])]

    def part_bounds(self) -> list[tuple[int, int]]:
        """[(first, last + 1)] replica positions of each part."""
        bounds, start = [], 0
        for size in self.part_sizes:
            bounds.append((start, start + size))
            start += size
        return bounds

    @property
    def has_batch_norm(self) -> bool:
        return any(layer.kind == "batch_norm" for layer in self.plan)

    @property
    def has_dropout(self) -> bool:
        return any(layer.kind == "dropout" and layer.p > 0 for layer in self.plan)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self._parameters_by_key()
        replicas = self.replicas if self.active is None else sum(self.part_sizes[p] for p in self.active)
        h = x.transpose(-1, -2)  # [F, N] or [R, F, N]
        for layer in self.plan:
            if layer.kind == "linear":
                weight, bias = params[f"{layer.name}.weight"], params[f"{layer.name}.bias"]
                if h.dim() == 2:  # the same rows for every replica: broadcast them, no copy
                    h = h.expand(replicas, *h.shape)
                h = torch.baddbmm(bias.unsqueeze(2), weight, h)
            elif layer.kind == "batch_norm":
                h = self._batch_norm(layer, h, params)
            elif layer.kind == "dropout":
                h = self._dropout(layer, h)
            elif layer.kind == "scale":  # model.input_scale: [R, F] weights on [F, N] or [R, F, N] rows
                h = h * (params[f"{layer.name}.weight"] * InputScale.FACTOR).unsqueeze(-1)
            elif layer.kind == "periodic":
                h = self._periodic(layer, h, params, replicas)
            elif layer.kind == "parametric":  # model.parametric_activation: [R, C] alphas on [R, C, N] units
                alpha = (params[f"{layer.name}.weight"] * ParametricActivation.FACTOR).unsqueeze(-1)
                h = h + (layer.module(h) - h) * alpha
            elif isinstance(layer.module, nn.ReLU):
                # In place: backward needs only ReLU's result, not the Linear/BatchNorm output it overwrites,
                # and every [R, C, N] tensor not allocated saves memory traffic.
                h = torch.relu_(h)
            else:
                h = layer.module(h)
        return h.transpose(1, 2)  # [R, N, O]

    def _parameters_by_key(self) -> dict[str, torch.Tensor]:
        parts = self.parts if self.active is None else [self.parts[p] for p in self.active]
        if len(parts) == 1:
            return dict(zip(self.param_keys, parts[0].values))
        return {key: torch.cat([part.values[i] for part in parts]) for i, key in enumerate(self.param_keys)}

    def _batch_norm(self, layer: _Layer, h: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        # [R, C, N] -> [1, R*C, N]: statistics per (replica, channel) over the rows, as BatchNorm1d over [N, C].
        # The running statistics are views of the stacked buffers, updated in place.
        R, C, N = h.shape
        mean, var = self._buffer(f"{layer.name}.running_mean"), self._buffer(f"{layer.name}.running_var")
        if self.training:
            self._buffer(f"{layer.name}.num_batches_tracked").add_(1)
        out = F.batch_norm(h.reshape(1, R * C, N), mean.view(-1), var.view(-1), params[f"{layer.name}.weight"].reshape(-1),
                           params[f"{layer.name}.bias"].reshape(-1), self.training, layer.momentum, layer.eps)
        return out.view(R, C, N)

    def _periodic(self, layer: _Layer, h: torch.Tensor, params: dict[str, torch.Tensor], replicas: int) -> torch.Tensor:
        """PeriodicEmbedding of each replica: [F, N] or [R, F, N] -> [R, F * (WIDTH + 1), N], feature-major as the
        solo layer flattens it."""
        frequency, phase = params[f"{layer.name}.frequency"], params[f"{layer.name}.phase"]  # [R, F, k]
        weight, bias = params[f"{layer.name}.weight"], params[f"{layer.name}.bias"]  # [R, F, k, d], [R, F, d]
        if h.dim() == 2:
            h = h.expand(replicas, *h.shape)
        x = h.unsqueeze(2)  # [R, F, 1, N]
        waves = torch.cos(2 * torch.pi * (x * frequency.unsqueeze(-1) + phase.unsqueeze(-1)))  # [R, F, k, N]
        embedded = torch.einsum("rfkn,rfkd->rfdn", waves, weight) + bias.unsqueeze(-1)  # [R, F, d, N]
        R, F, _, N = embedded.shape
        return torch.cat([x, embedded], dim=2).reshape(R, -1, N)

    def _dropout(self, layer: _Layer, h: torch.Tensor) -> torch.Tensor:
        if not self.training or layer.p == 0:
            return h
        R, C, N = h.shape
        keep = 1 - layer.p
        # What nn.Dropout does on the CPU: x * empty_like(x).bernoulli_(1 - p) / (1 - p), with x [N, C]. Each
        # replica draws its own noise from its own generator, which continues the solo run's torch RNG.
        active = self.active_replicas()
        generators = self.dropout_generators if active is None else [self.dropout_generators[r] for r in active]
        noise = torch.stack([torch.empty(N, C, device=h.device).bernoulli_(keep, generator=g).t()
                             for g in generators])
        return h * noise.div_(keep)

    def _buffer(self, key: str) -> torch.Tensor:
        return getattr(self, _buffer_name(key))

    # ------------------------------------------------------------------ state
    def part_parameters(self, part: int) -> list[nn.Parameter]:
        return list(self.parts[part].values)

    def part_state(self, part: int, copy: bool = True) -> dict[str, torch.Tensor]:
        """One part's weights and buffers keyed like the solo model's state dict, each with a leading replica dim
        (copy=False: views of the live tensors, for a caller that copies them itself)."""
        lo, hi = self.part_bounds()[part]
        state = {key: value.detach() for key, value in zip(self.param_keys, self.parts[part].values)}
        state.update({key: self._buffer(key)[lo:hi] for key in self.buffer_keys})
        return {key: value.clone() for key, value in state.items()} if copy else state

    def part_buffers(self, part: int) -> list[torch.Tensor]:
        """One part's rows of every buffer (batch-norm statistics): views, updated in place by forward."""
        lo, hi = self.part_bounds()[part]
        return [self._buffer(key)[lo:hi] for key in self.buffer_keys]

    def load_part_state(self, part: int, state: dict[str, torch.Tensor], source: object) -> None:
        """Load one part's state, or say which layer of `source` does not fit and how (as model.load_weights)."""
        mismatch = first_mismatch(self.part_state(part), state)
        if mismatch:
            key, theirs, mine = mismatch
            raise UserError(
                f"{source} does not match the replicas its config describes: first mismatch at layer '{key}' "
                f"(checkpoint: {theirs}, config's replicas: {mine}; the first dimension "
                "counts replicas); use the checkpoint with the config it was trained with")
        lo, hi = self.part_bounds()[part]
        with torch.no_grad():
            for key, value in zip(self.param_keys, self.parts[part].values):
                value.copy_(state[key])
            for key in self.buffer_keys:
                self._buffer(key)[lo:hi].copy_(state[key])

    def replica_model(self, index: int, solo: nn.Sequential) -> nn.Sequential:
        """`solo` (an nn.Sequential of the same architecture) loaded with replica `index`'s weights."""
        part = next(i for i, (lo, hi) in enumerate(self.part_bounds()) if lo <= index < hi)
        offset = index - self.part_bounds()[part][0]
        state = {key: value[offset] for key, value in self.part_state(part).items()}
        solo.load_state_dict(state)
        return solo


def _buffer_name(key: str) -> str:
    return "buffer_" + key.replace(".", "_")


# ---------------------------------------------------------------------- per-replica loss and gradient norm
class ReplicaLoss:
    """Each replica's own mean loss, [R, N, O] outputs -> [R], computed as the solo loss module computes it
    (the loss registry entry's `replica_means`).

    `module` is the run's loss (training/setup.py builds it); its class weights and label smoothing
    (cross_entropy) or positive weights (bce_with_logits) apply to every replica.
    """

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module  # its weights go into the checkpoints (setup.loss_weights)
        self._means = LOSSES.get(name).replica_means

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._means(self.module, outputs, targets)


def clip_grad_norms_(parameters: list[torch.Tensor], max_norm: float) -> None:
    """nn.utils.clip_grad_norm_ for each replica on its own: scale replica r's gradients so that their total
    norm is at most max_norm (a total over all replicas would couple them)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])  # [P, R]
    total = torch.linalg.vector_norm(norms, dim=0)  # [R]
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))


# ---------------------------------------------------------------------- one replica, or all of them averaged
class ReplicaSelect(nn.Module):
    """Replica `index` of a stacked model, computed in the same batch as in training (bit for bit what fit saw)."""

    def __init__(self, stacked: StackedMLP, index: int) -> None:
        super().__init__()
        self.stacked, self.index = stacked, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stacked(x)[self.index]


class ReplicaEnsemble(nn.Module):
    """The replicas' mean probability, returned as the outputs a model of the task returns
    (Task.outputs_from_probabilities), so the task's own probabilities(), labels() and the run's
    loss apply unchanged."""

    def __init__(self, stacked: StackedMLP, task, outputs_are_probabilities: bool) -> None:
        super().__init__()
        self.stacked, self.task, self.outputs_are_probabilities = stacked, task, outputs_are_probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.stacked(x)  # [R, N, O]
        mean = self.task.probabilities(outputs, self.outputs_are_probabilities).mean(dim=0)
        return self.task.outputs_from_probabilities(mean, self.outputs_are_probabilities)
