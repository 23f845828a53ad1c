"""The trainers the benchmark compares, each a function (workload, data) -> result dict.

Every trainer gets the same numpy arrays (clftrain's trainers load them through clftrain's
own dataset code, CSV included) and, where it can take them, the same initial
weights: `torch.manual_seed(seed)` and then the Linear layers in clftrain's order (what
clftrain.training.build_trainer does), so the hand-written loop and Lightning start
from clftrain's exact weights, and scikit-learn gets them copied into its coefs_.

What each one times is only the training call (`fit`), after data and model are built:
  bare            the classic hand-written loop: tensors made once, full batch (or a
                  randperm sliced into mini-batches), zero_grad / backward / step, train
                  loss and accuracy summed on the device, test loss and accuracy under
                  inference_mode every epoch, one host read of the four numbers per epoch,
                  a print every log_every epochs (to /dev/null)
  clftrain        clftrain.training.build_trainer + Trainer.fit(), with the callbacks
                  `clftrain fit` attaches that work every epoch in memory: BestTracker
                  (best weights) and views.ConsoleProgress on a quiet rich Console, under the
                  CPU threads `clftrain fit` picks (threads: auto, training/device.py).
                  eval_every=1: the same work as `bare` (test evaluation every epoch)
  clftrain-default the same with clftrain's default cadence (eval_every: auto, about 100
                  evaluations per run; every epoch for the short workloads)
  clftrain-end    the same evaluating once, after the last epoch (eval_every = log_every =
                  epochs): the work scikit-learn's MLPClassifier does (full-batch workloads)
  clftrain-arrays CSV workloads: `clftrain` on the arrays the benchmark's reader made, so the
                  loop's time and memory show apart from clftrain's CSV loading
  clftrain-fit    clftrain.runs.fit_run into a temporary run directory
                  (adds metrics.csv and checkpoints every log_every epochs); its time is the
                  `seconds` the run's summary reports (optional)
  sklearn         sklearn.neural_network.MLPClassifier, same layers, solver, lr, epochs and
                  batch size, alpha=0, no momentum, early stopping off, runs every epoch;
                  it has no per-epoch test evaluation (scored once, after timing)
  lightning       lightning.Trainer, logger/checkpointing/progress bar/model summary off,
                  validation on the test split every epoch; batches come from a plain
                  iterable of tensors (no per-sample collation), like clftrain's
  bare-dataloader the hand-written loop fed by DataLoader(TensorDataset, shuffle=True),
                  the tutorial way to make mini-batches (optional)
  lightning-dataloader  Lightning fed the same tutorial way (optional)
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.workloads import Data, Workload

TRAINERS: dict[str, Callable[[Workload, Data], dict[str, Any]]] = {}
DEFAULT_TRAINERS = ["bare", "clftrain", "clftrain-default", "clftrain-end", "clftrain-arrays", "sklearn",
                    "lightning", "bare-dataloader", "lightning-dataloader"]
# Trainers whose data comes through clftrain's own dataset code (CSV included).
VIA_CLFTRAIN = {"clftrain", "clftrain-default", "clftrain-end", "clftrain-fit"}


def trainer(name: str):
    def register(fn):
        TRAINERS[name] = fn
        return fn

    return register


def preload(name: str, workload: Workload) -> None:
    """Import what a trainer needs before the memory baseline is read (imports are not data)."""
    import torch

    # The first torch.optim optimizer of a process imports torch._dynamo (~1 s, ~80 MiB): start-up, not training.
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    import sklearn.model_selection  # noqa: F401 - every workload's split
    if not workload.csv_rows:  # every trainer's data comes from clftrain.data's generators
        import sklearn.datasets  # noqa: F401

        import clftrain.data  # noqa: F401
    if name.startswith("clftrain"):
        import rich._emoji_codes  # noqa: F401 - `clftrain fit` loads it printing the model table, before training

        import clftrain.runs.single  # noqa: F401
        import clftrain.views.progress  # noqa: F401
    elif name == "sklearn":
        import sklearn.neural_network  # noqa: F401
    elif name.startswith("lightning"):
        lightning_module()


def lightning_module():
    """The installed Lightning package (`lightning`, or the older `pytorch_lightning`), or None."""
    try:
        import lightning

        return lightning
    except ImportError:
        try:
            import pytorch_lightning

            return pytorch_lightning
        except ImportError:
            return None


# ----------------------------------------------------------------------------- shared pieces
def hand_written_mlp(workload: Workload, n_features: int):
    """The workload's MLP written out by hand, initialised exactly as clftrain initialises it."""
    import torch
    from torch import nn

    torch.manual_seed(workload.seed)
    layers: list[nn.Module] = []
    width = n_features
    for hidden in workload.layers:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, workload.out_features))
    return nn.Sequential(*layers)


def torch_targets(workload: Workload, y: np.ndarray):
    """Labels as the loss wants them: float [N, 1] for BCE-with-logits, int64 [N] for cross-entropy."""
    import torch

    y = torch.from_numpy(y)
    return y.float().unsqueeze(1) if workload.n_classes == 2 else y


def loss_and_correct(workload: Workload):
    """(loss module, correct-count function on logits) for the workload's task."""
    from torch import nn

    if workload.n_classes == 2:
        return nn.BCEWithLogitsLoss(), lambda logits, y: ((logits > 0) == (y > 0.5)).sum()
    return nn.CrossEntropyLoss(), lambda logits, y: (logits.argmax(dim=1) == y).sum()


def torch_optimizer(workload: Workload, params):
    """torch.optim with the library's defaults (what a hand-written loop writes)."""
    import torch

    if workload.optimizer == "sgd":
        return torch.optim.SGD(params, lr=workload.lr)
    return torch.optim.Adam(params, lr=workload.lr)


# ----------------------------------------------------------------------------- bare loop
@trainer("bare")
def bare(workload: Workload, data: Data) -> dict[str, Any]:
    return _bare_loop(workload, data, dataloader=False)


@trainer("bare-dataloader")
def bare_dataloader(workload: Workload, data: Data) -> dict[str, Any]:
    return _bare_loop(workload, data, dataloader=True)


def _bare_loop(workload: Workload, data: Data, dataloader: bool) -> dict[str, Any]:
    import torch

    model = hand_written_mlp(workload, data.n_features)
    X_train, y_train = torch.from_numpy(data.X_train), torch_targets(workload, data.y_train)
    X_test, y_test = torch.from_numpy(data.X_test), torch_targets(workload, data.y_test)
    loss_fn, correct = loss_and_correct(workload)
    optimizer = torch_optimizer(workload, model.parameters())
    n, n_test = len(X_train), len(X_test)
    size = workload.batch_size or n
    generator = torch.Generator().manual_seed(workload.seed)
    loader = None
    if dataloader:
        from torch.utils.data import DataLoader, TensorDataset

        loader = DataLoader(TensorDataset(X_train, y_train), batch_size=size, shuffle=True, generator=generator)
    history: list[list[float]] = []
    sink = open(os.devnull, "w")  # noqa: SIM115 - the prints cost what they cost, the terminal does not

    started = time.perf_counter()
    for epoch in range(1, workload.epochs + 1):
        model.train()
        if loader is not None:
            batches = iter(loader)
        elif size >= n:
            batches = iter([(X_train, y_train)])
        else:
            order = torch.randperm(n, generator=generator)
            batches = ((X_train[idx], y_train[idx]) for idx in order.split(size))
        loss_sum = torch.zeros(())
        correct_sum = torch.zeros((), dtype=torch.int64)
        for X, y in batches:
            logits = model(X)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct_sum += correct(logits.detach(), y)
        model.eval()
        with torch.inference_mode():
            test_logits = model(X_test)
            test_loss = loss_fn(test_logits, y_test)
            test_correct = correct(test_logits, y_test)
        row = torch.stack([loss_sum / n, correct_sum / n, test_loss, test_correct / n_test]).tolist()
        history.append(row)
        if epoch % workload.log_every == 0 or epoch == workload.epochs:
            print(f"Epoch: {epoch} | Loss: {row[0]:.5f}, Accuracy: {row[1]:.2%} | "
                  f"Test loss: {row[2]:.5f}, Test acc: {row[3]:.2%}", file=sink)
    seconds = time.perf_counter() - started
    sink.close()
    return {"seconds": seconds, "epochs": len(history), "test_acc": history[-1][3], "test_loss": history[-1][2],
            "train_loss": history[-1][0], "evaluations": len(history)}


# ----------------------------------------------------------------------------- clftrain
def _clftrain_trainer(workload: Workload, data: Data, eval_every: int | str, log_every: int | None = None):
    import torch

    from clftrain.config import validate_config
    from clftrain.data import Dataset
    from clftrain.training import build_trainer
    from clftrain.components import get_task

    config = validate_config(workload.clftrain_config(eval_every=eval_every, log_every=log_every))
    dataset = data.clftrain_dataset
    if dataset is None:  # arrays the benchmark read itself: hand them to clftrain's Trainer
        task = get_task(workload.task)
        given = dict(
            task=task, X_train=data.X_train, y_train=task.prepare_targets(data.y_train),
            X_test=data.X_test, y_test=task.prepare_targets(data.y_test),
            feature_names=[f"x{i + 1}" for i in range(data.n_features)],
            class_names=[str(c) for c in range(workload.n_classes)],
        )
        # Fields the loop does not read (preprocessing: none here) are left empty.
        fields = {f.name for f in dataclasses.fields(Dataset)}
        dataset = Dataset(**{name: given.get(name) for name in fields if name in given or _required(Dataset, name)})
    return config, build_trainer(config, dataset, torch.device("cpu"))


def _required(cls, name: str) -> bool:
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _clftrain(workload: Workload, data: Data, eval_every: int | str, log_every: int | None = None) -> dict[str, Any]:
    from rich.console import Console

    from clftrain.training import BestTracker, training_threads
    from clftrain.views import ConsoleProgress

    config, trainer = _clftrain_trainer(workload, data, eval_every, log_every)
    # What `clftrain fit` attaches that works in memory on every evaluated epoch.
    trainer.callbacks = [BestTracker("test_loss"), ConsoleProgress(Console(quiet=True, highlight=False))]
    started = time.perf_counter()
    with training_threads(config.threads, trainer) as threads:
        trainer.fit()
    seconds = time.perf_counter() - started
    last = trainer.history[-1]
    return {"seconds": seconds, "epochs": trainer.epoch, "test_acc": last["test_acc"], "test_loss": last["test_loss"],
            "train_loss": last["train_loss"], "evaluations": len(trainer.history),
            "eval_every": config.train.eval_every, "clftrain_threads": threads.report()}


@trainer("clftrain")
def clftrain_every_epoch(workload: Workload, data: Data) -> dict[str, Any]:
    return _clftrain(workload, data, eval_every=1)


@trainer("clftrain-arrays")
def clftrain_on_bench_arrays(workload: Workload, data: Data) -> dict[str, Any]:
    """clftrain's loop on the arrays the benchmark read (CSV workloads): the loop without clftrain's CSV reader."""
    return _clftrain(workload, data, eval_every=1)


@trainer("clftrain-default")
def clftrain_default_cadence(workload: Workload, data: Data) -> dict[str, Any]:
    return _clftrain(workload, data, eval_every="auto")


@trainer("clftrain-end")
def clftrain_end_only(workload: Workload, data: Data) -> dict[str, Any]:
    return _clftrain(workload, data, eval_every=workload.epochs, log_every=workload.epochs)


@trainer("clftrain-fit")
def clftrain_fit(workload: Workload, data: Data) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    from clftrain.config import validate_config
    from clftrain.runs import fit_run

    config = validate_config(workload.clftrain_config(eval_every=1))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = fit_run(config, out=Path(tmp) / "run")
        total = time.perf_counter() - started
    final = result.summary["final"]
    return {"seconds": result.summary["seconds"], "total_seconds": total, "epochs": result.summary["epochs_run"],
            "test_acc": final["test_acc"], "test_loss": final["test_loss"], "train_loss": final["train_loss"]}


# ----------------------------------------------------------------------------- scikit-learn
@trainer("sklearn")
def sklearn_mlp(workload: Workload, data: Data) -> dict[str, Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    # clftrain's initial weights, as sklearn lays them out: coefs_[i] is [fan_in, fan_out].
    linears = [m for m in hand_written_mlp(workload, data.n_features) if hasattr(m, "weight")]
    initial = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]

    class SharedInitMLP(MLPClassifier):
        def _init_coef(self, fan_in, fan_out, dtype):
            coef, intercept = initial.pop(0)
            assert coef.shape == (fan_in, fan_out), (coef.shape, fan_in, fan_out)
            return coef.astype(dtype), intercept.astype(dtype)

    clf = SharedInitMLP(
        hidden_layer_sizes=workload.layers, activation="relu", solver=workload.optimizer, alpha=0.0,
        batch_size=workload.batch_size or len(data.X_train), learning_rate="constant",
        learning_rate_init=workload.lr, momentum=0.0, nesterovs_momentum=False, max_iter=workload.epochs,
        shuffle=True, random_state=workload.seed, early_stopping=False, tol=0.0,
        n_iter_no_change=workload.epochs + 1,  # never stop before max_iter
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        clf.fit(data.X_train, data.y_train)
        seconds = time.perf_counter() - started
    from threadpoolctl import threadpool_info

    blas = [{k: info.get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    return {"seconds": seconds, "epochs": clf.n_iter_, "test_acc": float(clf.score(data.X_test, data.y_test)),
            "train_loss": float(clf.loss_), "evaluations": 0, "shared_init": not initial,
            "dtype": str(clf.coefs_[0].dtype), "blas": blas,
            "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}


# ----------------------------------------------------------------------------- Lightning
@trainer("lightning")
def lightning_trainer(workload: Workload, data: Data) -> dict[str, Any]:
    return _lightning(workload, data, tutorial_loaders=False)


@trainer("lightning-dataloader")
def lightning_tutorial_loaders(workload: Workload, data: Data) -> dict[str, Any]:
    return _lightning(workload, data, tutorial_loaders=True)


def _lightning(workload: Workload, data: Data, tutorial_loaders: bool) -> dict[str, Any]:
    L = lightning_module()
    if L is None:
        return {"skipped": "not installed"}
    import logging

    import torch
    from torch.utils.data import DataLoader, IterableDataset

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "GPU available: False ..." banners
    warnings.filterwarnings("ignore", module=r"(lightning|pytorch_lightning|lightning_fabric)(\.|$)")
    warnings.filterwarnings("ignore", message=r".*(num_workers|does not have many workers).*")

    loss_fn, correct = loss_and_correct(workload)

    class Batches(IterableDataset):
        """Pre-made batches of in-memory tensors: full batch, or a fresh randperm sliced per epoch."""

        def __init__(self, X, y, size: int | None, shuffle: bool):
            self.X, self.y, self.size, self.shuffle = X, y, size or len(X), shuffle
            self.generator = torch.Generator().manual_seed(workload.seed)

        def __len__(self):
            return -(-len(self.X) // self.size)

        def __iter__(self):
            if self.size >= len(self.X):
                yield self.X, self.y
                return
            order = torch.randperm(len(self.X), generator=self.generator) if self.shuffle else torch.arange(len(self.X))
            for idx in order.split(self.size):
                yield self.X[idx], self.y[idx]

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = hand_written_mlp(workload, data.n_features)
            self.history: list[list[float]] = []

        def on_train_epoch_start(self):
            self.sums = [torch.zeros(()), torch.zeros((), dtype=torch.int64)]

        def training_step(self, batch, batch_idx):
            X, y = batch
            logits = self.model(X)
            loss = loss_fn(logits, y)
            self.sums[0] += loss.detach() * len(y)
            self.sums[1] += correct(logits.detach(), y)
            return loss

        def on_validation_epoch_start(self):
            self.val_sums = [torch.zeros(()), torch.zeros((), dtype=torch.int64)]

        def validation_step(self, batch, batch_idx):
            X, y = batch
            logits = self.model(X)
            self.val_sums[0] += loss_fn(logits, y) * len(y)
            self.val_sums[1] += correct(logits, y)

        def on_validation_epoch_end(self):
            n, n_test = len(data.X_train), len(data.X_test)
            train = getattr(self, "sums", [torch.zeros(()), torch.zeros(())])
            self.history.append(torch.stack([train[0] / n, train[1] / n, self.val_sums[0] / n_test,
                                             self.val_sums[1] / n_test]).tolist())

        def configure_optimizers(self):
            return torch_optimizer(workload, self.parameters())

    module = Classifier()
    X_train, y_train = torch.from_numpy(data.X_train), torch_targets(workload, data.y_train)
    X_test, y_test = torch.from_numpy(data.X_test), torch_targets(workload, data.y_test)
    if tutorial_loaders:  # the tutorial way: a TensorDataset, batches collated sample by sample
        from torch.utils.data import TensorDataset

        train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=workload.batch_size or len(X_train),
                                  shuffle=True, generator=torch.Generator().manual_seed(workload.seed))
        val_loader = DataLoader(TensorDataset(X_test, y_test), batch_size=len(X_test))
    else:
        train_loader = DataLoader(Batches(X_train, y_train, workload.batch_size, shuffle=True), batch_size=None)
        # Test evaluation in one batch per epoch, as the other trainers do it.
        val_loader = DataLoader(Batches(X_test, y_test, None, shuffle=False), batch_size=None)
    fit_trainer = L.Trainer(
        max_epochs=workload.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, check_val_every_n_epoch=1,
    )
    started = time.perf_counter()
    fit_trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - started
    last = module.history[-1]
    return {"seconds": seconds, "epochs": fit_trainer.current_epoch, "test_acc": last[3], "test_loss": last[2],
            "train_loss": last[0], "evaluations": len(module.history), "version": L.__version__}
