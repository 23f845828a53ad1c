"""The experiment config: pydantic models, YAML loading, `--set` overrides, error messages.

Validation happens once, here, at the edge; the rest of the code receives typed
sub-configs. Importing this module must not import torch (see tests/test_imports.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel, ConfigDict, Field, FiniteFloat, ValidationError, ValidationInfo, WrapValidator, field_validator,
    model_validator,
)

from clftrain.activations import ACTIVATIONS
from clftrain.inits import INITS
from clftrain.errors import UserError, did_you_mean
from clftrain.losses import LOSSES
from clftrain.optimizers import OPTIMIZERS, USES_MOMENTUM
from clftrain.tasks import TASKS

# `--seeds` ranges stop here: a typo such as 0-10000000 must not allocate ten million replicas.
MAX_SEEDS = 4096
TaskName = Literal["auto", "binary", "multiclass", "multilabel", "regression"]


def _auto_or_count(value: Any, handler) -> Any:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ValueError("expected auto or a whole number >= 1")  # one message instead of one per union member


AutoOrCount = Annotated[Union[Literal["auto"], Annotated[int, Field(ge=1)]], WrapValidator(_auto_or_count)]


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo must never silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- dataset
class _DatasetBase(StrictModel):
    test_size: float = Field(0.2, gt=0, lt=1, description="Fraction held out for testing.")
    val_size: float = Field(0.0, ge=0, lt=1, description="Fraction held out for validation.")
    seed: int = Field(42, description="Seeds the data generator and the train/test split.")
    standardize: bool = Field(False, description="Scale features to zero mean, unit variance (fitted on train).")

    @model_validator(mode="after")
    def _splits_leave_training_data(self):
        if self.test_size + self.val_size >= 1:
            raise ValueError(
                f"dataset.test_size + dataset.val_size = {self.test_size + self.val_size:g} "
                "leaves no training data; make their sum less than 1"
            )
        return self

    def task_hint(self) -> str | None:
        """The task the generated targets imply (None: only known once the data is read)."""
        return None


class _GeneratedBase(_DatasetBase):
    n_samples: int = Field(1000, ge=2, description="Number of samples in total (train + val + test).")

    def class_count(self) -> int | None:
        """How many classes the generator draws (None: fixed by the generator, or not classes)."""
        return None

    @model_validator(mode="after")
    def _enough_samples(self):
        classes = self.class_count()
        if classes and self.n_samples < 2 * classes:
            raise ValueError(
                f"dataset.n_samples = {self.n_samples} is too few for {classes} classes; use at least {2 * classes}"
            )
        return self

    def task_hint(self):
        classes = self.class_count()
        return _classes_task(classes) if classes else None


def _classes_task(n_classes: int) -> str:
    return "binary" if n_classes == 2 else "multiclass"


class CirclesConfig(_GeneratedBase):
    """sklearn.datasets.make_circles: a small circle inside a large one."""

    name: Literal["circles"]
    noise: float = Field(0.03, ge=0, description="Std of Gaussian noise added to the points.")
    factor: float = Field(0.8, gt=0, lt=1, description="Inner circle radius / outer circle radius.")

    def task_hint(self):
        return "binary"


class MoonsConfig(_GeneratedBase):
    """sklearn.datasets.make_moons: two interleaving half circles."""

    name: Literal["moons"]
    noise: float = Field(0.03, ge=0, description="Std of Gaussian noise added to the points.")

    def task_hint(self):
        return "binary"


class BlobsConfig(_GeneratedBase):
    """sklearn.datasets.make_blobs: Gaussian clusters, one class per cluster."""

    name: Literal["blobs"]
    centers: int = Field(4, ge=2, description="Number of clusters (= classes).")
    cluster_std: float = Field(1.0, gt=0, description="Std of each cluster.")
    n_features: int = Field(2, ge=1, description="Dimensions of each point.")

    def class_count(self):
        return self.centers


class SpiralsConfig(_GeneratedBase):
    """The CS231n spiral generator: `n_classes` interleaved spiral arms, n_samples in total."""

    name: Literal["spirals"]
    n_classes: int = Field(3, ge=2, description="Number of spiral arms (= classes).")
    noise: float = Field(0.2, ge=0, description="Std of the Gaussian noise on each point's angle.")

    def class_count(self):
        return self.n_classes


class ClassificationConfig(_GeneratedBase):
    """sklearn.datasets.make_classification: informative features around hypercube vertices."""

    name: Literal["classification"]
    n_features: int = Field(2, ge=1, description="Number of features.")
    n_informative: int = Field(2, ge=1, description="Features that carry the signal.")
    n_redundant: int = Field(0, ge=0, description="Linear combinations of the informative features.")
    n_classes: int = Field(2, ge=2, description="Number of classes.")
    n_clusters_per_class: int = Field(1, ge=1, description="Gaussian clusters per class.")
    class_sep: float = Field(1.0, gt=0, description="How far apart the classes are.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.n_informative + self.n_redundant > self.n_features:
            raise ValueError(
                f"dataset.n_informative + dataset.n_redundant = {self.n_informative + self.n_redundant} "
                f"exceeds dataset.n_features = {self.n_features}; raise n_features"
            )
        if self.n_classes * self.n_clusters_per_class > 2**self.n_informative:
            raise ValueError(
                f"dataset.n_classes * n_clusters_per_class = {self.n_classes * self.n_clusters_per_class} "
                f"needs at least that many hypercube vertices (2**n_informative = {2**self.n_informative}); "
                "raise n_informative"
            )
        return self

    def class_count(self):
        return self.n_classes


class LinearConfig(_GeneratedBase):
    """The straight-line sanity check: y = weight * x + bias, x evenly spaced in [0, 1)."""

    name: Literal["linear"]
    n_samples: int = Field(50, ge=5, description="Points on the line (the tutorial: 0 to 1 in steps of 0.02).")
    weight: float = Field(0.7, description="Slope of the line.")
    bias: float = Field(0.3, description="Intercept of the line.")
    noise: float = Field(0.0, ge=0, description="Std of Gaussian noise added to y.")

    def task_hint(self):
        return "regression"


class MultilabelConfig(_GeneratedBase):
    """sklearn.datasets.make_multilabel_classification: each sample carries several labels."""

    name: Literal["multilabel"]
    n_features: int = Field(10, ge=1, description="Number of features.")
    n_classes: int = Field(5, ge=2, description="Number of labels (one sigmoid output each).")
    n_labels: int = Field(2, ge=1, description="Average number of labels per sample.")

    def task_hint(self):
        return "multilabel"


class _BundledConfig(_DatasetBase):
    """A real dataset that ships with scikit-learn (no download)."""

    standardize: bool = Field(True, description="Scale features to zero mean, unit variance (fitted on train).")

    def task_hint(self):
        return {"breast_cancer": "binary"}.get(self.name, "multiclass")


class IrisConfig(_BundledConfig):
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""

    name: Literal["iris"]


class WineConfig(_BundledConfig):
    """UCI wine: 178 wines, 13 chemical measurements, 3 cultivars."""

    name: Literal["wine"]


class BreastCancerConfig(_BundledConfig):
    """Wisconsin breast cancer: 569 tumours, 30 features, malignant or benign."""

    name: Literal["breast_cancer"]


class DigitsConfig(_BundledConfig):
    """8x8 handwritten digits: 1,797 images, 64 pixel features, 10 classes."""

    name: Literal["digits"]


class CsvConfig(_DatasetBase):
    """Your own table: a header row naming the columns, then one row per sample."""

    name: Literal["csv"]
    path: str = Field(description="The CSV file; a relative path is relative to the config file.")
    target: Union[str, Annotated[list[str], Field(min_length=1)]] = Field(
        description="The label column; a list of 0/1 columns makes a multi-label task.")
    features: list[str] | None = Field(None, description="Input columns (default: every other column).")
    categorical: Union[Literal["auto"], list[str]] = Field(
        default_factory=list, description="Columns to one-hot encode; auto: every non-numeric input column.")
    impute: Literal["mean", "median", "most_frequent"] | None = Field(
        None, description="Fill missing values (fitted on training rows; categories take the most frequent); "
        "null: missing values are an error.")
    standardize: bool = Field(True, description="Scale numeric features to zero mean, unit variance (fitted on train).")

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, path: str, info: ValidationInfo) -> str:
        context = info.context or {}
        base = context.get("base_dir")
        resolved = Path(path).expanduser()
        if not resolved.is_absolute() and base is not None:
            resolved = Path(base) / resolved
        if context.get("check_files", True) and not resolved.is_file():
            where = f" (looked for {resolved})" if str(resolved) != path else ""
            raise ValueError(f"CSV file not found{where}; the path is relative to the config file")
        return str(resolved.resolve())


_DATASET_CLASSES = (
    CirclesConfig, MoonsConfig, BlobsConfig, SpiralsConfig, ClassificationConfig, LinearConfig,
    MultilabelConfig, IrisConfig, WineConfig, BreastCancerConfig, DigitsConfig, CsvConfig,
)
DATASET_NAMES = [cls.model_fields["name"].annotation.__args__[0] for cls in _DATASET_CLASSES]
DatasetConfig = Annotated[Union[_DATASET_CLASSES], Field(discriminator="name")]


# --------------------------------------------------------------------------- model
class ModelConfig(StrictModel):
    layers: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [10, 10],
        description="Hidden layer widths; [] is logistic/softmax regression.",
    )
    activation: str = Field("relu", description=f"One of: {', '.join(ACTIVATIONS)}.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout probability after each hidden layer.")
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear layer.")
    init: str = Field("default", description=f"Weight initialisation: {', '.join(INITS)}.")

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, name: str) -> str:
        return _registered(ACTIVATIONS, name)

    @field_validator("init")
    @classmethod
    def _known_init(cls, name: str) -> str:
        return _registered(INITS, name)


def _registered(registry, name: str) -> str:
    if name not in registry:
        raise ValueError(registry.unknown_message(name))
    return name


# --------------------------------------------------------------------------- training
class EarlyStoppingConfig(StrictModel):
    monitor: str = Field("test_loss", description="A metrics.csv column, e.g. test_loss or test_acc.")
    patience: int = Field(50, ge=1, description="Epochs without improvement before stopping.")
    min_delta: float = Field(0.0, ge=0, description="Smallest change that counts as an improvement.")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for *_acc, min otherwise.")


class SchedulerConfig(StrictModel):
    """Learning-rate schedule; each name uses the keys listed in its description."""

    name: Literal["step", "cosine", "plateau", "onecycle"] = Field(
        description="step: x gamma every step_size epochs; cosine: anneal to min_lr over the epochs; "
        "plateau: x factor after patience evaluations without improvement of the monitored metric; "
        "onecycle: warm up to max_lr, then anneal, per batch."
    )
    step_size: int = Field(100, ge=1, description="step: epochs between decays.")
    gamma: float = Field(0.5, gt=0, le=1, description="step: decay factor.")
    min_lr: float = Field(0.0, ge=0, description="cosine, plateau: lowest learning rate.")
    factor: float = Field(0.5, gt=0, lt=1, description="plateau: decay factor.")
    patience: int = Field(10, ge=0, description="plateau: evaluations without improvement before decaying.")
    max_lr: FiniteFloat | None = Field(None, gt=0, description="onecycle: peak learning rate (default 10 x lr).")


class TrainConfig(StrictModel):
    loss: str = Field("auto", description=f"auto (the task's default) or one of: {', '.join(LOSSES)}.")
    optimizer: str = Field("sgd", description=f"One of: {', '.join(OPTIMIZERS)}.")
    lr: FiniteFloat = Field(0.1, gt=0, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, description="Momentum (sgd, rmsprop).")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd, needs momentum > 0).")
    weight_decay: FiniteFloat = Field(0.0, ge=0, description="L2 penalty.")
    grad_clip: FiniteFloat | None = Field(None, gt=0, description="Clip the gradients' total norm to this value.")
    epochs: int = Field(1000, ge=1, description="Passes over the training data.")
    batch_size: int | None = Field(None, ge=1, description="null: full batch (one step per epoch).")
    log_every: int = Field(100, ge=1, description="Print a progress row every this many epochs.")
    eval_every: AutoOrCount = Field(
        "auto", description="Evaluate and record a metrics.csv row every this many epochs (and on every logged "
        "epoch and the last). auto: about 100 rows per run (every epoch with early_stopping or a plateau "
        "scheduler, which act on each evaluation); the resolved number is written to the run's config.yaml.")
    early_stopping: EarlyStoppingConfig | None = Field(None, description="null: train all epochs.")
    scheduler: SchedulerConfig | None = Field(None, description="null: constant learning rate.")
    class_weight: Literal["balanced"] | None = Field(
        None, description="cross_entropy: weight classes inversely to their frequency in training.")
    pos_weight: Union[Literal["balanced"], FiniteFloat, list[FiniteFloat], None] = Field(
        None, description="bce_with_logits: weight of positive examples (per label for multilabel); "
        "balanced: negatives / positives in training.")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross_entropy: label smoothing.")

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        return name if name == "auto" else _registered(LOSSES, name)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        return _registered(OPTIMIZERS, name)

    @model_validator(mode="after")
    def _momentum_fits_optimizer(self):
        if self.momentum > 0 and self.optimizer not in USES_MOMENTUM:
            raise ValueError(
                f"train.momentum = {self.momentum:g} is not used by optimizer '{self.optimizer}'; "
                f"remove it or use one of: {', '.join(sorted(USES_MOMENTUM))}"
            )
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("train.nesterov needs optimizer 'sgd' and train.momentum > 0")
        return self

    @model_validator(mode="after")
    def _resolve_eval_every(self):
        if self.eval_every == "auto":
            self.eval_every = auto_eval_every(self)
        return self

    def evaluates(self, epoch: int) -> bool:
        """Whether `epoch` is evaluated: every eval_every epochs, every logged epoch and the last."""
        return epoch % self.eval_every == 0 or epoch % self.log_every == 0 or epoch == self.epochs

    @model_validator(mode="after")
    def _loss_options_fit_loss(self):
        for key, value, losses in (("class_weight", self.class_weight, {"cross_entropy", "auto"}),
                                   ("label_smoothing", self.label_smoothing, {"cross_entropy", "auto"}),
                                   ("pos_weight", self.pos_weight, {"bce_with_logits", "auto"})):
            if value and self.loss not in losses:
                allowed = next(iter(losses - {"auto"}))
                raise ValueError(f"train.{key} = {value!r} needs train.loss '{allowed}', not '{self.loss}'")
        if isinstance(self.pos_weight, (int, float)) and self.pos_weight <= 0:
            raise ValueError(f"train.pos_weight = {self.pos_weight:g} must be greater than 0")
        return self


# About this many evaluated epochs per run by default: smooth curves and a well-chosen best.pt,
# without paying a test pass (and a host sync) on every one of 1,000 tiny epochs.
EVALUATIONS_PER_RUN = 100


def auto_eval_every(train: TrainConfig) -> int:
    """The largest divisor of log_every that leaves at least EVALUATIONS_PER_RUN evaluated epochs
    (a divisor, so that every logged epoch is also a regular evaluation)."""
    if train.early_stopping is not None or (train.scheduler is not None and train.scheduler.name == "plateau"):
        return 1  # both act on every evaluation: judge every epoch, as Keras and Lightning do
    most = max(1, train.epochs // EVALUATIONS_PER_RUN)
    return max(d for d in range(1, min(most, train.log_every) + 1) if train.log_every % d == 0)


# --------------------------------------------------------------------------- experiment
class Config(StrictModel):
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Used in the run directory's name.")
    seed: int = Field(42, description="Seeds weight initialisation and mini-batch shuffling.")
    seeds: Annotated[list[int], Field(min_length=1)] | None = Field(
        None, description="Train one replica per seed (instead of `seed`), all together as one batched model; "
        "null: one run seeded by `seed`.")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="auto | cpu | cuda | cuda:N | mps.")
    threads: AutoOrCount = Field(
        "auto", description="CPU threads torch trains with. auto: 1 for small models on the CPU (faster, and "
        "far faster on a busy machine), torch's default otherwise or when OMP_NUM_THREADS is set.")
    task: TaskName = Field("auto", description="auto infers it from the dataset.")
    dataset: DatasetConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _resolve_task_and_loss(self):
        hint = self.dataset.task_hint()
        if self.task == "auto":
            self.task = hint or "auto"
        elif hint and self.task != hint and {self.task, hint} != {"binary", "multiclass"}:
            raise ValueError(
                f"task = '{self.task}' does not fit dataset '{self.dataset.name}' "
                f"(its targets make a {hint} task); use task: auto or {hint}"
            )
        if self.task != "auto":
            task = TASKS.get(self.task)
            if self.train.loss == "auto":
                self.train.loss = task.losses[0]
            elif self.train.loss not in task.losses:
                raise ValueError(
                    f"train.loss = '{self.train.loss}' does not fit the {self.task} task; "
                    f"use one of: {', '.join(task.losses)}"
                )
            self.train._loss_options_fit_loss()  # now that `auto` is resolved
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds_once_each(cls, seeds: list[int] | None) -> list[int] | None:
        repeated = sorted({seed for seed in seeds or [] if seeds.count(seed) > 1})
        if repeated:
            raise ValueError(f"seed(s) {', '.join(map(str, repeated))} listed more than once; "
                             "each seed trains one replica: list it once")
        return seeds

    @model_validator(mode="after")
    def _seeds_train_together(self):
        # Replicas share one loop and one learning rate per run: what needs a replica to stop or
        # slow down on its own metric cannot be batched (see multiseed.py).
        if self.seeds is None:
            return self
        if self.train.early_stopping is not None:
            raise ValueError(
                "train.early_stopping cannot be used with seeds: the replicas train as one batched model and "
                "cannot stop one by one; remove early_stopping, or remove seeds and train one seed per run")
        if self.train.scheduler is not None and self.train.scheduler.name == "plateau":
            raise ValueError(
                "train.scheduler 'plateau' cannot be used with seeds: it lowers the learning rate on one run's "
                "metric, and the replicas share theirs; use step, cosine or onecycle, or remove seeds")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML loading that rejects duplicate keys (PyYAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"config path is a directory, not a YAML file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise UserError(f"invalid YAML in {path}: {exc}\nfix the YAML syntax at the position shown") from None


def parse_value(text: str) -> Any:
    """A value as YAML reads it (`0.1`, `[8, 8]`, `relu`, `null`); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["train.lr=0.01", "model.layers=[8,8]"]` -> {"train.lr": 0.01, "model.layers": [8, 8]}."""
    overrides = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            raise UserError(f"--set '{item}': expected KEY=VALUE with a dotted key, e.g. --set train.lr=0.01")
        try:
            overrides[key] = yaml.load(raw, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise UserError(f"--set '{item}': the value is not valid YAML: {exc}") from None
    return overrides


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0-4` -> [0, 1, 2, 3, 4]; also `0,3,7` and `0-2,10-12` (ranges include both ends)."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise UserError(f"--seeds '{text}': expected seeds and ranges like 0-4, 0,3,7 or 0-2,10-12 "
                            "(non-negative, each range low-high)")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if len(seeds) + high - low >= MAX_SEEDS:
            raise UserError(f"--seeds '{text}': more than {MAX_SEEDS} seeds; train fewer replicas at once")
        seeds.extend(range(low, high + 1))
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise UserError(f"--seeds '{text}': seed(s) {', '.join(map(str, repeated))} listed more than once")
    return seeds


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set each dotted key in a copy of the raw config; unknown keys are caught by validation."""
    import copy

    data = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                parent = ".".join(parts[: depth + 1])
                raise UserError(f"--set {dotted}: '{parent}' is a value ({child!r}), not a section with keys")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None, check_files: bool = True) -> Config:
    """Read, override and validate a config file; every problem becomes one UserError.

    check_files=False: a CSV dataset's file need not exist (a run's config.yaml, read by predict or
    eval --data, which need only the checkpoint)."""
    path = Path(path)
    raw = read_config_mapping(path)
    parsed = parse_overrides(overrides or [])
    return validate_config(apply_overrides(raw, parsed), source=str(path), set_keys=set(parsed), base_dir=path.parent,
                           check_files=check_files)


def read_config_mapping(path: Path) -> dict[str, Any]:
    """A config file's raw mapping, before overrides and validation."""
    raw = read_yaml(path)
    if raw is None:
        raise UserError(f"config file {path} is empty; it needs at least a 'dataset:' section")
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must be a mapping of keys (name:, dataset:, ...), not a {type(raw).__name__}")
    return raw


class InvalidConfig(UserError):
    """A config that fails validation; `lines` holds one message per problem."""

    def __init__(self, source: str, lines: list[str]) -> None:
        super().__init__(f"invalid config {source}:\n" + "\n".join(f"  - {line}" for line in lines))
        self.lines = lines


def validate_config(data: dict[str, Any], source: str = "config", set_keys: set[str] | dict[str, str] = frozenset(),
                    base_dir: Path | None = None, check_files: bool = True) -> Config:
    """Validate a raw mapping; relative dataset paths resolve against `base_dir` (the config's folder).

    `set_keys`: the dotted keys that came from the command line, named in their errors as
    `(from --set KEY)`; a mapping gives each key its own origin (a sweep's `--grid KEY=VALUE`).
    """
    try:
        return Config.model_validate(data, context={"base_dir": base_dir, "check_files": check_files})
    except ValidationError as exc:
        raise InvalidConfig(source, [_describe(error, data, set_keys) for error in exc.errors()]) from None


# --------------------------------------------------------------------------- error messages
def _describe(error: dict, data: dict, set_keys: set[str] | dict[str, str]) -> str:
    """One pydantic error -> 'field = value: problem; fix' in the user's own terms."""
    loc = _user_loc(error["loc"])
    dotted = ".".join(str(part) for part in loc)
    origin = ""
    given = next((key for key in set_keys if dotted == key or dotted.startswith(f"{key}.")), None)  # or a parent
    if given is not None:
        origin = f" (from {set_keys[given] if isinstance(set_keys, dict) else f'--set {given}'})"
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(error["loc"][:-1], data)
        key = str(loc[-1])
        return f"{dotted}: unknown key{did_you_mean(key, valid)}{origin}; valid keys here: {', '.join(valid)}"
    if kind == "union_tag_invalid":
        tag = error["ctx"]["tag"]
        return f"{dotted}.name = '{tag}': unknown dataset{did_you_mean(tag, DATASET_NAMES)}; choose one of: {', '.join(DATASET_NAMES)}"
    if kind == "union_tag_not_found":
        return f"{dotted}.name: missing; choose one of: {', '.join(DATASET_NAMES)}"
    if kind == "missing":
        return f"{dotted}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "value_error" and message.startswith(tuple(f"{k}" for k in ("dataset.", "train.", "task", "model."))):
        return message + origin  # cross-field checks already name their fields
    where = f"{dotted} = {error['input']!r}: " if loc else ""
    return f"{where}{message}{origin}"


def _user_loc(loc: tuple) -> tuple:
    # pydantic puts the union tag in the location (dataset.circles.noise); users wrote dataset.noise.
    if len(loc) > 1 and loc[0] == "dataset" and loc[1] in DATASET_NAMES:
        return (loc[0], *loc[2:])
    return loc


def _valid_keys(parent_loc: tuple, data: dict) -> list[str]:
    model: type[BaseModel] = Config
    for part in parent_loc:
        if part in DATASET_NAMES:
            model = _DATASET_CLASSES[DATASET_NAMES.index(part)]
            continue
        annotation = model.model_fields[part].annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), model)
    return list(model.model_fields)


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
