"""A trained run: its config, data, model and metrics, in memory or loaded back from its directory.

`fit` builds one from what it just trained; `eval`, `plot` and `predict` load one
from the run directory alone (config.yaml, metrics.csv, a checkpoint): the test
split is rebuilt from the saved config, which fixes its seed, and the feature
order, scaling and class names come from the checkpoint.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clftrain.components.losses import expects_probabilities
from clftrain.components.tasks import Task
from clftrain.config import Config, load_config, validate_config
from clftrain.data import Dataset, ModelInputs, build_dataset
from clftrain.errors import UserError
from clftrain.inference.scoring import Scored, predict, score, score_stream, to_labels
from clftrain.store import rundir
from clftrain.training import StreamSplit, build_loss, build_model, evaluate_stream, load_weights, needs_training_data

DEVICE_PATTERN = r"auto|cpu|mps|cuda(:\d+)?"


@dataclass
class TrainedRun:
    config: Config
    dataset: Dataset | None  # None when loaded without data (predict needs only `inputs`)
    model: nn.Module
    device: torch.device
    rows: list[dict[str, float]]  # metrics.csv
    checkpoint: str = "last"  # which weights `model` holds
    inputs: ModelInputs | None = None  # feature order, scaling, class names; from `dataset` when not given
    epoch: int | None = None  # the epoch these weights finished
    recorded: dict[str, float] = field(default_factory=dict)  # the metrics.csv row of that epoch, if evaluated
    replicas: ReplicaChoice | None = None  # a run trained with seeds: which replica `model` is, or their ensemble
    loss_weights: dict[str, torch.Tensor] | None = None  # the loss's weights as the checkpoint saved them
    notes: list[str] = field(default_factory=list)  # what could not be read and what was done without it

    def __post_init__(self) -> None:
        if self.inputs is None:
            self.inputs = ModelInputs.from_dataset(self.dataset)
        if self.epoch is None and self.rows and self.replicas is None:  # fit: the weights it just trained are the last row's
            self.epoch, self.recorded = int(self.rows[-1]["epoch"]), dict(self.rows[-1])

    @property
    def outputs_are_probabilities(self) -> bool:
        return expects_probabilities(self.config.train.loss)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, labels) for already-scaled features."""
        return predict(self.model, self.inputs.task, X, self.outputs_are_probabilities, self.device)

    def score(self, X: np.ndarray, y: np.ndarray) -> Scored:
        """Predictions plus loss and score over a whole split, exactly as the training loop computes them."""
        # Class weights come from the training split: saved in the checkpoint, or rebuilt from the dataset.
        loss_fn = build_loss(self.config.train, self.dataset, self.device, self.loss_weights)
        return score(self.model, self.inputs.task, loss_fn, X, y, self.outputs_are_probabilities, self.device)

    def test_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The test split's rows (a streamed table's: its sample, see Dataset.stream)."""
        return self.dataset.X_test, self.dataset.y_test

    def test_scored(self) -> tuple[np.ndarray, Scored]:
        """(targets, scores) of every test row; a streamed table's are read a block at a time, and only the
        predictions are held (about 20 bytes a row)."""
        if self.dataset.stream is None:
            X, y = self.test_split()
            return y, self.score(X, y)
        loss_fn = build_loss(self.config.train, self.dataset, self.device, self.loss_weights)
        batches = StreamSplit(self.dataset.stream, "test", self.device).batches()
        return score_stream(self.model, self.inputs.task, loss_fn, batches, self.outputs_are_probabilities)

    @classmethod
    def load(cls, run_dir: Path, checkpoint: str = "last", device: str | None = None,
             with_data: bool = True, seed: int | None = None, ensemble: bool = False) -> TrainedRun:
        """Rebuild config, model (and, with_data, the dataset) from a run directory.

        Without data, the loss is rebuilt from the weights the checkpoint saved; a checkpoint
        from before they were saved, of a run whose loss is weighted, still needs the dataset.

        The model runs where `fit` ran it (the config's device, resolved the same way) unless
        `device` says otherwise; torch.load never runs code from the directory. A run trained
        with seeds gives replica `seed`, the `ensemble` of all, or by default the median replica; a run
        with model.ensemble gives its ensemble unless `seed` picks a member.
        """
        config_file = rundir.config_of(run_dir)
        config = load_config(config_file, check_files=False)  # the data file is read only if the data is built
        path = rundir.checkpoint_path(run_dir, checkpoint)
        payload = _load_or_point_to_the_other(run_dir, checkpoint)
        check_same_run(payload, config, path)
        inputs = ModelInputs.from_checkpoint(payload)
        weights = payload.get("loss_weights")
        if weights is None and needs_training_data(config.train):
            with_data = True
        dataset = build_dataset(config) if with_data else None
        if dataset is not None:
            _check_same_data(inputs, ModelInputs.from_dataset(dataset), config_file)
        resolved = _resolve_device(device, config.device, config_file)
        rows, notes = _metrics_rows(run_dir)
        if "seeds" in payload:
            run = cls._load_replicas(config, dataset, inputs, payload, path, resolved, rows, checkpoint, seed, ensemble)
            if run.replicas.members and run.replicas.seed is None:
                run.recorded = _ensemble_recorded(run_dir, checkpoint, run.epoch)
            run.loss_weights, run.notes = weights, notes
            return run
        _check_one_seed(run_dir, config, seed, ensemble)
        model = _model_for(config, inputs)
        load_weights(model, payload["model"], path)
        epoch = int(payload.get("restored_from") or payload["epoch"])  # restore_best: the best epoch's weights
        recorded = dict(payload.get("metrics") or {})
        if recorded.get("epoch") != epoch or payload.get("partial"):
            recorded = {}  # stopped between two evaluated epochs, or inside one: no row for these weights
        return cls(config, dataset, model.to(resolved), resolved, rows, checkpoint, inputs, epoch, recorded,
                   loss_weights=weights, notes=notes)

    @classmethod
    def _load_replicas(cls, config, dataset, inputs, payload, path, device, rows, checkpoint, seed, ensemble):
        """A multi-seed checkpoint: every replica's tensors stacked; pick one, or average them."""
        from clftrain.training import ReplicaEnsemble, ReplicaSelect

        seeds = list(payload["seeds"])
        stacked = stacked_model(config, inputs, payload["model"], path, device, len(seeds))
        recorded_rows = [dict(row) if row else {} for row in payload["metrics"]]
        choice = ReplicaChoice.make(seeds, seed, ensemble, recorded_rows, inputs.task, path,
                                    members=config.model.ensemble is not None)
        if choice.seed is None:
            model = ReplicaEnsemble(stacked, inputs.task, expects_probabilities(config.train.loss))
            restored = checkpoint == rundir.BEST or payload.get("restored_from")  # each replica at its own epoch
            epoch = None if restored else int(payload["epoch"])
            return cls(config, dataset, model, device, rows, checkpoint, inputs, epoch, {}, choice)
        index = seeds.index(choice.seed)
        recorded = recorded_rows[index]
        restored = checkpoint == rundir.BEST or payload.get("restored_from")  # each replica at its best epoch
        epoch = int(recorded["epoch"]) if restored and recorded else int(payload["epoch"])
        if recorded.get("epoch") != epoch or payload.get("partial"):
            recorded = {}
        return cls(config, dataset, ReplicaSelect(stacked, index), device, rows, checkpoint, inputs, epoch, recorded,
                   choice)

    def draw_plots(self, run_dir: Path, drawer=None) -> list[Path]:
        """Every plot of the run into run_dir/plots, from these weights (by `drawer`, a views.Drawer: here by
        default); the files written. A figure that cannot be drawn raises the first such error, after the others
        are drawn."""
        from clftrain.views.drawing import Drawer

        results = (drawer or Drawer()).draw(self.figure_jobs(run_dir / rundir.PLOTS))
        errors = [error for _, _, error in results if error is not None]
        if errors:
            raise errors[0]
        return [path for _, path, _ in results]

    def figure_jobs(self, plot_dir: Path) -> list:
        """The run's figures as data (views.drawing.FigureJob): everything computed here, with this run's model,
        so that drawing them needs only matplotlib."""
        from clftrain.views.drawing import FigureJob

        data, task = self.dataset, self.inputs.task
        train, test = (data.X_train, data.y_train), (data.X_test, data.y_test)
        if data.stream is None:
            y_test, scored = self.test_scored()
            drawn, score = scored, scored.score
            counts = None if task.target == "value" else _confusion_counts(task, self.inputs.class_names, y_test,
                                                                             scored.labels)
        else:  # every test row for the score and the counts, holding nothing per row; the points: the sample
            score, counts = self._streamed_counts()
            drawn = self.score(*self.test_split())
        title = f"{self.config.name} ({self._weights_label()}): test {task.metric_label} {task.format_metric(score)}"
        if self.replicas is not None:
            title += f"\n{self.replicas.describe()}"
        jobs = []
        if task.target == "value":
            jobs.append(FigureJob("regression_fit", plot_dir / "predictions.png", dict(
                train=train, test=test, predicted=drawn.probabilities[:, 0], title=title)))
        else:
            jobs.append(FigureJob("decision_boundary", plot_dir / "decision_boundary.png", self._boundary(title)))
            confusion = self._confusion(plot_dir, counts, f"{title}\ntest split, {data.rows('test')} rows")
            if confusion is not None:
                jobs.append(confusion)
        if self.rows:
            if self.replicas is not None:  # one line per split: the mean over the seeds, in their min-max band
                which = (f"the ensemble's {len(self.replicas.seeds)} members" if self.replicas.members
                         else f"{len(self.replicas.seeds)} seeds")
                curves = dict(figure="replica_curves", title=f"{self.config.name}: learning curves of {which}")
            else:
                curves = dict(figure="learning_curves", title=f"{title}\nlearning curves")
            jobs.append(FigureJob(curves.pop("figure"), plot_dir / "curves.png",
                                  dict(rows=self.rows, metric=task.metric, mark_epoch=self.epoch, **curves)))
        return jobs

    def _boundary(self, title: str) -> dict:
        """decision_boundary's arguments: the model's labels over a grid of the drawing plane, the points in it."""
        from clftrain.views.plane import GRID_STEPS, Plane

        data = self.dataset
        plane = Plane.fit(data.X_train)
        extent, grid = plane.grid(np.concatenate([data.X_train, data.X_test]))
        regions = self.predict(grid)[1].reshape(GRID_STEPS, GRID_STEPS, -1)  # a last axis per label

        def drawn(X: np.ndarray, y: np.ndarray) -> tuple:
            # Each point's own prediction (of the row, not of its projection) says whether it is marked right.
            X, y = _drawn_points(X, y)
            predicted = self.predict(X)[1].reshape(len(y), -1)
            return plane.to_plane(X), y, predicted == y.reshape(len(y), -1)

        return dict(regions=regions, extent=extent, train=(*drawn(data.X_train, data.y_train), data.rows("train")),
                    test=(*drawn(data.X_test, data.y_test), data.rows("test")), class_names=data.class_names,
                    title=title, axis_labels=plane.axis_labels, description=plane.description,
                    multilabel=self.inputs.task.target == "labels")

    def _streamed_counts(self) -> tuple[float, np.ndarray | None]:
        """(test score, confusion counts) over every row of a streamed test split, added up block by block."""
        task = self.inputs.task
        counts = _CountingKeep(task, self.inputs.class_names)
        loss_fn = build_loss(self.config.train, self.dataset, self.device, self.loss_weights)
        batches = StreamSplit(self.dataset.stream, "test", self.device).batches()
        self.model.eval()
        with torch.inference_mode():
            _, score_sum = evaluate_stream(self.model, task, loss_fn, batches, self.outputs_are_probabilities,
                                           keep=None if task.target == "value" else counts)
        return float(score_sum) / self.dataset.rows("test"), counts.total

    def _confusion(self, plot_dir: Path, counts: np.ndarray, title: str):
        from clftrain.views.drawing import FigureJob

        path = plot_dir / "confusion_matrix.png"
        names = self.inputs.class_names
        if len(names) > MATRIX_CLASSES:
            self.notes.append(f"confusion_matrix.png not drawn: {len(names):,} classes are more than a picture can show "
                              f"({MATRIX_CLASSES:,} at most); clftrain eval writes the counts to eval.json")
            return None
        if self.inputs.task.target == "labels":
            return FigureJob("label_confusions", path, dict(matrices=counts, label_names=names,
                                                           title=f"{title}, per label"))
        return FigureJob("confusion_matrix", path, dict(counts=counts, class_names=names, title=title))

    def _weights_label(self) -> str:
        epoch = f", epoch {self.epoch}" if self.epoch is not None else ""
        return f"{self.checkpoint} checkpoint{epoch}"


def _confusion_counts(task: Task, class_names: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The confusion counts: [C, C] (rows: true class), or multi-label [L, 2, 2]."""
    from clftrain.inference import metrics

    if task.target == "labels":
        return metrics.label_confusions(y_true, y_pred)
    return metrics.confusion(y_true, y_pred, len(class_names))


class _CountingKeep:
    """What evaluate_stream's `keep` gets, a block's (probabilities, targets), turned into confusion counts at once."""

    def __init__(self, task: Task, class_names: list[str]) -> None:
        self.task, self.class_names, self.total = task, class_names, None

    def append(self, block: tuple[torch.Tensor, torch.Tensor]) -> None:
        probabilities, y = block
        counts = _confusion_counts(self.task, self.class_names, y.cpu().numpy(), to_labels(self.task, probabilities))
        self.total = counts if self.total is None else self.total + counts


def _model_for(config: Config, inputs: ModelInputs) -> nn.Module:
    """An untrained model of the run's architecture, sized by the checkpoint's inputs and classes."""
    return build_model(config.model, len(inputs.feature_names), inputs.task.out_features(len(inputs.class_names)),
                       config.train.loss)


def stacked_model(config: Config, inputs: ModelInputs, state: dict[str, torch.Tensor], source: object,
                  device: torch.device, replicas: int):
    """`replicas` replicas of the run's architecture as one batched model holding `state` (stacked tensors, as
    StackedMLP.part_state gives them), on `device`."""
    from clftrain.training import StackedMLP

    stacked = StackedMLP([_model_for(config, inputs) for _ in range(replicas)])
    stacked.load_part_state(0, state, source)
    return stacked.to(device)


def ensemble_run(config: Config, dataset: Dataset, state: dict[str, torch.Tensor], device: torch.device,
                 rows: list[dict[str, float]], checkpoint: str, epoch: int | None) -> TrainedRun:
    """A model.ensemble run as fit holds it: its members (`state`) predicting with their mean probability."""
    from clftrain.training import ReplicaEnsemble

    inputs = ModelInputs.from_dataset(dataset)
    stacked = stacked_model(config, inputs, state, "the ensemble's members", device, len(config.seeds))
    model = ReplicaEnsemble(stacked, inputs.task, expects_probabilities(config.train.loss))
    choice = ReplicaChoice(list(config.seeds), None, "ensemble", inputs.task, members=True)
    return TrainedRun(config, dataset, model, device, rows, checkpoint, inputs, epoch, {}, choice)


def ensemble_scores(run: TrainedRun) -> dict[str, float | None]:
    """The ensemble's loss and score on the validation and test splits, as eval computes them (a non-finite
    value, from a member that diverged, as None)."""
    data, metric = run.dataset, run.inputs.task.metric
    row: dict[str, float | None] = {}
    for split, X, y in (("val", data.X_val, data.y_val), ("test", data.X_test, data.y_test)):
        if X is None or not len(X):
            continue
        scored = run.score(X, y)
        for key, value in ((f"{split}_loss", scored.loss), (f"{split}_{metric}", scored.score)):
            row[key] = value if math.isfinite(value) else None
    return row


def _ensemble_recorded(run_dir: Path, checkpoint: str, epoch: int | None) -> dict[str, float]:
    """The test metrics fit recorded for a model.ensemble run's ensemble: summary.json's `final`, for last.pt
    when every member ended at the same epoch (else none: no one epoch to name)."""
    if checkpoint != rundir.LAST or epoch is None:
        return {}
    try:
        summary = rundir.read_json(run_dir / rundir.SUMMARY, "summary")
    except UserError:
        return {}
    final = summary.get("final") if isinstance(summary, dict) and "ensemble" in summary else None
    if not isinstance(final, dict) or final.get("epoch") != epoch:
        return {}
    return {"epoch": epoch, **{k: v for k, v in final.items() if k.startswith("test_") and isinstance(v, float)}}


@dataclass
class ReplicaChoice:
    """Which weights of a run trained with seeds a TrainedRun holds: one replica (`seed`), or the ensemble (None)."""

    seeds: list[int]
    seed: int | None
    why: str  # "--seed", "median" or "ensemble"
    task: Task  # the median is taken by the test split's value of the task's metric
    members: bool = False  # a model.ensemble run: the replicas are one model's members, the ensemble its default

    @classmethod
    def make(cls, seeds: list[int], seed: int | None, ensemble: bool, rows: list[dict], task: Task,
             source: Path, members: bool = False) -> ReplicaChoice:
        if seed is not None and ensemble:
            raise UserError("--seed and --ensemble exclude each other: pick one replica, or average them all")
        if ensemble or (members and seed is None):
            return cls(seeds, None, "ensemble", task, members)
        if seed is not None:
            if seed not in seeds:
                what = "member" if members else "replica"
                raise UserError(f"--seed {seed}: {source} has no {what} of that seed; its seeds are "
                                f"{', '.join(map(str, seeds))}")
            return cls(seeds, seed, "--seed", task, members)
        return cls(seeds, seeds[median_replica(rows, task)], "median", task)

    def describe(self) -> str:
        mean = f"mean {'prediction' if self.task.target == 'value' else 'probability'}"
        if self.members:
            whole = f"the ensemble of {len(self.seeds)} members (seeds {seed_list(self.seeds)})"
            return f"{whole}, their {mean}" if self.seed is None else f"member seed {self.seed} of {whole}"
        count = f"{len(self.seeds)} replicas"
        if self.seed is None:
            return f"the ensemble of {count} (their {mean})"
        if self.why == "median":
            return f"seed {self.seed}, the median of {count} by test {self.task.metric_label}"
        return f"seed {self.seed} of {count}"

    def to_dict(self) -> dict:
        return {"seeds": self.seeds, "seed": self.seed, "ensemble": self.seed is None, "why": self.why,
                "chosen": self.describe(), **({"members": len(self.seeds)} if self.members else {})}


def seed_list(seeds: list[int]) -> str:
    """`42-46` for consecutive seeds (an ensemble's), else `0, 3, 7`."""
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def median_replica(rows: list[dict], task: Task) -> int:
    """Index of the replica whose test metric is the median of the replicas' (the lower one of two middles; a
    replica without a finite value counts as the worst)."""
    column = f"test_{task.metric}"
    worst = -math.inf if task.higher_is_better else math.inf

    def value(i: int) -> float:
        v = rows[i].get(column) if rows[i] else None
        return v if v is not None and math.isfinite(v) else worst

    ranked = sorted(range(len(rows)), key=value)
    return ranked[(len(rows) - 1) // 2]


# Points of a split drawn on the decision boundary: more hide the regions and each other (and slow the figure);
# a fixed sample keeps every class that has rows.
BOUNDARY_POINTS = 5_000
# Classes beyond which a confusion matrix is not drawn (a million cells is no picture); eval.json keeps the counts.
MATRIX_CLASSES = 1_000


def _drawn_points(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(X) <= BOUNDARY_POINTS:
        return X, y
    rows = np.sort(np.random.default_rng(0).choice(len(X), BOUNDARY_POINTS, replace=False))
    return X[rows], y[rows]


def _load_or_point_to_the_other(run_dir: Path, checkpoint: str) -> dict:
    """The checkpoint asked for; when it is damaged, the error says whether the other one can stand in."""
    try:
        return rundir.load_checkpoint(rundir.checkpoint_path(run_dir, checkpoint))
    except UserError as exc:
        other = rundir.BEST if checkpoint == rundir.LAST else rundir.LAST
        try:
            rundir.load_checkpoint(rundir.checkpoint_path(run_dir, other))
        except UserError:
            raise exc from None
        raise UserError(f"{exc}; {other}.pt is intact: use --checkpoint {other}") from None


def _metrics_rows(run_dir: Path) -> tuple[list[dict[str, float]], list[str]]:
    """metrics.csv's rows, or none and a note when it is damaged (what needs rows, the curves, is left out)."""
    path = run_dir / rundir.METRICS
    if not path.exists():
        return [], []
    try:
        return rundir.read_metrics(path), []
    except UserError as exc:
        return [], [f"{exc}: the learning curves are left out"]


def check_same_run(payload: dict, config: Config, path: Path) -> None:
    """A checkpoint copied from another run must not stand in for this one's: its config must be config.yaml's
    (but for train.epochs, which a resume may raise, and where the run computes: device and threads)."""
    mine, theirs = config.to_dict(), dict(payload.get("config") or {})
    try:  # keys added since the checkpoint was written take their defaults, as in config.yaml
        theirs = validate_config(theirs, source=str(path), check_files=False).to_dict()
    except UserError:
        pass  # not a config at all: the comparison below names where it differs
    theirs["train"] = {**theirs.get("train", {}), "epochs": mine["train"]["epochs"]}
    theirs.update({key: mine[key] for key in ("device", "threads", "tracking", "report")})
    if mine != theirs:
        raise UserError(f"{path} belongs to another run: its config differs from config.yaml at "
                        f"{_first_difference(mine, theirs)}")


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')} ({b!r} in the checkpoint, {a!r} in config.yaml)"


def _check_one_seed(run_dir: Path, config: Config, seed: int | None, ensemble: bool) -> None:
    if ensemble:
        raise UserError(f"--ensemble needs a run trained with seeds; {run_dir} trained one model (seed {config.seed})")
    if seed is not None and seed != config.seed:
        raise UserError(f"--seed {seed}: {run_dir} trained one model, with seed {config.seed}; --seed picks a "
                        "replica of a run trained with seeds")


def _check_same_data(saved: ModelInputs, rebuilt: ModelInputs, config_file: Path) -> None:
    """The test split rebuilt from config.yaml must describe the same columns the model was trained on."""
    for what in ("feature_names", "class_names"):
        if getattr(saved, what) != getattr(rebuilt, what):
            raise UserError(
                f"the data rebuilt from {config_file} no longer matches the checkpoint: {what.replace('_', ' ')} "
                f"{getattr(rebuilt, what)} now, {getattr(saved, what)} when trained; the dataset (or the code "
                "that builds it) changed since training, so the run cannot be re-evaluated on it"
            )


def _resolve_device(requested: str | None, configured: str, config_file: Path) -> torch.device:
    from clftrain.training import resolve_device

    if requested is None:
        try:
            return resolve_device(configured)
        except UserError as exc:
            raise UserError(f"{config_file}: {exc}; or pass --device cpu to run this model here") from None
    if not re.fullmatch(DEVICE_PATTERN, requested):
        raise UserError(f"--device '{requested}': use auto, cpu, cuda, cuda:N or mps")
    return resolve_device(requested)
