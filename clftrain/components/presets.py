"""Registry of model presets: named bundles of defaults that `model.preset` fills in under a config's own keys.

A preset is resolved when the config is read (config/schema.py, before validation): every key it names that the
config (with its --set and --grid overrides) does not write takes the preset's value, so the run's config.yaml
shows every value the run used, and reading that file again changes nothing. A section the config writes as a
whole value (train.scheduler, train.early_stopping) is the config's, never merged with the preset's.

Two values depend on what only the data tells, and follow it once the data is read (`fit_preset_to_data`):
the preset's batch size is at most the training rows (a smaller table trains full batch), and its label smoothing
applies where the loss takes it (a regression run trains without). `train.even_batches` (any config's key, which the
tabular preset turns on) is resolved there too: the batch size evened out over the training rows.

`tabular` is the recipe README's "The tabular recipe" measures (bench/ablation.py): the parts of RealMLP
(Holzmueller et al., NeurIPS 2024) and TabM (Gorishniy et al., ICLR 2025) that earned their place on clftrain's
tables.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from clftrain.registry import Registry


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    # section ("dataset", "model", "train") -> key -> value; a section may hold a mapping as one value
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def value(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".")
        return self.values.get(section, {}).get(key)


PRESETS: Registry[Preset] = Registry("preset")

TABULAR = Preset(
    "tabular",
    "MLPs for tables: robust scaling with smooth clipping (RealMLP), a learnable input scale (RealMLP), three "
    "hidden layers of 256 with SELU and dropout 0.15 (RealMLP's), Adam at a constant 1e-3 in batches of at most "
    "256 evened out over the training rows (no step on a small remainder), "
    "label smoothing 0.1 (RealMLP), up to 256 epochs with early stopping on the validation loss and the best "
    "weights kept. Measured and left out: AdamW's decay, warm-up + cosine and flat-then-cosine schedules, "
    "periodic embeddings, quantile scaling, an ensemble of 5 (README, 'The tabular recipe')",
    {
        "dataset": {"standardize": True, "numeric_transform": "robust_clip"},
        "model": {"layers": [256, 256, 256], "activation": "selu", "dropout": 0.15, "input_scale": True},
        "train": {"optimizer": "adam", "lr": 0.001, "batch_size": 256, "even_batches": True, "epochs": 256,
                  "log_every": 16,
                  "label_smoothing": 0.1, "early_stopping": {"monitor": "val_loss", "patience": 32}},
    },
)
PRESETS.register(TABULAR.name)(TABULAR)


def apply_preset(data: Any) -> Any:
    """A raw config mapping with `model.preset`'s values under the keys it does not write (a copy; anything that
    is not such a mapping, or names no known preset, is returned as it is, for validation to judge)."""
    model = data.get("model") if isinstance(data, dict) else None
    name = model.get("preset") if isinstance(model, dict) else None
    if not isinstance(name, str) or name not in PRESETS:
        return data
    preset = PRESETS.get(name)
    data = copy.deepcopy(data)
    for section, values in preset.values.items():
        own = data.get(section)
        if own is None and section != "dataset":
            own = data[section] = {}
        if not isinstance(own, dict):
            continue  # dataset missing or not a mapping: validation says so
        for key, value in values.items():
            if key in own or not _applies(section, key, data, own):
                continue
            own[key] = copy.deepcopy(value)
    return data


def _applies(section: str, key: str, data: dict, own: dict) -> bool:
    """Whether the preset's value of section.key fits what the config says elsewhere (robust_clip works streamed
    too: the first pass finds exact quartiles)."""
    if (section, key) == ("dataset", "numeric_transform"):  # standardize: false keeps the raw numbers
        return own.get("standardize", True) is not False
    if (section, key) == ("train", "label_smoothing"):
        return data.get("task") != "regression" and _takes(own.get("loss", "auto"), "label_smoothing")
    return True


def _takes(loss: Any, option: str) -> bool:
    from clftrain.components.losses import LOSSES

    return loss == "auto" or not isinstance(loss, str) or loss not in LOSSES or option in LOSSES.get(loss).options


def fit_preset_to_loss(config) -> None:
    """Once the task names the loss: the preset's label smoothing dropped where the loss does not take it (a
    regression table read under the tabular preset). In place; only a value equal to the preset's own changes."""
    preset, train = _preset_of(config), config.train
    smoothing = preset.value("train.label_smoothing") if preset else None
    if smoothing and train.label_smoothing == smoothing and not _takes(train.loss, "label_smoothing"):
        train.label_smoothing = 0.0


def fit_preset_to_data(config, train_rows: int) -> None:
    """Once the data is read: the preset's batch size capped at the training rows (a smaller table trains full
    batch; only a value equal to the preset's own changes), then `train.even_batches` (any config's): the
    ceil(N / batch_size) steps of an epoch over N training rows kept, the batch size becomes ceil(N / steps), so
    that the last step is not taken on a small remainder of rows (Adam makes a step on 3 rows as large as one on
    256). In place; a batch size already even stays as it is, so resolving the run's config.yaml again changes
    nothing."""
    preset, train = _preset_of(config), config.train
    if preset and train.batch_size is not None and train.batch_size == preset.value("train.batch_size") \
            and train.batch_size > train_rows:
        train.batch_size = None
    if getattr(train, "even_batches", False) and train.batch_size is not None and 0 < train.batch_size < train_rows:
        train.batch_size = even_batch_size(train_rows, train.batch_size)


def even_batch_size(rows: int, batch_size: int) -> int:
    """The size that deals `rows` into as many batches as `batch_size` takes, as evenly as one size can (pytabkit's
    ParallelDictDataLoader(adjust_bs=True)): 259 rows, 256 -> 130 (130 + 129); 1,150, 256 -> 230 (5 x 230). Its
    own fixed point: even_batch_size(rows, even_batch_size(rows, b)) == even_batch_size(rows, b)."""
    steps = -(-rows // batch_size)
    return -(-rows // steps)


def _preset_of(config) -> Preset | None:
    name = getattr(config.model, "preset", None)
    return PRESETS.get(name) if name else None
