"""The experiment config as pydantic models: every key, its default, its range and the checks between keys.

Validation happens once, at the edge (load.py reads and validates); the rest of the code receives
typed sub-configs. Importing this module must not import torch (see tests/test_imports.py).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, FiniteFloat, PrivateAttr, ValidationInfo,
    WrapValidator, field_validator, model_validator,
)

from clftrain.components.activations import ACTIVATIONS
from clftrain.components.inits import INITS
from clftrain.components.losses import LOSS_OPTIONS, LOSSES, losses_taking
from clftrain.components.optimizers import OPTIMIZERS
from clftrain.components.presets import apply_preset, fit_preset_to_loss
from clftrain.components.tasks import TASKS, classes_task, task_fits

TaskName = Literal["auto", "binary", "multiclass", "multilabel", "regression"]

# Every number has a range its libraries accept, checked here so that a value outside is a clear error and
# never reaches numpy, torch or scikit-learn (tests/fuzz_matrix.py tries every key with extreme values).
SEED_MAX = 2**32 - 1  # numpy's RandomState and scikit-learn take seeds in [0, 2**32)
MAX_ROWS = 100_000_000  # n_samples of a generated dataset, batch_size (the memory estimate checks the product)
MAX_FEATURES = 100_000
MAX_CLASSES = 10_000  # classes, clusters or labels a generator draws
MAX_WIDTH = 1_000_000  # one hidden layer
MAX_LAYERS = 1_000
MAX_COUNT = 1_000_000_000  # epochs, patience, step sizes, evaluation and log cadences
SCALE_MAX = 1e6  # |noise|, cluster_std, class_sep, slope, intercept: data stays finite in float32
RATE_MAX = 1e6  # learning rates, weight decay: an update stays finite in float32
MAX_THREADS = 4096
# val_size: auto carves this share of the training rows for a run that makes decisions.
AUTO_VALIDATION = 0.2
MAX_FOLDS = 100  # dataset.cv_folds: each fold is a replica trained on the others
MAX_SEEDS = 4096  # replicas of one run: a typo such as --seeds 0-10000000 must not allocate ten million


def _no_bool(value: Any) -> Any:
    # YAML reads true/false/yes/no as booleans, and Python counts them as 1 and 0: `epochs: true` is a slip.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {str(value).lower()}")
    return value


def _positive_zero(value: float) -> float:
    return 0.0 if value == 0 else value  # -0.0 is 0 here, but numpy's scale checks read it as negative


Int = Annotated[int, BeforeValidator(_no_bool)]
Float = Annotated[FiniteFloat, BeforeValidator(_no_bool), AfterValidator(_positive_zero)]
Seed = Annotated[Int, Field(ge=0, le=SEED_MAX)]


def _auto_or_count(limit: int):
    def check(value: Any, handler) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit):
            return value
        raise ValueError(f"expected auto or a whole number from 1 to {limit:,}")  # one message, not one per member

    return WrapValidator(check)


AutoOrCount = Annotated[Union[Literal["auto"], Annotated[int, Field(ge=1)]], _auto_or_count(MAX_COUNT)]
AutoOrThreads = Annotated[Union[Literal["auto"], Annotated[int, Field(ge=1)]], _auto_or_count(MAX_THREADS)]


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo must never silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- dataset
class _DatasetBase(StrictModel):
    test_size: Float = Field(0.2, gt=0, lt=1, description="Fraction held out for testing.")
    val_size: Union[Literal["auto"], Annotated[Float, Field(ge=0, lt=1)]] = Field(
        "auto", description="Fraction of all rows held out for validation, where decisions are made (the best "
        "checkpoint, early stopping, plateau, a sweep's ranking); the test split only reports. auto: when the "
        f"run makes a decision, {AUTO_VALIDATION:.0%} of the training rows (stratified), else none; the "
        "resolved fraction is written to the run's config.yaml.")
    seed: Seed = Field(42, description="Seeds the data generator and the train/test split.")
    standardize: bool = Field(False, description="Scale features to zero mean, unit variance (fitted on train).")
    numeric_transform: Literal["standard", "robust_clip", "quantile"] = Field(
        "standard", description="How standardize scales the numeric columns, fitted on the training rows: standard "
        "(zero mean, unit variance); robust_clip (RealMLP's: minus the median, over the interquartile range, then "
        "smoothly clipped to (-3, 3) by z / sqrt(1 + (z/3)^2): outliers cannot dominate); quantile (through the "
        "training quantiles onto a standard normal). Folded into ONNX export; a streamed table takes standard only.")
    cv_folds: Annotated[Int, Field(ge=2, le=MAX_FOLDS)] | None = Field(
        None, description="Cross-validation: the rows outside the test split dealt into this many folds "
        "(stratified by class, seeded by dataset.seed) in place of a validation split; one replica per fold "
        "(`seeds` lists one seed per fold) trains on the other folds and is validated on its own, all as one "
        "batched model, so a run's validation mean and std are the folds'. `clftrain sweep --cv K` sets it.")
    positive_class: str | None = Field(
        None, max_length=1000, description="Binary tasks: the class that precision, recall, F1, ROC-AUC and a "
        "decision threshold are about (e.g. 'bad' in a credit table); null: the second class name.")

    @model_validator(mode="after")
    def _transform_needs_scaling(self):
        if self.numeric_transform != "standard" and not self.standardize:
            raise ValueError(f"dataset.numeric_transform = '{self.numeric_transform}' scales the numeric columns, but "
                             "dataset.standardize is false; set standardize: true (or remove numeric_transform)")
        return self

    @model_validator(mode="after")
    def _folds_replace_validation(self):
        if self.cv_folds is not None and self.val_size not in ("auto", 0):
            raise ValueError(f"dataset.cv_folds = {self.cv_folds} validates each fold on its own rows, in place of "
                             f"a validation split, but dataset.val_size = {self.val_size:g}; remove val_size (or set "
                             "it to 0), or remove cv_folds")
        return self

    @model_validator(mode="after")
    def _splits_leave_training_data(self):
        if self.val_size != "auto" and self.test_size + self.val_size >= 1:
            raise ValueError(
                f"dataset.test_size + dataset.val_size = {self.test_size + self.val_size:g} "
                "leaves no training data; make their sum less than 1"
            )
        return self

    def task_hint(self) -> str | None:
        """The task the generated targets imply (None: only known once the data is read)."""
        return None


class _GeneratedBase(_DatasetBase):
    n_samples: Int = Field(1000, ge=2, le=MAX_ROWS, description="Number of samples in total (train + val + test).")

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
        return classes_task(classes) if classes else None


class CirclesConfig(_GeneratedBase):
    """sklearn.datasets.make_circles: a small circle inside a large one."""

    name: Literal["circles"]
    noise: Float = Field(0.03, ge=0, le=SCALE_MAX, description="Std of Gaussian noise added to the points.")
    factor: Float = Field(0.8, gt=0, lt=1, description="Inner circle radius / outer circle radius.")

    def task_hint(self):
        return "binary"


class MoonsConfig(_GeneratedBase):
    """sklearn.datasets.make_moons: two interleaving half circles."""

    name: Literal["moons"]
    noise: Float = Field(0.03, ge=0, le=SCALE_MAX, description="Std of Gaussian noise added to the points.")

    def task_hint(self):
        return "binary"


class BlobsConfig(_GeneratedBase):
    """sklearn.datasets.make_blobs: Gaussian clusters, one class per cluster."""

    name: Literal["blobs"]
    centers: Int = Field(4, ge=2, le=MAX_CLASSES, description="Number of clusters (= classes).")
    cluster_std: Float = Field(1.0, gt=0, le=SCALE_MAX, description="Std of each cluster.")
    n_features: Int = Field(2, ge=1, le=MAX_FEATURES, description="Dimensions of each point.")

    def class_count(self):
        return self.centers


class SpiralsConfig(_GeneratedBase):
    """The CS231n spiral generator: `n_classes` interleaved spiral arms, n_samples in total."""

    name: Literal["spirals"]
    n_classes: Int = Field(3, ge=2, le=MAX_CLASSES, description="Number of spiral arms (= classes).")
    noise: Float = Field(0.2, ge=0, le=SCALE_MAX, description="Std of the Gaussian noise on each point's angle.")

    def class_count(self):
        return self.n_classes


class ClassificationConfig(_GeneratedBase):
    """sklearn.datasets.make_classification: informative features around hypercube vertices."""

    name: Literal["classification"]
    n_features: Int = Field(2, ge=1, le=MAX_FEATURES, description="Number of features.")
    n_informative: Int = Field(2, ge=1, le=MAX_FEATURES, description="Features that carry the signal.")
    n_redundant: Int = Field(0, ge=0, le=MAX_FEATURES, description="Linear combinations of the informative features.")
    n_classes: Int = Field(2, ge=2, le=MAX_CLASSES, description="Number of classes.")
    n_clusters_per_class: Int = Field(1, ge=1, le=MAX_CLASSES, description="Gaussian clusters per class.")
    class_sep: Float = Field(1.0, gt=0, le=SCALE_MAX, description="How far apart the classes are.")

    @model_validator(mode="after")
    def _consistent(self):
        if self.n_informative + self.n_redundant > self.n_features:
            raise ValueError(
                f"dataset.n_informative + dataset.n_redundant = {self.n_informative + self.n_redundant} "
                f"exceeds dataset.n_features = {self.n_features}; raise n_features"
            )
        if math.log2(self.n_classes * self.n_clusters_per_class) > self.n_informative:  # not 2**n: n may be large
            raise ValueError(
                f"dataset.n_classes * n_clusters_per_class = {self.n_classes * self.n_clusters_per_class} "
                f"needs at least that many hypercube vertices (2**n_informative = {2**min(self.n_informative, 64)}); "
                "raise n_informative"
            )
        return self

    def class_count(self):
        return self.n_classes


class LinearConfig(_GeneratedBase):
    """The straight-line sanity check: y = weight * x + bias, x evenly spaced in [0, 1)."""

    name: Literal["linear"]
    n_samples: Int = Field(50, ge=5, le=MAX_ROWS, description="Points on the line (the tutorial: 0 to 1 in steps of 0.02).")
    weight: Float = Field(0.7, ge=-SCALE_MAX, le=SCALE_MAX, description="Slope of the line.")
    bias: Float = Field(0.3, ge=-SCALE_MAX, le=SCALE_MAX, description="Intercept of the line.")
    noise: Float = Field(0.0, ge=0, le=SCALE_MAX, description="Std of Gaussian noise added to y.")

    def task_hint(self):
        return "regression"


class MultilabelConfig(_GeneratedBase):
    """sklearn.datasets.make_multilabel_classification: each sample carries several labels."""

    name: Literal["multilabel"]
    n_features: Int = Field(10, ge=1, le=MAX_FEATURES, description="Number of features.")
    n_classes: Int = Field(5, ge=2, le=MAX_CLASSES, description="Number of labels (one sigmoid output each).")
    n_labels: Int = Field(2, ge=1, le=MAX_CLASSES, description="Average number of labels per sample.")

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


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """'2GiB', '500 MB', '1e9' -> bytes; a ValueError naming the units otherwise."""
    import re

    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS or float(match.group(1)) * _UNITS[unit] < 1:
        raise ValueError(f"{text!r} is not a size: give bytes or a number with one of the units "
                         "kB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. '2GiB')")
    return int(float(match.group(1)) * _UNITS[unit])


class _TableConfig(_DatasetBase):
    """The keys every table of the user's shares (CSV, Parquet)."""

    path: str = Field(description="The file; a relative path is relative to the config file.")
    target: Union[str, Annotated[list[str], Field(min_length=1)]] = Field(
        description="The label column; a list of 0/1 columns makes a multi-label task.")
    features: list[str] | None = Field(None, description="Input columns (default: every other column, but for "
                                       "identifier and free-text columns, which are left out with a note).")
    exclude: list[str] = Field(default_factory=list, description="Columns never used as inputs (an identifier, a "
                               "name, a leak of the label), without listing every other one in features.")
    categorical: Union[Literal["auto"], list[str]] = Field(
        default_factory=list, description="Columns to one-hot encode; auto: every non-numeric input column.")
    impute: Literal["mean", "median", "most_frequent"] | None = Field(
        None, description="Fill missing values (fitted on training rows; categories take the most frequent); "
        "null: missing values are an error.")
    standardize: bool = Field(True, description="Scale numeric features to zero mean, unit variance (fitted on train).")
    stream: Union[Literal["auto"], bool] = Field(
        "auto", description="Read the table in blocks instead of whole (bounded memory, any size): true, false, or "
        "auto: stream when the table's estimated float32 size exceeds memory_limit.")
    memory_limit: Union[Int, str, None] = Field(
        None, description="The float32 size above which `stream: auto` streams, in bytes or with a unit ('2GiB', "
        "'500MB'); null: a 32nd of the machine's memory (in memory a table peaks at 8-11x its float32 size).")
    shuffle_buffer: Int = Field(
        262_144, ge=1, le=2**31, description="Streamed training: rows held in the shuffle buffer (a table whose "
        "training rows fit in it trains exactly as in memory).")
    split: Literal["auto", "shuffle", "hash"] = Field(
        "auto", description="How rows are dealt to train/val/test: shuffle (a stratified permutation, in memory), "
        "hash (a function of the row's position and dataset.seed: what streaming uses), auto: hash when streamed.")

    FOLDERS: ClassVar[bool] = False  # whether `path` may be a folder (of Parquet files)
    FORMAT: ClassVar[str] = "CSV"

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value):
        if value is None or isinstance(value, int):
            if isinstance(value, int) and value <= 0:
                raise ValueError("give a positive number of bytes, or a size such as '2GiB'")
            return value
        return parse_size(value)

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, path: str, info: ValidationInfo) -> str:
        if len(path) > 4096 or "\x00" in path:
            raise ValueError("not a file path (too long, or with a NUL character)")
        context = info.context or {}
        base = context.get("base_dir")
        resolved = Path(path).expanduser()
        if not resolved.is_absolute() and base is not None:
            resolved = Path(base) / resolved
        try:
            is_file = resolved.is_file() or (cls.FOLDERS and resolved.is_dir())
        except OSError as exc:  # a name longer than the file system takes, say
            raise ValueError(f"not a usable file path: {exc.strerror or exc}") from None
        if context.get("check_files", True) and not is_file:
            where = f" (looked for {resolved})" if str(resolved) != path else ""
            folder = " or folder" if cls.FOLDERS else ""
            if resolved.exists():
                raise ValueError(f"{resolved} is not a regular file{folder} (a directory, FIFO, socket or device); "
                                 f"give the {cls.FORMAT} file's path")
            raise ValueError(f"{cls.FORMAT} file{folder} not found{where}; the path is relative to the config file")
        return str(resolved.resolve())


class CsvConfig(_TableConfig):
    """Your own table: a header row naming the columns, then one row per sample."""

    name: Literal["csv"]


class ParquetConfig(_TableConfig):
    """Your own table as Parquet: one file, or a folder of .parquet files with one schema (read by pyarrow)."""

    name: Literal["parquet"]
    FOLDERS: ClassVar[bool] = True
    FORMAT: ClassVar[str] = "Parquet"


DATASET_CLASSES = (
    CirclesConfig, MoonsConfig, BlobsConfig, SpiralsConfig, ClassificationConfig, LinearConfig,
    MultilabelConfig, IrisConfig, WineConfig, BreastCancerConfig, DigitsConfig, CsvConfig, ParquetConfig,
)
DATASET_NAMES = [cls.model_fields["name"].annotation.__args__[0] for cls in DATASET_CLASSES]
DatasetConfig = Annotated[Union[DATASET_CLASSES], Field(discriminator="name")]


# --------------------------------------------------------------------------- model
class ModelConfig(StrictModel):
    layers: Annotated[list[Annotated[Int, Field(ge=1, le=MAX_WIDTH)]], Field(max_length=MAX_LAYERS)] = Field(
        default_factory=lambda: [10, 10],
        description="Hidden layer widths; [] is logistic/softmax regression.",
    )
    activation: str = Field("relu", description=f"One of: {', '.join(ACTIVATIONS)}.")
    dropout: Float = Field(0.0, ge=0, lt=1, description="Dropout probability after each hidden layer.")
    batch_norm: bool = Field(False, description="BatchNorm1d after each hidden Linear layer.")
    init: str = Field("default", description=f"Weight initialisation: {', '.join(INITS)}.")
    input_scale: bool = Field(
        False, description="A learnable scale per input feature (starting at 1) before the first layer: RealMLP's "
        "diagonal scaling layer, a soft feature selection.")
    parametric_activation: bool = Field(
        False, description="Each hidden unit's activation f becomes x + a * (f(x) - x), a learnable per unit and "
        "starting at 1 (f itself), moving 1.6 times a weight's step (RealMLP's ratio): RealMLP's parametric "
        "activation.")
    embedding: Literal["periodic"] | None = Field(
        None, description="periodic: each input feature x becomes [x, V cos(2 pi (w x + b)) + c] (16 learnable "
        "frequencies, a per-feature linear map to 3) before the first layer: the periodic numeric embeddings of "
        "Gorishniy et al. (2022) in RealMLP's PBLD form. null: the features as they are.")
    preset: Literal["tabular"] | None = Field(
        None, description="A named bundle of defaults for the keys this config does not write (its own keys, and "
        "--set, override it), resolved when the config is read and written out in the run's config.yaml. tabular: "
        "the measured recipe for tables of README's 'The tabular recipe'. null: the plain defaults.")
    ensemble: Annotated[Int, Field(ge=2, le=MAX_SEEDS)] | None = Field(
        None, description="Train this many members (seeds seed, seed+1, ...) as one batched model that predicts "
        "with their mean probability (eval, predict, plot, report and export use the ensemble; --seed S picks a "
        "member); not with `seeds`. null: one model.")

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
    monitor: str = Field("val_loss", description="A validation column of metrics.csv: val_loss, or val_acc "
                         "(val_mae for regression). Never a test column: the test split only reports.")
    patience: Int = Field(50, ge=1, le=MAX_COUNT, description="Epochs without improvement before stopping.")
    min_delta: Float = Field(0.0, ge=0, le=1e12, description="Smallest change that counts as an improvement.")
    mode: Literal["auto", "min", "max"] = Field("auto", description="auto: max for *_acc, min otherwise.")

    @field_validator("monitor")
    @classmethod
    def _watches_validation(cls, monitor: str) -> str:
        if monitor.startswith("test_"):
            raise ValueError(
                "the test split only reports, it never decides: a choice made on its rows makes the test score "
                f"optimistic; watch val_{monitor.removeprefix('test_')} instead (a validation split is carved from "
                "the training rows when dataset.val_size is auto)")
        return monitor


class SchedulerConfig(StrictModel):
    """Learning-rate schedule; each name uses the keys listed in its description."""

    name: Literal["step", "cosine", "plateau", "onecycle", "warmup_cosine"] = Field(
        description="step: x gamma every step_size epochs; cosine: anneal to min_lr over the epochs; "
        "plateau: x factor after patience evaluations without improvement of the monitored metric; "
        "onecycle: warm up to max_lr, then anneal, per batch; warmup_cosine: per batch, a linear warm-up from 0 "
        "to lr over the first `warmup` of the steps, lr held for the next `hold`, then a cosine to min_lr."
    )
    step_size: Int = Field(100, ge=1, le=MAX_COUNT, description="step: epochs between decays.")
    gamma: Float = Field(0.5, gt=0, le=1, description="step: decay factor.")
    min_lr: Float = Field(0.0, ge=0, le=RATE_MAX, description="cosine, plateau: lowest learning rate.")
    factor: Float = Field(0.5, gt=0, lt=1, description="plateau: decay factor.")
    patience: Int = Field(10, ge=0, le=MAX_COUNT, description="plateau: evaluations without improvement before decaying.")
    max_lr: Float | None = Field(None, gt=0, le=RATE_MAX, description="onecycle: peak learning rate (default 10 x lr).")
    warmup: Float = Field(0.05, ge=0, lt=1, description="warmup_cosine: the share of the training steps spent "
                          "warming up.")
    hold: Float = Field(0.0, ge=0, lt=1, description="warmup_cosine: the share of the steps held at lr after the "
                        "warm-up, before the cosine (RealMLP's flat_cos: warmup 0, hold 0.5).")

    @model_validator(mode="after")
    def _phases_fit(self):
        if self.warmup + self.hold >= 1:
            raise ValueError(f"train.scheduler.warmup + hold = {self.warmup + self.hold:g} leaves no steps for the "
                             "cosine; make their sum less than 1")
        return self


class TrainConfig(StrictModel):
    loss: str = Field("auto", description=f"auto (the task's default) or one of: {', '.join(LOSSES)}.")
    optimizer: str = Field("sgd", description=f"One of: {', '.join(OPTIMIZERS)}.")
    lr: Float = Field(0.1, gt=0, le=RATE_MAX, description="Learning rate.")
    momentum: Float = Field(0.0, ge=0, lt=1, description="Momentum (sgd, rmsprop).")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd, needs momentum > 0).")
    weight_decay: Float = Field(0.0, ge=0, le=RATE_MAX, description="L2 penalty.")
    grad_clip: Float | None = Field(None, gt=0, le=1e12, description="Clip the gradients' total norm to this value.")
    epochs: Int = Field(1000, ge=1, le=MAX_COUNT, description="Passes over the training data.")
    batch_size: Int | None = Field(None, ge=1, le=MAX_ROWS, description="null: full batch (one step per epoch).")
    even_batches: bool = Field(
        False, description="Mini-batches of even size: the ceil(N / batch_size) steps an epoch takes over the N "
        "training rows stay, and batch_size becomes ceil(N / steps) (written to the run's config.yaml), so no step "
        "is taken on a small remainder (259 rows in batches of 256: 130 + 129, not 256 + 3); pytabkit's adjust_bs.")
    log_every: Int = Field(100, ge=1, le=MAX_COUNT, description="Print a progress row every this many epochs.")
    checkpoint_seconds: Float = Field(
        10.0, ge=0, le=1e7, description="Save metrics.csv and the checkpoints at the first logged epoch at least this many "
        "seconds after the previous save, and whenever training ends or is stopped (Ctrl-C, SIGTERM): a crash "
        "loses at most about this long of training. 0: at every logged epoch.")
    eval_every: AutoOrCount = Field(
        "auto", description="Evaluate and record a metrics.csv row every this many epochs (and on every logged "
        "epoch and the last). auto: about 100 rows per run (every epoch with early_stopping or a plateau "
        "scheduler, which act on each evaluation); the resolved number is written to the run's config.yaml.")
    early_stopping: EarlyStoppingConfig | None = Field(None, description="null: train all epochs.")
    restore_best: bool = Field(
        True, description="With early_stopping: the run ends with the best epoch's weights (last.pt, the final "
        "metrics, eval, plot and predict), as Keras' restore_best_weights; false: with the last epoch's.")
    scheduler: SchedulerConfig | None = Field(None, description="null: constant learning rate.")
    class_weight: Literal["balanced"] | None = Field(
        None, description="cross_entropy: weight classes inversely to their frequency in training.")
    pos_weight: Union[Literal["balanced"], Annotated[Float, Field(le=RATE_MAX)],
                      Annotated[list[Annotated[Float, Field(le=RATE_MAX)]], Field(max_length=MAX_CLASSES)], None] = Field(
        None, description="bce_with_logits: weight of positive examples (per label for multilabel); "
        "balanced: negatives / positives in training.")
    label_smoothing: Float = Field(0.0, ge=0, lt=1, description="cross_entropy, bce_with_logits: label smoothing "
                                   "(bce_with_logits: targets y (1 - e) + e / 2, as cross_entropy treats two classes).")

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
        optimizer = OPTIMIZERS.get(self.optimizer)
        if self.momentum > 0 and not optimizer.uses_momentum:
            users = sorted(name for name in OPTIMIZERS if OPTIMIZERS.get(name).uses_momentum)
            raise ValueError(
                f"train.momentum = {self.momentum:g} is not used by optimizer '{self.optimizer}'; "
                f"remove it or use one of: {', '.join(users)}"
            )
        if self.nesterov and (not optimizer.takes_nesterov or self.momentum == 0):
            takers = sorted(name for name in OPTIMIZERS if OPTIMIZERS.get(name).takes_nesterov)
            raise ValueError(f"train.nesterov needs optimizer {' or '.join(map(repr, takers))} and train.momentum > 0")
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
        if self.loss == "auto":
            return self  # checked again once the task resolves the loss (Config._resolve_task_and_loss)
        for key in LOSS_OPTIONS:
            value = getattr(self, key)
            if value and key not in LOSSES.get(self.loss).options:
                allowed = " or ".join(map(repr, losses_taking(key)))
                raise ValueError(f"train.{key} = {value!r} needs train.loss {allowed}, not '{self.loss}'")
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
    seed: Seed = Field(42, description="Seeds weight initialisation and mini-batch shuffling.")
    seeds: Annotated[list[Seed], Field(min_length=1, max_length=MAX_SEEDS)] | None = Field(
        None, description="Train one replica per seed (instead of `seed`), all together as one batched model; "
        "null: one run seeded by `seed`.")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="auto | cpu | cuda | cuda:N | mps.")
    threads: AutoOrThreads = Field(
        "auto", description="CPU threads torch trains with. auto: measured on the first training steps, 1 "
        "against torch's default, the faster kept (N only while N cores are free); OMP_NUM_THREADS set: its count.")
    tracking: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="Experiment trackers to write to besides metrics.csv: tensorboard "
        "(event files under the run directory's tensorboard/), mlflow (one MLflow run per run directory, in "
        "MLFLOW_TRACKING_URI's store or a SQLite file beside the run directory: runs/mlflow.db).")
    report: bool = Field(True, description="Write report.html, one self-contained HTML page of the run, when "
                         "training ends (fit --no-report: false).")
    task: TaskName = Field("auto", description="auto infers it from the dataset.")
    dataset: DatasetConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    # Whether val_size was auto and a validation split was carved for this run's decisions (not in config.yaml).
    _validation_carved: bool = PrivateAttr(False)
    # Whether `seeds` are model.ensemble's members, resolved from it (not in config.yaml).
    _ensemble_seeds: bool = PrivateAttr(False)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        # model.preset's values under the keys the config does not write (components/presets.py), before anything
        # else is read: every check below sees the values the run will use, and config.yaml holds them all.
        return apply_preset(data)

    def decides(self) -> bool:
        """Whether the run makes decisions (which need a validation split): early stopping, a plateau schedule."""
        train = self.train
        return train.early_stopping is not None or (train.scheduler is not None and train.scheduler.name == "plateau")

    @model_validator(mode="after")
    def _resolve_validation(self, info: ValidationInfo):
        # A sweep ranks its runs: that is a decision too (its planner says so in the validation context).
        decides = self.decides() or bool((info.context or {}).get("decides"))
        dataset = self.dataset
        if dataset.cv_folds is not None:  # every fold is validated on its own rows: the decisions have them
            self._validation_carved, dataset.val_size = False, 0.0
            return self
        if dataset.val_size == "auto":
            self._validation_carved = decides
            dataset.val_size = round(AUTO_VALIDATION * (1 - dataset.test_size), 6) if decides else 0.0
        elif decides and dataset.val_size == 0:
            what = ("train.early_stopping" if self.train.early_stopping is not None else
                    "the plateau scheduler" if self.decides() else "a sweep's ranking")
            raise ValueError(f"dataset.val_size = 0 leaves no validation split, and {what} decides on one (the test "
                             "split only reports); set dataset.val_size > 0, or auto to carve one from the "
                             "training rows")
        return self

    @model_validator(mode="after")
    def _resolve_task_and_loss(self):
        hint = self.dataset.task_hint()
        if self.task == "auto":
            self.task = hint or "auto"
        elif hint and not task_fits(self.task, hint, self._class_count(hint)):
            classes = self._class_count(hint)
            what = f"{classes} classes" if classes and hint in ("binary", "multiclass") else f"a {hint} task"
            raise ValueError(
                f"task = '{self.task}' does not fit dataset '{self.dataset.name}' (its targets make {what}"
                f"{': binary needs exactly 2' if self.task == 'binary' and classes else ''}); use task: auto or {hint}"
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
            fit_preset_to_loss(self)  # a preset's label smoothing where the loss takes it
            self.train._loss_options_fit_loss()  # now that `auto` is resolved
        return self

    def _class_count(self, hint: str) -> int | None:
        """The classes the dataset's generator draws (2 for a binary one), None where only its data can tell."""
        count = getattr(self.dataset, "class_count", lambda: None)()
        return count if count is not None else (2 if hint == "binary" else None)

    @field_validator("seeds")
    @classmethod
    def _seeds_once_each(cls, seeds: list[int] | None) -> list[int] | None:
        repeated = sorted(seed for seed, count in Counter(seeds or []).items() if count > 1)
        if repeated:
            raise ValueError(f"seed(s) {', '.join(map(str, repeated))} listed more than once; "
                             "each seed trains one replica: list it once")
        return seeds

    @model_validator(mode="after")
    def _ensemble_members(self):
        # model.ensemble: K is K replicas seeded seed..seed+K-1, resolved into `seeds` here (and left out of
        # to_dict(), so that config.yaml says model.ensemble, not a seeds list the next load would refuse).
        count = self.model.ensemble
        if count is None or self._ensemble_seeds:
            return self
        if self.seeds is not None:
            raise ValueError(
                f"model.ensemble = {count} cannot be used with seeds ({', '.join(map(str, self.seeds))}): an "
                f"ensemble trains its own members, seeds seed..seed+{count - 1} (seed: {self.seed}), as one model; "
                "remove seeds (or --seeds), or model.ensemble to train separate replicas")
        if self.seed + count - 1 > SEED_MAX:
            raise ValueError(f"model.ensemble = {count} with seed {self.seed} needs seeds up to "
                             f"{self.seed + count - 1}, past {SEED_MAX}; lower seed")
        self.seeds = list(range(self.seed, self.seed + count))
        self._ensemble_seeds = True
        return self

    @model_validator(mode="after")
    def _one_replica_per_fold(self):
        # dataset.cv_folds: K trains replica k (the k-th seed) on every fold but fold k: K seeds, seed..seed+K-1
        # unless the config lists its own (written out in config.yaml, so the run reads back the same).
        folds = self.dataset.cv_folds
        if folds is None:
            return self
        if self.model.ensemble is not None:
            raise ValueError(f"dataset.cv_folds = {folds} cannot be used with model.ensemble: both train their "
                             "replicas as one model (one per fold, one per member); remove one of them")
        if self.seeds is None:
            if self.seed + folds - 1 > SEED_MAX:
                raise ValueError(f"dataset.cv_folds = {folds} with seed {self.seed} needs seeds up to "
                                 f"{self.seed + folds - 1}, past {SEED_MAX}; lower seed")
            self.seeds = list(range(self.seed, self.seed + folds))
        elif len(self.seeds) != folds:
            raise ValueError(f"dataset.cv_folds = {folds} trains one replica per fold, but seeds lists "
                             f"{len(self.seeds)} ({', '.join(map(str, self.seeds[:8]))}{', ...' if len(self.seeds) > 8 else ''}); "
                             f"list {folds} seeds, or remove seeds (then seed..seed+{folds - 1})")
        return self

    @model_validator(mode="after")
    def _seeds_train_together(self):
        # Replicas are exact copies of their solo runs only under an elementwise optimizer
        # (training/replicas.py); early stopping and plateau act per replica (training/replica_trainer.py).
        if self.seeds is None:
            return self
        if not OPTIMIZERS.get(self.train.optimizer).elementwise:
            exact = sorted(name for name in OPTIMIZERS if OPTIMIZERS.get(name).elementwise)
            raise ValueError(
                f"train.optimizer '{self.train.optimizer}' cannot be used with seeds: its update is not elementwise, "
                "so stacked replicas would not each train as alone; use one of: " + ", ".join(exact))
        return self

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if self._ensemble_seeds:  # resolved from model.ensemble, which config.yaml keeps
            data["seeds"] = None
        return data
