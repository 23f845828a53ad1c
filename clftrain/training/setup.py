"""Everything a run needs, built from its Config: device, data splits on the device, model, loss, optimizer,
scheduler and the metric decisions watch, for one seed (`setup_single`) or a group of replica runs
(`setup_group`).

Every user error the set-up can raise (data, device, batch size, monitor) is raised here, before a
run directory exists, so a bad config leaves nothing behind. The one-seed and many-seed runners
(runs/single.py, runs/seeds.py) both start here and never import each other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch

from clftrain import memory
from clftrain.components.losses import LOSSES, expects_probabilities
from clftrain.components.optimizers import build_optimizer
from clftrain.components.presets import fit_preset_to_data
from clftrain.components.schedulers import SCHEDULERS
from clftrain.config import Config, TrainConfig, validate_config
from clftrain.data import Dataset, build_dataset
from clftrain.errors import UserError, did_you_mean
from clftrain.training import distributed
from clftrain.training.callbacks import BestTracker, EarlyStopping
from clftrain.training.device import resolve_device
from clftrain.training.loop import Split
from clftrain.training.model import EVAL_ROWS, build_model
from clftrain.training.replica_decisions import ReplicaBest, ReplicaStopping
from clftrain.training.replica_trainer import FrozenReplicas, Member, ReplicaRates, ReplicaTrainer
from clftrain.training.replicas import ReplicaLoss, StackedMLP
from clftrain.training.seed_spread import SeedSpread, check_spread, seed_slice
from clftrain.training.stream_trainer import StreamSplit, StreamTrainer
from clftrain.training.trainer import Trainer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------- pieces every run shares
def resolve_task(config: Config, dataset: Dataset) -> Config:
    """`task: auto` on data only the file could tell (CSV): the config with task and loss resolved (and a preset's
    batch size fitted to the training rows)."""
    fit_preset_to_data(config, dataset.rows("train"))
    if config.task != "auto":
        return config
    resolved = validate_config({**config.to_dict(), "task": dataset.task.name}, source="config")
    resolved._validation_carved = config._validation_carved
    return resolved


def check_batch_size(config: Config, dataset: Dataset) -> None:
    size, rows = config.train.batch_size, dataset.rows("train")
    if size is not None and size > rows:
        raise UserError(
            f"train.batch_size = {size} is larger than the {rows} training rows; "
            "use batch_size: null for full-batch training, or a smaller size"
        )
    buffer = getattr(config.dataset, "shuffle_buffer", 0)
    if dataset.stream is not None and rows > buffer and (size is None or size > buffer):
        raise UserError(
            f"train.batch_size = {size}: a streamed table's {rows:,} training rows do not fit in "
            f"dataset.shuffle_buffer ({buffer:,} rows), so a mini-batch must: set train.batch_size to at most "
            f"{buffer:,} (or raise dataset.shuffle_buffer, or dataset.stream: false to hold the table in memory)")


def metric_columns(task_metric: str, has_val: bool) -> list[str]:
    """The metrics.csv columns a monitor can name."""
    splits = ["train", "val", "test"] if has_val else ["train", "test"]
    return [f"{split}_{quantity}" for split in splits for quantity in ("loss", task_metric)]


def decision_monitor(config: Config, dataset: Dataset) -> str | None:
    """The metrics.csv column the best checkpoint, early stopping and a plateau schedule watch: the config's
    early_stopping.monitor, else the validation loss; None without a validation split (the test split never
    decides: such a run keeps no best checkpoint)."""
    has_val = dataset.rows("val") > 0
    es = config.train.early_stopping
    monitor = es.monitor if es else ("val_loss" if has_val else None)
    if monitor is None:
        return None
    columns = [c for c in metric_columns(dataset.task.metric, has_val) if not c.startswith("test_")]
    if monitor not in columns:
        raise UserError(
            f"train.early_stopping.monitor = '{monitor}' is not a recorded metric"
            f"{did_you_mean(monitor, columns)}; choose one of: {', '.join(columns)}"
        )
    return monitor


def device_splits(dataset: Dataset, device: torch.device, shuffle_buffer: int = 0,
                  world: distributed.World | None = None) -> dict[str, Split]:
    """The dataset's splits as tensors, moved to the device once, here: train, test and val if any. A streamed
    table's splits are read a block at a time (StreamSplit; data-parallel, each rank its share of the blocks),
    but for training rows that fit in the shuffle buffer: read once (every rank all of them)."""
    def split(X, y):
        return Split(torch.as_tensor(X, device=device), torch.as_tensor(y, device=device))

    if dataset.stream is not None:
        share = dataset.stream.share(world.rank, world.size) if world is not None else None
        splits = {name: StreamSplit(dataset.stream, name, device, share) for name in dataset.stream.sizes}
        if dataset.rows("train") <= shuffle_buffer:
            parts = list(dataset.stream.split_batches("train"))
            splits["train"] = split(np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts]))
        return splits

    splits = {"train": split(dataset.X_train, dataset.y_train), "test": split(dataset.X_test, dataset.y_test)}
    if dataset.folds is not None:  # cross-validation: fold k's replica trains on the other folds, is scored on k
        held_out = [torch.as_tensor(rows, device=device) for rows in dataset.folds]
        every = torch.arange(len(dataset.X_train), device=device)
        splits["train"].folds = [every[~torch.isin(every, rows)] for rows in held_out]
        splits["val"] = Split(splits["train"].X, splits["train"].y, folds=held_out)
    if dataset.X_val is not None:
        splits["val"] = split(dataset.X_val, dataset.y_val)
    return splits


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig, n_train: int, mode: str):
    """(scheduler, when it steps) for train.scheduler, or (None, "epoch") without one."""
    cfg = train.scheduler
    if cfg is None:
        return None, "epoch"
    steps = -(-n_train // (train.batch_size or n_train))  # steps per epoch: ceil
    return SCHEDULERS.get(cfg.name)(optimizer, cfg, train.epochs, steps, mode)


# ---------------------------------------------------------------------- what it will need
# Per parameter: the weight, its gradient, the best-weights copy, and the optimizer's state (a momentum
# buffer; Adam's two moments), in float32.
_STATE_COPIES = {"adam": 2, "adamw": 2, "rmsprop": 2}


def check_memory(configs: list[Config], dataset: Dataset, device: torch.device) -> None:
    """Refuse (memory.require) a model and loop that would not fit, before building them."""
    config = configs[0]
    replicas = sum(len(c.seeds) if c.seeds is not None else 1 for c in configs)
    widths = [dataset.n_features, *config.model.layers, dataset.task.out_features(dataset.n_classes)]
    weights = sum((a + 1) * b for a, b in zip(widths, widths[1:])) * replicas
    optimizer = config.train.optimizer
    copies = 3 + _STATE_COPIES.get(optimizer, 1 if config.train.momentum > 0 else 0)
    hidden = sum(config.model.layers) + widths[-1]
    n_train = dataset.rows("train")
    step_rows = min(config.train.batch_size or n_train, n_train)
    eval_rows = min(EVAL_ROWS, max(dataset.rows("test"), dataset.rows("val")))
    terms = [
        memory.Term(f"the model's {weights:,} weights with their gradients, best copy and {optimizer} state",
                    4 * weights * copies, "shrink model.layers (or train fewer seeds at once)"),
        memory.Term(f"one training step's activations ({step_rows:,} rows x {hidden:,} units"
                    f"{f' x {replicas} replicas' if replicas > 1 else ''})", 4 * 4 * step_rows * hidden * replicas,
                    "set a smaller train.batch_size (or shrink model.layers)"),
        memory.Term(f"evaluating {eval_rows:,} rows at a time", 4 * 2 * eval_rows * hidden * replicas,
                    "shrink model.layers (or train fewer seeds at once)"),
    ]
    if dataset.stream is not None:
        buffer = min(n_train, config.dataset.shuffle_buffer)
        terms.append(memory.Term(f"the shuffle buffer ({buffer:,} rows x {dataset.n_features:,} features, twice)",
                                 2 * 4 * buffer * (dataset.n_features + 1), "lower dataset.shuffle_buffer"))
    elif device.type != "cpu":  # on the CPU the tensors share the dataset's arrays
        rows = n_train + dataset.rows("test") + dataset.rows("val")
        terms.append(memory.Term(f"the data on {device} ({rows:,} rows x {dataset.n_features:,} features)",
                                 4 * rows * (dataset.n_features + 1), "lower the data's rows or features"))
    memory.require(terms, "this machine" if device.type == "cpu" else str(device), device)


# ---------------------------------------------------------------------- the loss
def build_loss(cfg: TrainConfig, dataset: Dataset | None, device: torch.device,
               weights: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """The configured loss, with class weighting and label smoothing computed from the training targets only.

    `weights`: the loss's weight tensors as a checkpoint saved them (loss_weights); given, the
    training data is not needed (eval --data, on a run whose training file is gone)."""
    options = {}
    if cfg.label_smoothing:
        options["label_smoothing"] = cfg.label_smoothing
    if weights is not None:
        options.update({name: value.to(device) for name, value in weights.items()})
        return LOSSES.get(cfg.loss).build(**options)
    if cfg.class_weight == "balanced":
        options["weight"] = torch.as_tensor(_balanced_class_weights(dataset), dtype=torch.float32, device=device)
    if cfg.pos_weight is not None:
        options["pos_weight"] = torch.as_tensor(_pos_weight(cfg.pos_weight, dataset), device=device)
    return LOSSES.get(cfg.loss).build(**options)


def loss_weights(loss_fn: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weight tensors a built loss holds (class `weight`, `pos_weight`), on the CPU: what
    build_loss needs, with `weights=`, to rebuild it without the training data."""
    return {name: buffer.detach().cpu() for name, buffer in loss_fn.named_buffers()}


def needs_training_data(cfg: TrainConfig) -> bool:
    """Whether build_loss without saved weights has to read the training targets."""
    return cfg.class_weight is not None or cfg.pos_weight is not None


def _balanced_class_weights(dataset: Dataset) -> np.ndarray:
    """n_rows / (n_classes * count of the class) per class, from the training targets (scikit-learn's
    compute_class_weight('balanced'))."""
    from sklearn.utils.class_weight import compute_class_weight

    if dataset.stream is not None:  # the first pass counted the classes' training rows
        counts = dataset.stream.class_counts["train"].astype(np.float64)
        if (counts == 0).any():
            raise UserError("train.class_weight = 'balanced' needs every class in the training split; "
                            f"only {int((counts > 0).sum())} of {dataset.n_classes} are there")
        return counts.sum() / (len(counts) * counts)
    present = np.unique(dataset.y_train)
    if len(present) < dataset.n_classes:
        raise UserError("train.class_weight = 'balanced' needs every class in the training split; "
                        f"only {len(present)} of {dataset.n_classes} are there")
    return compute_class_weight("balanced", classes=np.arange(dataset.n_classes), y=dataset.y_train)


def _pos_weight(setting, dataset: Dataset) -> np.ndarray:
    """One weight per output column: given, or negatives / positives in training for `balanced`."""
    if dataset.stream is not None:  # the first pass counted the positives (labels) or the classes' rows
        counts, rows = dataset.stream.class_counts["train"], dataset.rows("train")
        positives = counts if dataset.task.target == "labels" else counts[-1:]
    else:
        Y = dataset.y_train.reshape(len(dataset.y_train), -1)
        positives, rows = Y.sum(axis=0), len(Y)
    if setting == "balanced":
        return np.where(positives > 0, (rows - positives) / np.maximum(positives, 1), 1.0).astype(np.float32)
    weights = np.atleast_1d(np.asarray(setting, dtype=np.float32))
    if len(weights) not in (1, len(positives)) or (weights <= 0).any():
        raise UserError(f"train.pos_weight = {setting!r}: give one positive number, or one per label "
                        f"({len(positives)} here)")
    return np.broadcast_to(weights, (len(positives),)).copy()


# ---------------------------------------------------------------------- one seed
def build_trainer(config: Config, dataset: Dataset, device: torch.device,
                  world: distributed.World | None = None) -> Trainer:
    """Model, loss, optimizer and device tensors, all from the registries the config names; data-parallel
    over `world`'s ranks when given."""
    task = dataset.task
    seed_everything(config.seed)  # initialisation depends on `seed` only
    model = build_model(config.model, dataset.n_features, task.out_features(dataset.n_classes), config.train.loss)
    model.to(device)
    streamed = dataset.stream is not None
    buffer = config.dataset.shuffle_buffer if streamed else 0
    trainer = (StreamTrainer if streamed else Trainer)(
        model=model, optimizer=build_optimizer(model.parameters(), config.train),
        loss_fn=build_loss(config.train, dataset, device), task=task, cfg=config.train,
        splits=device_splits(dataset, device, buffer, world),
        outputs_are_probabilities=expects_probabilities(config.train.loss), seed=config.seed, world=world,
    )
    trainer.shuffle_buffer = buffer
    return trainer


@dataclass
class SingleSetup:
    """One seed's run, ready to train: its config (task resolved), data, trainer and deciding callbacks."""

    config: Config
    dataset: Dataset
    trainer: Trainer
    device: torch.device
    best: BestTracker
    stopper: EarlyStopping | None


def setup_single(config: Config) -> SingleSetup:
    """Under torchrun (distributed.launched) the process joins the launch's group here, after every check that
    reads only the config and the data, so that such an error stops every rank alike before any collective."""
    device = distributed.rank_device(resolve_device(config.device))
    dataset = build_dataset(config)
    config = resolve_task(config, dataset)
    check_memory([config], dataset, device)
    monitor = decision_monitor(config, dataset)
    check_batch_size(config, dataset)
    world = None
    if distributed.launched() and dataset.stream is not None:
        check_stream_shares(dataset, distributed.world_size())
    if distributed.launched():
        distributed.check_world_batch(config.train.batch_size, dataset.rows("train"), distributed.world_size())
        world = distributed.join_world(device)
    trainer = build_trainer(config, dataset, device, world)
    es = config.train.early_stopping
    stopper = EarlyStopping(monitor, es.patience, es.min_delta, es.mode) if es else None
    best = BestTracker(monitor, es.mode if es else "auto", restore=es is not None and config.train.restore_best)
    steps_rows = len(trainer.splits["train"])
    if isinstance(trainer, StreamTrainer) and isinstance(trainer.splits["train"], StreamSplit):
        steps_rows = trainer.steps_per_epoch() * config.train.batch_size  # data-parallel: the largest share's steps
    trainer.scheduler, trainer.scheduler_interval = build_scheduler(trainer.optimizer, config.train, steps_rows,
                                                                    best.mode)
    trainer.scheduler_monitor = monitor
    return SingleSetup(config, dataset, trainer, device, best, stopper)


# ---------------------------------------------------------------------- a group of replica runs
@dataclass
class Group:
    """Configs of one shape (runs.sweep.shape_key) trained as one batched model, and what they share."""

    trainer: ReplicaTrainer
    dataset: Dataset
    device: torch.device
    config: Config  # the first member's, resolved, with every seed of the run (a spread run trains a slice of them)
    spread: SeedSpread | None = None  # seeds spread over a launch's ranks: this rank's exchange
    rows: slice = field(default_factory=lambda: slice(None))  # the run's replicas this process trains

    @property
    def members(self) -> list[Member]:
        return self.trainer.members

    def deciders(self) -> list:
        """Each member's per-replica best weights, then their early stopping (the order solo runs keep), then
        a spread run's exchange, which carries what they decided."""
        return [*(m.best for m in self.members), *(m.stopping for m in self.members if m.stopping is not None),
                *([self.spread] if self.spread is not None else [])]


def setup_group(configs: list[Config], dataset: Dataset | None = None, spread: bool = False) -> Group:
    """Data (built unless given: a sweep shares it between groups), stacked replicas, optimizers and loop;
    every user error is raised before anything is written. `spread` (one run with seeds under torchrun): the
    process joins the launch after those checks and trains its slice of the seeds (seed_spread.py)."""
    first = configs[0]
    device = distributed.rank_device(resolve_device(first.device))
    dataset = dataset or build_dataset(first)
    refuse_streamed(dataset)
    configs = [resolve_task(c, dataset) for c in configs]
    check_batch_size(first, dataset)
    check_memory(configs, dataset, device)
    whole, world, rows = configs[0], None, slice(None)
    if spread:
        if dataset.folds is not None:
            raise UserError("dataset.cv_folds trains its folds' replicas as one model in one process; run it "
                            "without torchrun (or --nproc), or spread a sweep of them: clftrain sweep --cv --nproc")
        check_spread(whole.seeds, distributed.world_size())
        world = distributed.join_world(device)
        rows = seed_slice(whole.seeds, world)
        configs = [whole.model_copy(update={"seeds": whole.seeds[rows]})]
    model = stack_replicas(configs, dataset, device)
    members, first_replica = [], 0
    for part, config in enumerate(configs):
        members.append(_member(config, part, first_replica, model, decision_monitor(config, dataset),
                               dataset.rows("train"), device))
        first_replica += len(config.seeds)
    trainer = ReplicaTrainer(
        model=model, members=members, task=dataset.task, cfg=configs[0].train, splits=device_splits(dataset, device),
        loss=ReplicaLoss(configs[0].train.loss, build_loss(configs[0].train, dataset, device)),
        outputs_are_probabilities=expects_probabilities(configs[0].train.loss), world=world,
        # cross-validation: replica k of every run holds out fold k (each run lists one seed per fold)
        replica_folds=None if dataset.folds is None else [k for c in configs for k in range(len(c.seeds))],
    )
    group = Group(trainer, dataset, device, whole, rows=rows)
    if world is not None:
        train = whole.train
        group.spread = SeedSpread(members[0], world, whole.seeds, train.log_every, train.checkpoint_seconds)
    return group


def check_data(config: Config) -> tuple[Config, Dataset]:
    """Every check fit makes before training (the data and its columns, the task, the device, the batch size,
    the monitor, the memory), without building a model: `clftrain validate --data`."""
    device = resolve_device(config.device)
    dataset = build_dataset(config)
    config = resolve_task(config, dataset)
    check_batch_size(config, dataset)
    decision_monitor(config, dataset)
    check_memory([config], dataset, device)
    return config, dataset


def check_stream_shares(dataset: Dataset, ranks: int) -> None:
    """Data-parallel, every rank reads its share of a streamed table's blocks: each share needs training rows
    (every rank computes the same shares: this fails alike on every rank, before any collective)."""
    table = dataset.stream
    if len(table.blocks) < ranks:
        raise UserError(f"{table.source} was read in {len(table.blocks)} block(s), fewer than the {ranks} processes "
                        "that would each read a share of them; use fewer processes, or dataset.stream: false")
    empty = [r for r in range(ranks) if table.split_rows("train", table.share(r, ranks)) == 0]
    if empty:
        raise UserError(f"the share of {table.source}'s blocks of process(es) {empty} holds no training rows; use "
                        "fewer processes, or dataset.stream: false")


def refuse_streamed(dataset: Dataset) -> None:
    """Replicas (seeds, a sweep's batches) train on tensors in memory: a streamed table is refused."""
    if dataset.stream is not None:
        raise UserError("a streamed table (dataset.stream) trains one run, one seed, in one process for now: seeds "
                        "and sweeps need it in memory; set dataset.stream: false (or raise dataset.memory_limit)")


def check_group(configs: list[Config], dataset: Dataset) -> None:
    """The user errors setup_group would raise for these configs, without building anything."""
    refuse_streamed(dataset)
    resolve_device(configs[0].device)
    fit_preset_to_data(configs[0], dataset.rows("train"))
    check_batch_size(configs[0], dataset)


def stack_replicas(configs: list[Config], dataset: Dataset, device: torch.device) -> StackedMLP:
    """Each replica initialised exactly as build_trainer initialises a solo run of its seed."""
    out_features = dataset.task.out_features(dataset.n_classes)
    models, rng_states = [], []
    for config in configs:
        for seed in config.seeds:
            seed_everything(seed)
            models.append(build_model(config.model, dataset.n_features, out_features, config.train.loss))
            rng_states.append((seed, torch.get_rng_state()))  # where the solo run's dropout draws begin
    model = StackedMLP(models, [len(c.seeds) for c in configs]).to(device)
    if model.has_dropout:
        model.dropout_generators = [_dropout_generator(seed, state, device) for seed, state in rng_states]
    return model


def _dropout_generator(seed: int, cpu_state: torch.Tensor, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    if device.type == "cpu":
        generator.set_state(cpu_state)
    else:  # other devices draw dropout their own way: an independent stream per replica
        generator.manual_seed(seed)
    return generator


def _member(config: Config, part: int, first: int, model: StackedMLP, monitor: str, n_train: int,
            device: torch.device) -> Member:
    """One run of a group: its optimizer over its part of the stacked model, its replicas' generators, and its
    per-replica decisions (best weights, early stopping, a plateau schedule), as setup_single makes them."""
    train, replicas = config.train, len(config.seeds)
    optimizer = build_optimizer(model.part_parameters(part), train)
    member = Member(config, part, first, optimizer,
                    generators=[torch.Generator(device=device).manual_seed(seed) for seed in config.seeds],
                    frozen=FrozenReplicas(model, part, optimizer))
    es = train.early_stopping
    member.best = ReplicaBest(member, monitor, es.mode if es else "auto", restore=es is not None and train.restore_best)
    if es is not None:
        member.stopping = ReplicaStopping(member, monitor, es.patience, es.min_delta, es.mode)
    schedule = build_scheduler(optimizer, train, n_train, member.best.mode)
    if schedule[1] == "metric":  # each replica on its own metric: its own rate (the optimizer keeps train.lr)
        member.rates = ReplicaRates(lambda stand_in: build_scheduler(stand_in, train, n_train, member.best.mode)[0],
                                    train.lr, replicas)
    else:
        member.scheduler, member.scheduler_interval = schedule
    return member
