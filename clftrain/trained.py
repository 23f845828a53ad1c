"""A trained run: its config, data, model and metrics, in memory or loaded back from its directory.

`fit` builds one from what it just trained; `eval`, `plot` and `predict` load one
from the run directory alone (config.yaml, metrics.csv, a checkpoint): the test
split is rebuilt from the saved config, which fixes its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clftrain import plots, rundir
from clftrain.config import Config, load_config
from clftrain.data import Dataset, build_dataset
from clftrain.errors import UserError
from clftrain.inference import predict
from clftrain.losses import EXPECTS_PROBABILITIES
from clftrain.model import build_model


@dataclass
class TrainedRun:
    config: Config
    dataset: Dataset
    model: nn.Module
    device: torch.device
    rows: list[dict[str, float]]
    checkpoint: str = "last"  # which weights `model` holds

    @property
    def outputs_are_probabilities(self) -> bool:
        return self.config.train.loss in EXPECTS_PROBABILITIES

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, labels) for already-scaled features."""
        return predict(self.model, self.dataset.task, X, self.outputs_are_probabilities, self.device)

    @classmethod
    def load(cls, run_dir: Path, checkpoint: str = "last") -> TrainedRun:
        """Rebuild config, data and model from a run directory; torch.load never runs code from it."""
        from clftrain.device import resolve_device

        config_file = run_dir / rundir.CONFIG
        if not run_dir.is_dir():
            raise UserError(f"run directory not found: {run_dir}")
        if not config_file.is_file():
            raise UserError(f"{run_dir} is not a clftrain run directory (no {rundir.CONFIG})")
        config = load_config(config_file)
        payload = rundir.load_checkpoint(rundir.checkpoint_path(run_dir, checkpoint))
        dataset = build_dataset(config)
        device = resolve_device("cpu" if config.device == "auto" else config.device)
        model = build_model(config.model, dataset.n_features, dataset.task.out_features(dataset.n_classes),
                            config.train.loss)
        try:
            model.load_state_dict(payload["model"])
        except (RuntimeError, KeyError) as exc:
            raise UserError(
                f"checkpoint {checkpoint}.pt does not match the model in {config_file}: "
                f"{str(exc).splitlines()[-1].strip()}"
            ) from None
        metrics_file = run_dir / rundir.METRICS
        rows = rundir.read_metrics(metrics_file) if metrics_file.is_file() else []
        return cls(config, dataset, model.to(device), device, rows, checkpoint)

    def draw_plots(self, run_dir: Path) -> list[Path]:
        """Every plot of the run into run_dir/plots; returns the files written."""
        plot_dir = run_dir / rundir.PLOTS
        data = self.dataset
        train, test = (data.X_train, data.y_train), (data.X_test, data.y_test)
        metric = data.task.metric
        final = f"test {metric} {self.rows[-1][f'test_{metric}']:.2%}" if self.rows and metric == "acc" else (
            f"test MAE {self.rows[-1]['test_mae']:.4f}" if self.rows else "")
        title = f"{self.config.name} ({self.checkpoint} checkpoint) - {final}"
        written = []
        if data.task.name == "regression":
            path = plot_dir / "predictions.png"
            plots.regression_fit(path, lambda X: self.predict(X)[0][:, 0], train, test, title)
        else:
            path = plot_dir / "decision_boundary.png"
            plots.decision_boundary(path, lambda X: self.predict(X)[1], train, test, data.class_names, title)
        written.append(path)
        if self.rows:
            path = plot_dir / "curves.png"
            plots.learning_curves(path, self.rows, metric, f"{self.config.name}: learning curves")
            written.append(path)
        return written
