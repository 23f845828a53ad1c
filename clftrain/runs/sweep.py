"""`clftrain sweep`: every combination of a grid of config values; combinations of one shape train as one batch.

`clftrain sweep CONFIG --grid train.lr=0.1,0.03 --grid model.layers=[8,8],[16,16]` makes one
config per combination of the grid's values (over CONFIG and its --set overrides). Every
combination trains as a run with seeds (`seeds: [seed]` when it names none: see runs/seeds.py).
Combinations that differ only in what each run of a batch holds on its own (PER_RUN_KEYS: the
seeds and initialisation, the optimizer, its settings and schedule, gradient clipping, how
often to save) have one shape and train together as one batched model, each with its own
optimizer; the shapes train one after another. The sweep directory holds one run directory
per combination, sweep.csv (one row per combination, best first) and sweep.json (the grid,
the batches and how the runs are ranked).

`--trials N` makes it a random search instead: --grid may then give distributions (`loguniform(1e-4,1e-1)`,
`uniform(a,b)`, `int(a,b)`, `choice(a,b)`; a plain list is a choice) and N combinations are drawn from them
(runs/search_space.py, seeded by `--search-seed`); the trials go the grid's way from there.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clftrain.config import (
    DOTTED_KEY, MAX_FOLDS, Config, InvalidConfig, apply_overrides, parse_overrides, parse_seeds, parse_value, read_config_mapping,
    validate_config,
)
from clftrain.errors import UserError
from clftrain.runs.search_space import Distribution, bounded, check_trials, draw_trials, match_call, value_text
from clftrain.store import rundir

# Keys in which the runs of one batch may differ: each run has its own replicas, optimizer and writer.
PER_RUN_KEYS = (
    "name", "seed", "seeds", "model.init", "train.optimizer", "train.lr", "train.momentum", "train.nesterov",
    "train.weight_decay", "train.grad_clip", "train.scheduler", "train.early_stopping", "train.log_every",
)
SWEEP_CSV = "sweep.csv"
MAX_COMBINATIONS = 256  # one sweep's runs (each a run directory); more is a typo or a search, not a grid
SWEEP_JSON = "sweep.json"


@dataclass
class Combination:
    index: int  # 1-based, in grid order (a search: in the order drawn)
    values: dict[str, Any]  # grid key -> its value in this combination
    config: Config
    dir_name: str  # its run directory, under the sweep directory


@dataclass
class SweepPlan:
    source: Path
    grid: dict[str, list[Any] | Distribution]  # a list: the values (a search: a choice); a search's distributions
    combinations: list[Combination]
    batches: list[list[Combination]] = field(default_factory=list)  # one shape each, in order of first appearance
    search: dict[str, int] | None = None  # a random search: {"trials": N, "seed": S}
    cv: int | None = None  # cross-validated on this many folds (dataset.cv_folds)
    halving: bool = False  # successive halving within each batch

    @property
    def name(self) -> str:
        return self.combinations[0].config.name


# ---------------------------------------------------------------------- the grid
def parse_grid(items: list[str], search: bool = False) -> dict[str, list[Any] | Distribution]:
    """`["train.lr=0.1,0.01", "model.layers=[8,8],[16]"]` -> {"train.lr": [0.1, 0.01], "model.layers": [[8, 8], [16]]}.

    `search` (--trials): a value may also be a distribution, `train.lr=loguniform(1e-4,1e-1)` -> Distribution."""
    if not items:
        raise UserError("sweep needs at least one --grid KEY=V1,V2,..., e.g. --grid train.lr=0.1,0.03,0.01")
    grid: dict[str, list[Any] | Distribution] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not DOTTED_KEY.fullmatch(key):
            raise UserError(f"--grid '{item}': expected KEY=V1,V2,... with a dotted key, e.g. --grid train.lr=0.1,0.01")
        if key in grid:
            raise UserError(f"--grid {key} is given twice; list all its values in one --grid {key}=V1,V2,...")
        grid[key] = _grid_entry(key, raw, search)
    return grid


def _grid_entry(key: str, raw: str, search: bool) -> list[Any] | Distribution:
    call = match_call(raw)
    if call is None:
        return _grid_values(key, raw)
    name, inner = call
    shown = raw.strip() if len(raw.strip()) <= 200 else raw.strip()[:197] + "..."
    if name == "choice":
        if not inner.strip():
            raise UserError(f"--grid {key}={shown}: choice needs one or more values, choice(a,b,...)")
        dist = Distribution("choice", tuple(_grid_values(key, inner)))
    else:
        dist = bounded(key, raw, name, inner)
    if not search:
        raise UserError(f"--grid {key}={shown}: a distribution is drawn from, not listed: add --trials N "
                        f"to draw N trials (a random search), or give the values of a grid, --grid {key}=A,B")
    return dist


def _grid_values(key: str, raw: str) -> list[Any]:
    texts = _split_top_level(raw)
    if not raw.strip() or any(not text.strip() for text in texts):
        raise UserError(f"--grid {key}={raw}: an empty value; give one or more values separated by commas, "
                        f"e.g. --grid {key}=A,B (lists in brackets: [8,8],[16])")
    values = []
    for text in texts:
        value = parse_value(text, f"--grid {key}: the value '{text.strip()[:200]}'")
        if value in values:
            raise UserError(f"--grid {key}: the value {text.strip()} is listed twice; list each value once")
        values.append(value)
    return values


def _split_top_level(raw: str) -> list[str]:
    """Split at commas outside brackets, braces and quotes: `[8,8],[16]` -> `[8,8]`, `[16]`."""
    parts, depth, quote, current = [], 0, None, ""
    for char in raw:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


# ---------------------------------------------------------------------- planning: validate every combination
def plan_sweep(config_path: Path, grid_items: list[str], set_items: list[str] | None = None,
               seeds: str | None = None, trials: int | None = None, search_seed: int | None = None,
               cv: int | None = None, halving: bool = False) -> SweepPlan:
    """Every combination validated (all problems reported at once, each naming its --grid key) and grouped.

    `trials`: a random search of that many combinations drawn from the grid's values and distributions, seeded
    by `search_seed` (default 0). `cv`: every combination cross-validated on that many folds (dataset.cv_folds:
    its folds are its replicas, so its validation mean and std are the folds'). `halving`: each batch's
    clearly worse runs pruned early (training/halving.py)."""
    config_path = Path(config_path)
    if cv is not None and not 2 <= cv <= MAX_FOLDS:
        raise UserError(f"--cv {cv}: cross-validation deals the training rows into 2 to {MAX_FOLDS} folds, each "
                        "validated by a model trained on the others; give --cv 5 (or 3 for small tables)")
    if trials is None and search_seed is not None:
        raise UserError(f"--search-seed {search_seed}: seeds the draws of a random search; add --trials N")
    if trials is not None:
        check_trials(trials, MAX_COMBINATIONS)
    raw = read_config_mapping(config_path)
    grid = parse_grid(grid_items, search=trials is not None)
    overrides = parse_overrides(set_items or [])
    both = sorted(set(grid) & set(overrides))
    if both:
        raise UserError(f"{', '.join(both)}: given both with --set and --grid; keep one")
    if seeds is not None:
        if "seeds" in grid or "seeds" in overrides:
            raise UserError("seeds: given both with --seeds and with --grid or --set; keep one")
        overrides["seeds"] = parse_seeds(seeds)
    if cv is not None:
        if "dataset.cv_folds" in grid or "dataset.cv_folds" in overrides:
            raise UserError("dataset.cv_folds: given both with --cv and with --grid or --set; keep --cv")
        overrides["dataset.cv_folds"] = cv
        if "dataset.val_size" not in grid and "dataset.val_size" not in overrides:
            overrides["dataset.val_size"] = 0  # --cv asks for folds in place of the config's validation split
    if trials is not None:
        search = {"trials": trials, "seed": 0 if search_seed is None else search_seed}
        space = {key: v if isinstance(v, Distribution) else Distribution("choice", tuple(v)) for key, v in grid.items()}
        combos = draw_trials(space, trials, search["seed"])
    else:
        search = None
        count = math.prod(len(values) for values in grid.values())
        if count > MAX_COMBINATIONS:
            sizes = " x ".join(f"{len(values)} {key}" for key, values in grid.items())
            raise UserError(f"the grid makes {count:,} combinations ({sizes}); a sweep trains at most "
                            f"{MAX_COMBINATIONS}: give fewer values")
        combos = _value_combinations(grid)
    configs, problems = [], []
    for values in combos:
        config = _validate(raw, overrides, values, config_path, problems)
        configs.append(config)
    if problems:
        counted = f"{len(combos)} trials drawn with --search-seed {search['seed']}" if search else \
            f"{len(combos)} combinations"
        raise UserError(f"invalid sweep of {config_path} ({counted}):\n"
                        + "\n".join(f"  - {line}" for line in dict.fromkeys(problems)))
    combinations = [Combination(i, values, config, _dir_name(i, values, grid))
                    for i, (values, config) in enumerate(zip(combos, configs), start=1)]
    return SweepPlan(config_path, grid, combinations, group_by_shape(combinations), search, cv, halving)


def _value_combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest (as nested loops in --grid order)."""
    import itertools

    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*grid.values())]


def _validate(raw: dict, overrides: dict[str, Any], values: dict[str, Any], source: Path,
              problems: list[str]) -> Config | None:
    origins = {key: f"--set {key}" for key in overrides}
    origins.update({key: f"--grid {key}" for key in values})  # the message shows the value
    try:
        data = apply_overrides(raw, {**overrides, **values})
    except UserError as exc:  # a key that goes through a value, `train.lr.x`: apply_overrides names it
        head, _, rest = str(exc).partition(": ")
        key = head.removeprefix("--set ").strip()
        problems.append(f"{'--grid' if key in values else '--set'} {key}: {rest}")
        return None
    folds = isinstance(data.get("dataset"), dict) and data["dataset"].get("cv_folds") is not None
    implicit_seeds = data.get("seeds") is None and not folds  # cross-validated: one seed per fold (schema.py)
    if implicit_seeds:  # every run of a sweep trains as replicas
        data["seeds"] = [data.get("seed", Config.model_fields["seed"].default)]
    if "seed" in values and (raw.get("seeds") is not None or "seeds" in overrides):
        problems.append(f"--grid seed: the config trains seeds {data['seeds']}, so `seed` is not used; "
                        "grid over seeds instead, e.g. --grid seeds=[0,1],[2,3]")
    try:
        return validate_config(data, source=str(source), set_keys=origins, base_dir=source.parent, decides=True)
    except InvalidConfig as exc:
        where = ", ".join(f"{key}={_text(value)}" for key, value in values.items())
        for line in exc.lines:
            if implicit_seeds and "used with seeds" in line:
                line += "; a sweep trains every run as replicas (seeds: [seed] when none are given)"
            problems.append(line if "--grid" in line else f"{line} (with {where})")
        return None


def _text(value: Any) -> str:
    """A grid value as the user would type it: 0.1, [8, 8], relu."""
    return value_text(value)


def _dir_name(index: int, values: dict[str, Any], grid: dict[str, list[Any]]) -> str:
    """`03-lr=0.01-layers=16-16`: index first (order, uniqueness), then short key=value pairs safe in a path."""
    shorts = [key.rsplit(".", 1)[-1] for key in grid]
    parts = []
    for key, short in zip(values, shorts):
        label = short if shorts.count(short) == 1 else key
        text = re.sub(r"[\[\]{}'\" ]", "", _text(values[key])).replace(",", "-").replace(":", "-")
        parts.append(f"{label}={re.sub(r'[^A-Za-z0-9._=+-]', '_', text)}")
    return f"{index:02d}-" + "-".join(parts)[:80]


def shape_key(config: Config) -> str:
    """What configs must share to train in one batch: everything but PER_RUN_KEYS."""
    data = config.to_dict()
    for dotted in PER_RUN_KEYS:
        node, *path = dotted.split(".")
        if path:
            data[node] = {k: v for k, v in data[node].items() if k != path[0]}
        else:
            data.pop(node, None)
    return json.dumps(data, sort_keys=True)


def group_by_shape(combinations: list[Combination]) -> list[list[Combination]]:
    batches: dict[str, list[Combination]] = {}
    for combo in combinations:
        batches.setdefault(shape_key(combo.config), []).append(combo)
    return list(batches.values())


# ---------------------------------------------------------------------- running
@dataclass
class SweepResult:
    sweep_dir: Path
    rows: list[dict[str, Any]]  # sweep.csv, best first
    ranked_by: str  # the sweep.csv column that orders the rows
    grid_keys: list[str]
    signal: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the sweep


def run_sweep(plan: SweepPlan, out: Path | None = None, runs_root: Path = Path("runs"),
              on_batch: Callable[[int, Any], list] | None = None) -> SweepResult:
    """Train the plan's batches one after another into a new sweep directory; sweep.csv is rewritten after each.

    Under torchrun the batches are dealt over the processes (process r trains batches r, r + N, ...), each
    into its runs' directories exactly as one process would; rank 0 creates the sweep directory and, at the
    end, gathers every process's rows into sweep.csv."""
    from clftrain.runs.lifecycle import on_main, write_config
    from clftrain.runs.seeds import train_group
    from clftrain.training import check_group, distributed, setup_group

    from clftrain.runs.tracking import check_trackers, ending_sweep, start_sweep_tracking

    check_trackers(plan.combinations[0].config, out if out is not None else runs_root / "(new sweep)")
    datasets = _datasets(plan)  # every data problem surfaces before anything is written
    for batch in plan.batches:
        check_group([c.config for c in batch], datasets[_data_key(batch[0].config)])
    world = distributed.join_world(_world_device(plan)) if distributed.launched() else None

    def create() -> Path:
        made = rundir.create_run_dir(f"{plan.name}-sweep", out, runs_root)
        _write(made / SWEEP_JSON, lambda path: rundir.write_json(path, _plan_record(plan)))
        start_sweep_tracking(plan.combinations[0].config, made, _plan_record(plan)["grid"])  # MLflow: the parent run
        return made

    sweep_dir = on_main(world, create)
    result = SweepResult(sweep_dir, [], _ranking_column(plan, datasets), list(plan.grid))
    main = world is None or world.is_main
    with ending_sweep(plan.combinations[0].config, sweep_dir, (SWEEP_CSV, SWEEP_JSON), main) as ended, \
            _signals_noted(result, world):
        for number, combos in enumerate(plan.batches, start=1):
            if world is not None and (number - 1) % world.size != world.rank:
                continue  # another process's batch
            if result.signal:  # a batch's training stopped by it, or noted between batches: none starts after it
                break
            group = setup_group([c.config for c in combos], datasets[_data_key(combos[0].config)])
            run_dirs = [rundir.create_run_dir(c.config.name, sweep_dir / c.dir_name) for c in combos]
            for member, run_dir in zip(group.members, run_dirs):
                write_config(run_dir, member.config)
            callbacks = [*(on_batch(number, group) if on_batch else []), *_halving(plan, group, result.ranked_by)]
            summaries, stopped_by = train_group(group, run_dirs, callbacks)
            result.signal = result.signal or stopped_by
            result.rows.extend(_row(c, s, number) for c, s in zip(combos, summaries))
            result.rows = _ranked(result.rows, result.ranked_by)
            if world is None:
                _write(sweep_dir / SWEEP_CSV, lambda path: rundir.atomic_write_text(path, _csv(result.rows)))
        if world is not None:
            rows = distributed.gather_all(result.rows, patient=True)  # the ranks' shares take unequal times
            result.rows = _ranked([row for part in rows for row in part], result.ranked_by)
            text = _csv(result.rows)
            on_main(world, lambda: _write(sweep_dir / SWEEP_CSV, lambda path: rundir.atomic_write_text(path, text)))
        ended.append("interrupted" if result.signal else "completed")
    return result


@contextlib.contextmanager
def _signals_noted(result: SweepResult, world) -> Iterator[None]:
    """Under torchrun, Ctrl-C or SIGTERM outside a batch's training (which stops on its own, after a step) is
    noted, not raised: a process waiting for the others' rows, or between its batches, still reaches the
    gathering of the rows (else the others' gathering fails on its closed connection), and starts no batch."""
    if world is None:
        yield
        return
    from clftrain.runs.lifecycle import signals_handled_by

    def note(signum, frame):
        result.signal = result.signal or signal.Signals(signum).name

    with signals_handled_by(note):
        yield


def _world_device(plan: SweepPlan):
    """The device whose backend the launch's processes share: the rows at the end, and --refit's data-parallel
    training after them (NCCL for CUDA, else gloo; a process group cannot be left and joined again safely:
    torchrun's store keeps the first one's addresses)."""
    import torch

    from clftrain.training import distributed, resolve_device

    device = distributed.rank_device(resolve_device(plan.combinations[0].config.device))
    return device if device.type == "cuda" else torch.device("cpu")


def _halving(plan: SweepPlan, group, ranked_by: str) -> list:
    """--halving: the batch's successive halving, on the column the sweep ranks by (without its _mean)."""
    if not plan.halving:
        return []
    from clftrain.training.halving import SuccessiveHalving

    return [SuccessiveHalving(group.members, ranked_by.removesuffix("_mean"), _higher_is_better(ranked_by),
                              group.config.train.epochs)]


def _higher_is_better(column: str) -> bool:
    return not column.startswith(("val_mae", "test_mae"))


def _data_key(config: Config) -> str:
    return json.dumps({"dataset": config.to_dict()["dataset"], "task": config.task}, sort_keys=True)


def _datasets(plan: SweepPlan) -> dict:
    """Each distinct dataset built once: batches that differ only in their model share it."""
    from clftrain.data import build_dataset

    datasets = {}
    for combo in plan.combinations:
        key = _data_key(combo.config)
        if key not in datasets:
            datasets[key] = build_dataset(combo.config)
    return datasets


def _ranking_column(plan: SweepPlan, datasets: dict) -> str:
    """Runs are ranked by their mean final validation score (a sweep always has a validation split: ranking is
    a decision, and the test split never decides)."""
    dataset = next(iter(datasets.values()))
    return f"val_{dataset.task.metric}_mean"


def _row(combo: Combination, summary: dict, batch: int) -> dict[str, Any]:
    row: dict[str, Any] = {"rank": None, "run": combo.dir_name}
    row.update({key: _text(value) for key, value in combo.values.items()})
    row.update(seeds=" ".join(map(str, summary["seeds"])), status=summary["status"])
    for column, stats in summary["spread"]["final"].items():
        if column.startswith(("val_", "test_")):
            row.update({f"{column}_{k}": stats[k] for k in ("mean", "std", "min", "max")})
    for column, stats in summary["spread"]["best"].items():
        if column.startswith(("val_", "test_")) and not column.endswith("_loss"):
            row[f"best_{column}_mean"] = stats["mean"]
    row.update(epochs_run=summary["epochs_run"], seconds=summary["seconds"], batch=batch)
    return row


def _ranked(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    higher_is_better = _higher_is_better(column)

    def key(row):
        value = row.get(column)
        if value is None or not math.isfinite(value):
            return (2, 0.0, 0.0)  # runs without a score go last
        # pruned runs after those that trained on: a score at an earlier epoch is not comparable; ties (small
        # validation splits' accuracies often tie) to the lower validation loss
        loss = row.get("val_loss_mean")
        tie = loss if isinstance(loss, float) and math.isfinite(loss) else math.inf
        return (int(row["status"] == "pruned"), -value if higher_is_better else value, tie)

    ranked = sorted(rows, key=key)
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    return ranked


def _csv(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))  # every row's keys, first-seen order
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _plan_record(plan: SweepPlan) -> dict:
    record = {
        "config": str(plan.source),
        # a search: each key's distribution as written, or the values it chose from
        "grid": {key: [values.text()] if isinstance(values, Distribution) else [_text(v) for v in values]
                 for key, values in plan.grid.items()},
        "runs": {c.dir_name: {key: _text(v) for key, v in c.values.items()} for c in plan.combinations},
        "batches": [[c.dir_name for c in batch] for batch in plan.batches],  # each trained as one batched model
    }
    if plan.search is not None:
        record["search"] = dict(plan.search)
    if plan.cv is not None:
        record["cv"] = {"folds": plan.cv}  # each run's replicas are its folds: val_*_mean/std are the folds'
    if plan.halving:
        from clftrain.training.halving import RATE, rung_epochs

        record["halving"] = {"rate": RATE, "rungs": [rung_epochs(len(batch), batch[0].config.train.epochs)
                                                     for batch in plan.batches]}  # per batch
    return record


def _write(path: Path, write: Callable[[Path], None]) -> None:
    try:
        write(path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose a writable location") from None
