"""`clftrain export RUN_DIR --format onnx`: a run's model as an ONNX file that needs no PyTorch, with its numeric
preprocessing folded in, and a JSON sidecar describing the rest.

The graph's inputs: `numeric` [rows, numeric columns] float32, raw values in the sidecar's column order (a
missing value as NaN where the run imputes that column), and, for a run with categorical columns, `categories`
[rows, one per category] float32, their one-hot encoding as the sidecar lists it (string categories are not
folded in: ONNX's core operators do not encode strings). Imputation, standardisation, the model and its output
activation are in the graph (the numeric transform too: robust_clip's smooth clipping, quantile's
piecewise-linear map); its outputs are `probabilities` (binary and regression: [rows, 1]) and `labels`,
as `clftrain predict` computes them at the default 0.5 threshold. An ensemble (a model.ensemble run, or
--ensemble) is one graph: every member's outputs as one batched model, their probabilities averaged in the graph.
A run trained with seeds exports its median replica unless --seed or --ensemble says otherwise; a model.ensemble
run exports its ensemble unless --seed picks a member. Exported with torch's own exporter
(torch.onnx, the torch.export-based one), from the optional `export` extra: onnx, onnxscript, onnxruntime.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from clftrain.data.features import CLIP_BOUND
from clftrain.errors import UserError
from clftrain.inference.trained import TrainedRun
from clftrain.store import rundir

FORMATS = ("onnx",)
EXTRA = "pip install 'clftrain[export]'"


class ExportedModel(nn.Module):
    """Raw numeric columns (and one-hot categories) -> (probabilities, labels), as predict computes them."""

    def __init__(self, run: TrainedRun) -> None:
        from clftrain.training import ReplicaEnsemble

        super().__init__()
        pre, numeric = run.inputs.preprocessor, run.inputs.preprocessor.numeric
        self.model, self.task, self.are_probabilities = run.model, run.inputs.task, run.outputs_are_probabilities
        # An ensemble: the members' stacked model, whose probabilities forward averages (not the outputs that
        # ReplicaEnsemble maps the mean back to, which predict's task.probabilities maps forward again).
        self.members = run.model.stacked if isinstance(run.model, ReplicaEnsemble) else None
        fill = [float(pre.fill[c]) if c in pre.fill else float("nan") for c in numeric]
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32))
        self.register_buffer("imputed", torch.tensor([c in pre.fill for c in numeric], dtype=torch.bool))
        scaled = pre.mean is not None
        self.register_buffer("mean", torch.tensor(pre.mean if scaled else [0.0] * len(numeric), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(pre.std if scaled else [1.0] * len(numeric), dtype=torch.float32))
        self.clip = scaled and pre.numeric_transform == "robust_clip"
        self.quantile = pre.knots is not None
        if self.quantile:
            self._register_quantiles(pre.knots, pre.scores)

    def _register_quantiles(self, knots: list[list[float]], scores: list[list[float]]) -> None:
        """quantile as sums over segments: f(x) = s0 + sum_i slope_i (clamp(x, k_i, k_i+1) - k_i), the segments
        of every column padded to the longest with empty ones (no width, no slope)."""
        segments = max(1, max(len(k) for k in knots) - 1)
        low, high, slope, first = [], [], [], []
        for k, v in zip(knots, scores):
            gaps = [(k[i], k[i + 1], (v[i + 1] - v[i]) / (k[i + 1] - k[i])) for i in range(len(k) - 1)]
            gaps += [(k[-1], k[-1], 0.0)] * (segments - len(gaps))
            low.append([g[0] for g in gaps]), high.append([g[1] for g in gaps]), slope.append([g[2] for g in gaps])
            first.append(v[0])
        for name, values in (("knot_low", low), ("knot_high", high), ("knot_slope", slope), ("knot_first", first)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.float64).float())

    def forward(self, numeric: torch.Tensor, categories: torch.Tensor | None = None):
        x = torch.where(torch.isnan(numeric) & self.imputed, self.fill, numeric)
        x = (x - self.mean) / self.std
        if self.clip:  # z / sqrt(1 + (z/3)^2); |z| bounded first, so that its square stays finite in float32
            x = x.clamp(-1e18, 1e18)
            x = x * torch.rsqrt(1 + (x / CLIP_BOUND) ** 2)
        if self.quantile:  # [rows, columns, segments] -> [rows, columns]
            part = torch.minimum(torch.maximum(x.unsqueeze(-1), self.knot_low), self.knot_high) - self.knot_low
            x = self.knot_first + (part * self.knot_slope).sum(dim=-1)
        if categories is not None:
            x = torch.cat([x, categories], dim=1)
        if self.members is not None:  # [members, rows, outputs] -> the members' mean probability
            probabilities = self.task.probabilities(self.members(x), self.are_probabilities).mean(dim=0)
        else:
            probabilities = self.task.probabilities(self.model(x), self.are_probabilities)
        return probabilities, self.task.labels(probabilities)


def export_run(run_dir: Path, fmt: str, out: Path | None, checkpoint: str = "last", seed: int | None = None,
               ensemble: bool = False, force: bool = False) -> tuple[Path, Path, list[str]]:
    """Write the model file and its sidecar (`<out>.json`); their paths and notes for the user."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: clftrain exports {', '.join(FORMATS)}")
    out = out or run_dir / f"model.{fmt}"
    sidecar = out.with_suffix(out.suffix + ".json")
    for path in (out, sidecar):
        rundir.check_output(path, force)
    try:
        import onnx  # noqa: F401 - torch.onnx writes through it
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError(f"ONNX export needs the onnx and onnxscript packages: {EXTRA}") from None
    run = TrainedRun.load(run_dir, checkpoint, "cpu", with_data=False, seed=seed, ensemble=ensemble)
    pre = run.inputs.preprocessor
    exported = ExportedModel(run).eval()
    width = sum(len(cats) for cats in pre.categorical.values())
    example = (torch.zeros(2, len(pre.numeric)), *([torch.zeros(2, width)] if pre.categorical else []))
    names = ["numeric", *(["categories"] if pre.categorical else [])]
    try:
        _write_onnx(exported, example, names, out)
        rundir.atomic_write_text(sidecar, json.dumps(describe(run, run_dir, names, checkpoint), indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; choose a writable location") from None
    notes = [f"categorical columns {', '.join(pre.categorical)} are inputs as their one-hot encoding "
             f"(`categories`, {width} columns, order in {sidecar.name}): ONNX's core operators do not encode "
             "strings"] if pre.categorical else []
    return out, sidecar, notes


def _write_onnx(exported: ExportedModel, example: tuple, names: list[str], out: Path) -> None:
    """torch.onnx's export, written whole or not at all (a temporary file, then renamed), without the
    exporter's own chatter (deprecations, axis names, optional packages it looked for) on the console."""
    rows = torch.export.Dim("rows")
    log = logging.getLogger("torch.onnx")
    level, partial = log.level, out.with_name(out.name + ".partial")
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(exported, example, dynamo=True, input_names=names,
                                        output_names=["probabilities", "labels"],
                                        dynamic_shapes=tuple({0: rows} for _ in names), verbose=False)
            program.save(str(partial))
        partial.replace(out)
    finally:
        log.setLevel(level)
        partial.unlink(missing_ok=True)


def describe(run: TrainedRun, run_dir: Path, inputs: list[str], checkpoint: str) -> dict:
    """The sidecar: what the graph's inputs and outputs mean, and the run it came from."""
    from clftrain.data import positive_index

    pre, task = run.inputs.preprocessor, run.inputs.task
    try:
        summary = rundir.read_json(run_dir / rundir.SUMMARY, "summary")
    except UserError:  # a run without its summary still exports; the sidecar has no metrics then
        summary = None
    binary = task.target == "class" and len(run.inputs.class_names) == 2
    return {
        "format": "onnx", "run": str(run_dir), "checkpoint": checkpoint, "task": task.name,
        "inputs": {"names": inputs, "numeric": pre.numeric,
                   "numeric_transform": pre.numeric_transform if pre.scaled else None,
                   "imputed": {c: pre.fill[c] for c in pre.numeric if c in pre.fill},
                   "categories": [f"{c}={v}" for c, cats in pre.categorical.items() for v in cats]},
        "outputs": {"probabilities": _probabilities_meaning(task.name, run.inputs.class_names),
                    "labels": {"binary": "1.0 where the probability is at least 0.5, else 0.0",
                               "multiclass": "the index of the most probable class in class_names",
                               "multilabel": "1.0 per label whose probability is at least 0.5",
                               "regression": "the predicted value"}[task.name]},
        "class_names": run.inputs.class_names,
        **({"positive_class": run.inputs.class_names[positive_index(run.config, task, run.inputs.class_names)],
            "threshold": 0.5} if binary else {}),
        "replica": run.replicas.to_dict() if run.replicas is not None else None,
        **({"ensemble": {"members": len(run.replicas.seeds), "seeds": run.replicas.seeds,
                         "averaged": "in the graph: the members' mean probability"}}
           if run.replicas is not None and run.replicas.seed is None else {}),
        "metrics": _metrics_of(run, summary),
    }


def _metrics_of(run: TrainedRun, summary) -> dict | None:
    """summary.json's final metrics of what was exported: the run's (a model.ensemble run: the ensemble's; seeds:
    their means), or the chosen replica's own."""
    if not isinstance(summary, dict):
        return None
    choice = run.replicas
    if choice is not None and choice.seed is not None:
        for replica in summary.get("replicas") or []:
            if isinstance(replica, dict) and replica.get("seed") == choice.seed:
                return replica.get("final")
    if choice is not None and choice.seed is None and "ensemble" not in summary:
        return None  # --ensemble of a run with seeds: summary.json has only the replicas' means
    return summary.get("final")


def _probabilities_meaning(task: str, class_names: list[str]) -> str:
    if task == "binary":
        return f"[rows, 1]: the probability of class '{class_names[1]}' (class_names[1])"
    if task == "regression":
        return "[rows, 1]: the predicted value"
    return f"[rows, {len(class_names)}]: one probability per entry of class_names"
