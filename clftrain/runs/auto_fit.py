"""`clftrain fit DATA.csv --target COLUMN [--budget 60s]`: a good model for a table without writing a config.

The steps, each sized to the time left of the budget (counted from the start of the fit command):

  1. the config `clftrain init` writes for the table (runs/scaffold.py, the same function: `model.preset:
     tabular`, a validation split), with the command's --set, --seed and --device; every check of the data
     and the config is made here, before anything is written;
  2. a probe: a few epochs of the search's batched model (and of one model alone), trained in memory and
     thrown away, time an epoch. A budget that cannot hold one epoch of the recipe is refused (exit 2);
  3. the stopping check (runs/stopping_check.py), where the time left holds it (CHECK_SHARE): the recipe
     cross-validated on 4 folds of the training and validation rows, early stopping against every epoch (twice
     the recipe's) on every row, one batched model trained in memory;
  4. when early stopping stays, a random search (runs/sweep.py: plan_sweep with trials, run_sweep) of TRIALS
     trials of train.lr and train.weight_decay (SPACE: keys every run of a batch holds on its own, so the trials
     are ONE batched model), its epochs capped so that it takes about SEARCH_SHARE of the time left, into
     RUN_DIR/search/ (when every epoch wins, none: the search ranks early-stopped trials on the validation split);
  5. the winner (the best validation score; the validation loss breaks ties) trained again as
     `model.ensemble: K` (K members, seeds seed..seed+K-1, as one batched model), K the most members whose
     expected epochs fit the time left (K = 1: the winner alone; stopped at an epoch's end where another
     would pass the budget: BudgetStop), into RUN_DIR itself, the usual run
     directory: its config.yaml is the config settled on, and eval, predict, plot, report and export use it.
     When every epoch won the check, the recipe's members train on the training and validation rows
     (dataset.val_size: 0) for the check's epochs, without early stopping.

RUN_DIR also holds init.yaml (the search's base config, as `clftrain init` writes it) and auto_fit.json (the
budget, the time used by each step, the probe's timings, every candidate's validation scores, the winner, the
stopping check's scores per fold and its choice, the ensemble's size and why).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clftrain.errors import UserError
from clftrain.readers import PARQUET_SUFFIXES, is_parquet
from clftrain.runs import stopping_check

DEFAULT_BUDGET = "60s"
TRIALS = 8  # the search's trials, at most (fewer where the budget holds fewer)
SPACE = {"train.lr": "loguniform(0.0003, 0.003)", "train.weight_decay": "loguniform(1e-06, 0.001)"}
SEARCH_SHARE = 0.5  # of the time left for training when the search starts (after the stopping check)
# the stopping check and its cheapest final run (one member), at most, of the time left (0.8 skipped it on
# bench-quality's cars at the default 60 s: 41 s planned of 51)
CHECK_SHARE = 0.9
MAX_MEMBERS = 8
MIN_SEARCH_EPOCHS = 16  # a search of fewer epochs (of a config's 64 or more) compares learning rates unfairly
PROBE_EPOCHS = 3  # timed epochs of the probe, at most
PROBE_SHARE = 0.05  # of the budget: the probe stops after an epoch past it
PLOT_GUESS_S = 2.0  # a trial's plots, before any was drawn (run_sweep draws every trial's; measured afterwards for the final run)
END_GUESS_S = 3.0  # the final run's checkpoints, plots and report, before any plot was drawn
REPORT_FACTOR = 2.0  # the final run's plots and report.html against a trial's plots
SETUP_MARGIN_S = 0.5  # building a group's model and optimizers, writing its files
EXPECTED_STRETCH = 1.25  # an ensemble's members stop later than the winner alone, the last one decides
SEARCH_DIR = "search"
BASE_CONFIG = "init.yaml"
RECORD = "auto_fit.json"
COUNTED = "from the start of the fit command (Python's start and the command line's import, about 0.3 s, not counted)"

CONFIG_SUFFIXES = {".yaml", ".yml"}
CSV_SUFFIXES = {".csv"}
DECIDED_KEYS = {"seeds": "--seed S (the ensemble's members are seeds S, S+1, ...)",
                "model.ensemble": "--budget (the ensemble's size is sized to it)",
                "tracking": "a config: clftrain init DATA --target COLUMN, then clftrain fit CONFIG --track ..."}
_BUDGET = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*",
                     re.IGNORECASE)


# ---------------------------------------------------------------------- what the command line gives
def is_table(path: Path, target: str | None) -> bool:
    """Whether `clftrain fit PATH` names a data table rather than a config: by its suffix (.yaml/.yml: a config;
    .csv, .parquet, a folder of Parquet files: a table); another suffix is a table when --target is given."""
    suffix = path.suffix.lower()
    if suffix in CONFIG_SUFFIXES:
        return False
    if suffix in CSV_SUFFIXES | PARQUET_SUFFIXES:
        return True
    if path.is_dir():
        return any(path.glob("*.parquet")) or target is not None
    return target is not None


def parse_budget(text: str) -> float:
    """`60s`, `90` (seconds), `5m`, `1.5h` -> seconds; a UserError naming the value otherwise."""
    match = _BUDGET.fullmatch(text or "")
    if not match:
        raise UserError(f"--budget {text!r}: expected a time such as 60s, 90 (seconds), 5m or 1h")
    seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[(match.group(2) or "s")[0].lower()]
    if seconds <= 0:
        raise UserError(f"--budget {text!r}: the budget must be more than 0 seconds, e.g. --budget 60s")
    if seconds > 7 * 24 * 3600:
        raise UserError(f"--budget {text!r}: at most a week (7 * 24h); for longer training write a config "
                        "(clftrain init DATA --target COLUMN) and fit it")
    return seconds


def check_target(data: Path, target: str | None) -> None:
    """A table without --target: a UserError naming the table's columns."""
    if target is not None:
        return
    columns = _header(data)
    listed = f" (its columns: {', '.join(columns[:30])}{', ...' if len(columns) > 30 else ''})" if columns else ""
    raise UserError(f"{data} is a data table: name the column to predict with --target COLUMN{listed}, e.g. "
                    f"clftrain fit {data} --target {columns[-1] if columns else 'COLUMN'}")


def _header(data: Path) -> list[str]:
    import csv

    if is_parquet(data):
        from clftrain.data.arrow_tables import read_column_names

        try:
            return read_column_names(data)
        except UserError:
            return []
    try:
        with data.open(newline="", encoding="utf-8-sig") as f:
            return [name.strip() for name in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


# ---------------------------------------------------------------------- the record of what it chose
@dataclass
class Candidate:
    run: str  # its run directory under RUN_DIR/search
    values: dict[str, Any]  # the searched keys' values
    score: float | None  # final validation metric (mean over its one seed)
    val_loss: float | None
    epochs_run: int
    stopped_early: bool
    status: str


@dataclass
class AutoFitResult:
    run_dir: Path | None
    summary: dict[str, Any]  # the final run's summary.json ({} when it did not run)
    record: dict[str, Any]  # auto_fit.json
    signal: str | None = None


class Interrupted(Exception):
    """A signal stopped the command before the final run started (the probe: nothing written; the search:
    RUN_DIR holds init.yaml and the search's runs)."""

    def __init__(self, signal: str, run_dir: Path | None) -> None:
        super().__init__(signal)
        self.signal, self.run_dir = signal, run_dir


class Quiet:
    """What auto_fit tells as it goes (views/auto_fit.py shows it): every hook optional."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclass
class Clock:
    started: float  # time.monotonic() at the start of the command
    budget: float
    marks: dict[str, float] = field(default_factory=dict)

    def used(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.budget - self.used()

    def mark(self, phase: str, since: float) -> float:
        self.marks[phase] = round(time.monotonic() - since, 3)
        return self.marks[phase]


# ---------------------------------------------------------------------- the command
def auto_fit(data: Path, target: str | None, budget_text: str | None, started: float, out: Path | None = None,
             runs_root: Path = Path("runs"), overrides: list[str] | None = None, seed: int | None = None,
             device: str | None = None, report: bool = True, view: Any = None,
             search_callbacks: Callable[[int, Any, list[str]], list] | None = None, final_callbacks=(),
             on_model=None) -> AutoFitResult:
    """Fit `data` predicting `target` within the budget (`started`: time.monotonic() when the command started)."""
    view = view or Quiet()
    check_target(data, target)
    budget_text = budget_text if budget_text is not None else DEFAULT_BUDGET
    clock = Clock(started, parse_budget(budget_text))
    if out is not None and (out.exists() or out.is_symlink()):
        raise UserError(f"output directory {out} already exists; choose a new --out path (clftrain never "
                        "overwrites a run)")
    fixed = _fixed_overrides(overrides, seed, device)
    space = {key: dist for key, dist in SPACE.items() if key not in fixed}

    # 1. init's config, in memory; every check of data and config before anything is written
    phase = time.monotonic()
    from clftrain.config import apply_overrides, validate_config
    from clftrain.runs.scaffold import run_name, scaffold_config

    run_dir = out if out is not None else _default_run_dir(runs_root, run_name(data))
    text, notes = scaffold_config(data, target, run_dir / BASE_CONFIG)
    import yaml

    raw = yaml.safe_load(text)
    origins = {key: _origin(key, seed, device) for key in fixed}
    base = validate_config(apply_overrides(raw, fixed), source=f"clftrain fit {data}", set_keys=origins,
                           base_dir=run_dir)
    view.read(data=data, target=target, budget=clock.budget, budget_text=budget_text, notes=notes,
              epochs=base.train.epochs)
    clock.mark("setup", phase)

    # 2. the probe: an epoch's cost for one model and for the search's batch; the budget refused if too small
    phase = time.monotonic()
    probe = _probe(raw, fixed, origins, base, run_dir, clock, TRIALS if space else 1)
    clock.mark("probe", phase)
    _refuse_small_budget(probe, base, clock, report)
    check_plan = _check_plan(probe, base, clock, report)
    view.probed(probe=probe, check=check_plan, used=clock.used())

    from clftrain.store import rundir

    run_dir = rundir.create_run_dir(run_name(data), run_dir)
    try:
        rundir.atomic_write_text(run_dir / BASE_CONFIG, text)
    except OSError as exc:
        raise UserError(f"cannot write {run_dir / BASE_CONFIG}: {exc.strerror or exc}") from None

    # 3. the stopping check: early stopping, or every epoch on every row
    check = _stopping_check(raw, fixed, origins, run_dir, base, check_plan, clock)
    view.checked(check=check)
    if check.signal:
        raise Interrupted(check.signal, run_dir)

    # 4. the search (when early stopping stays), into RUN_DIR/search
    plan = _plan(probe, base, clock, space, report) if not check.long else \
        {**NO_SEARCH, "epochs": check.epochs, "why": "every epoch won the stopping check, and the search compares "
         "early-stopped trials on the validation split"}
    view.planned(plan=plan, budget=clock.budget, used=clock.used(), space=space)
    record = _record_start(data, target, clock, probe, plan, space, base)
    record["stopping_check"] = check.record()
    _write_record(run_dir, record)
    candidates, winner, search_summaries = [], None, []
    if plan["trials"] >= 2:
        phase = time.monotonic()
        candidates, signal, search_summaries = _search(run_dir, fixed, space, plan, base, search_callbacks)
        clock.mark("search", phase)
        winner = _winner(candidates, probe["task_metric"])
        record["search"].update(seconds=clock.marks["search"], candidates=[_candidate_record(c) for c in candidates],
                                winner=winner.run if winner else None, ranked_by=_ranking_text(probe))
        _write_record(run_dir, record)
        view.searched(candidates=candidates, winner=winner, metric=probe["task_metric"], seconds=clock.marks["search"],
                      planned=plan["search_seconds"], search_dir=run_dir / SEARCH_DIR, space=space)
        if signal:
            raise Interrupted(signal, run_dir)
    values = dict(winner.values) if winner else {}

    # 5. the winner as an ensemble sized to what is left
    long = stopping_check.long_settings(check.epochs) if check.long else {}
    final = _final_plan(probe, plan, clock, winner, search_summaries, report, every_row=check.long)
    settings = {**fixed, **values, **long, **({"model.ensemble": final["members"]} if final["members"] > 1 else {}),
                **({"train.epochs": final["epochs"]} if final["epochs"] < plan["epochs"] else {}),
                **({} if report else {"report": False})}
    config = validate_config(apply_overrides(raw, settings), source=f"clftrain fit {data} (the final run)",
                             set_keys=origins, base_dir=run_dir)
    record["final"] = {**final, "values": {k: values[k] for k in values}, "seed": config.seed,
                       "seeds": config.seeds if final["members"] > 1 else [config.seed]}
    _write_record(run_dir, record)
    view.final_planned(final=final, winner=winner, values=values, seed=config.seed, left=clock.left())
    phase = time.monotonic()
    from clftrain.runs.seeds import fit_seeds
    from clftrain.runs.single import fit_single

    fit = fit_seeds if config.seeds is not None else fit_single
    ceiling = BudgetStop(clock, final["reserved_seconds"] - probe["data_seconds"])
    result = fit(config, callbacks=[*final_callbacks, ceiling], on_model=on_model, restart=run_dir)
    clock.mark("final", phase)
    record["final"]["stopped_by_budget_at"] = ceiling.stopped_at
    record.update(seconds=round(clock.used(), 3), phases=dict(clock.marks),
                  within_budget=clock.used() <= clock.budget)
    record["final"].update(seconds=clock.marks["final"], epochs_run=result.summary.get("epochs_run"),
                           status=result.summary.get("status"))
    _write_record(run_dir, record)
    return AutoFitResult(run_dir, result.summary, record, result.signal)


def _fixed_overrides(overrides: list[str] | None, seed: int | None, device: str | None) -> dict[str, Any]:
    from clftrain.config import parse_overrides

    fixed = parse_overrides(overrides or [])
    for key, instead in DECIDED_KEYS.items():
        if key in fixed:
            raise UserError(f"--set {key}: clftrain fit DATA decides it; use {instead}")
    for flag, key, value in (("--seed", "seed", seed), ("--device", "device", device)):
        if value is not None:
            if key in fixed:
                raise UserError(f"{key}: given both with {flag} and with --set {key}; keep one")
            fixed[key] = value
    return fixed


def _origin(key: str, seed, device) -> str:
    return {"seed": "--seed" if seed is not None else "--set seed",
            "device": "--device" if device is not None else "--set device"}.get(key, f"--set {key}")


def _default_run_dir(root: Path, name: str) -> Path:
    """runs/<YYYYmmdd-HHMMSS>-<name> as store.rundir names a run (its stamp: the command's start), -2, -3, ...
    when taken; created only once every check has passed."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        path = root / (f"{stamp}-{name}" if attempt == 1 else f"{stamp}-{name}-{attempt}")
        if not path.exists():
            return path
    raise UserError(f"too many runs named '{name}' started at {stamp} in {root}")


# ---------------------------------------------------------------------- the probe
class _EpochClock:
    """Times each evaluated epoch and stops the loop after `epochs` of them or `soft` seconds (after one)."""

    def __init__(self, epochs: int, soft: float) -> None:
        self.epochs, self.soft, self.ends = epochs, soft, []

    def on_fit_start(self, trainer) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer, row) -> None:
        self.ends.append(time.perf_counter())
        if len(self.ends) >= self.epochs or self.ends[-1] - self.start > self.soft:
            trainer.stop()

    def on_fit_end(self, trainer) -> None: ...

    def epoch_seconds(self) -> float | None:
        if not self.ends:
            return None
        if len(self.ends) == 1:
            return self.ends[0] - self.start  # the first epoch, warm-up included: an upper bound
        return statistics.median(b - a for a, b in zip(self.ends, self.ends[1:]))


def _probe(raw: dict, fixed: dict, origins: dict, base, run_dir: Path, clock: Clock, trials: int) -> dict[str, Any]:
    """The time of an epoch for one model and for `trials` as one batched model (the search's shape: the trials
    differ only in keys each run of a batch holds on its own), and of reading the data and building a model."""
    from clftrain.config import apply_overrides, validate_config
    from clftrain.data import build_dataset

    settings = {**fixed, "seeds": [base.seed], "train.epochs": PROBE_EPOCHS + 1, "train.eval_every": 1,
                "report": False}
    config = validate_config(apply_overrides(raw, settings), source="the probe", set_keys=origins,
                             base_dir=run_dir, decides=True)
    configs = [config.model_copy(deep=True) for _ in range(trials)]
    started = time.monotonic()
    dataset = build_dataset(config)
    data_seconds = time.monotonic() - started
    if dataset.stream is not None:
        raise UserError(f"{dataset_name(base)} is larger than dataset.memory_limit, and clftrain fit DATA trains "
                        "its search as one batched model in memory; add --set dataset.stream=false (if it fits in "
                        "memory), or write a config (clftrain init) and fit that")
    one = _time_epochs(configs[:1], dataset, clock)
    batch = _time_epochs(configs, dataset, clock) if trials > 1 else one
    return {"data_seconds": round(data_seconds, 3), "epoch_seconds": {1: one["epoch"], trials: batch["epoch"]},
            "setup_seconds": {1: one["setup"], trials: batch["setup"]}, "trials": trials,
            "task_metric": dataset.task.metric, "metric_label": dataset.task.metric_label,
            "task": dataset.task.name, "train_rows": dataset.rows("train"), "val_rows": dataset.rows("val"),
            "test_rows": dataset.rows("test"), "device": one["device"]}


def _yaml(value: Any) -> str:
    from clftrain.runs.search_space import value_text

    return value_text(value)


def _time_epochs(configs: list, dataset, clock: Clock) -> dict[str, Any]:
    """Set up `configs` as one group and time a few epochs (the weights are thrown away); past the budget,
    a watchdog stops it within its epoch and the budget is refused as too small."""
    from clftrain.runs.lifecycle import train_in_memory
    from clftrain.training import setup_group

    started = time.monotonic()
    group = setup_group(configs, dataset)
    setup = time.monotonic() - started
    trainer = group.trainer
    timer = _EpochClock(PROBE_EPOCHS, max(PROBE_SHARE * clock.budget, 0.0))
    trainer.callbacks = [*group.deciders(), timer]
    received = train_in_memory(trainer, configs[0].threads, clock.left())
    if received:
        raise Interrupted(received[0], None)
    seconds = timer.epoch_seconds()
    if seconds is None:  # stopped within the first epoch: the budget ran out
        done = (trainer.partial or {}).get("next_step", 0)
        steps = -(-dataset.rows("train") // (group.config.train.batch_size or dataset.rows("train")))
        spent = time.perf_counter() - timer.start
        epoch = f"about {spent * steps / done:.0f} s" if done else f"more than {spent:.0f} s"
        raise UserError(f"--budget {clock.budget:g}s is too small for {dataset_name(configs[0])}: starting and "
                        f"reading it took {clock.used() - spent:.1f} s, and one epoch of the recipe "
                        f"({len(configs)} model{'s' * (len(configs) > 1)}) takes {epoch}; nothing was written. "
                        "Give a larger --budget, or a config with fewer rows or a smaller model")
    return {"epoch": round(seconds, 5), "setup": round(setup, 3), "device": str(group.device)}


def dataset_name(config) -> str:
    return str(getattr(config.dataset, "path", config.dataset.name))


# ---------------------------------------------------------------------- sizing
def _epoch_cost(probe: dict, replicas: int) -> float:
    """Seconds of an epoch of `replicas` models as one batch: the line through the probe's two timings (one
    model, the search's batch), never below one model's."""
    points = sorted(probe["epoch_seconds"].items())
    (n1, c1), (n2, c2) = points[0], points[-1]
    if n2 == n1:
        return c1 * replicas
    slope = max((c2 - c1) / (n2 - n1), 0.0)
    return max(c1 + slope * (replicas - n1), c1)


def _setup_cost(probe: dict, replicas: int) -> float:
    points = sorted(probe["setup_seconds"].items())
    return max(value for _, value in points) * max(1.0, replicas / points[-1][0]) + SETUP_MARGIN_S


def _end_guess(report: bool) -> float:
    return END_GUESS_S if report else END_GUESS_S / REPORT_FACTOR


def _final_fixed(probe: dict, report: bool) -> float:
    """The final run's seconds besides its epochs: reading the data, setting up, its files."""
    return probe["data_seconds"] + _setup_cost(probe, 1) + _end_guess(report)


def _refuse_small_budget(probe: dict, base, clock: Clock, report: bool) -> None:
    """The budget refused when not even one epoch of one model, and the final run's files, fit."""
    epochs, end = base.train.epochs, _end_guess(report)
    least = clock.used() + _final_fixed(probe, report) + _epoch_cost(probe, 1)
    if least > clock.budget:
        full = least + _epoch_cost(probe, 1) * (epochs - 1) + probe["data_seconds"] + _setup_cost(probe, TRIALS) \
            + TRIALS * PLOT_GUESS_S + _epoch_cost(probe, TRIALS) * epochs
        raise UserError(f"--budget {clock.budget:g}s is too small for {dataset_name(base)}: starting, reading it and "
                        f"timing the recipe took {clock.used():.1f} s, an epoch of the recipe takes "
                        f"{_epoch_cost(probe, 1):.2f} s, and a run's files (checkpoints, plots"
                        f"{', report' if report else ''}) about {end:.0f} s more; nothing was written. Give at least "
                        f"--budget {math.ceil(least + 1)}s (one run of few epochs), about {math.ceil(full)}s for a "
                        f"search of {TRIALS} trials and a final run of the recipe's {epochs} epochs each")


NO_SEARCH = {"trials": 0, "search_epochs": 0, "search_seconds": 0.0}


def _plan(probe: dict, base, clock: Clock, space: dict, report: bool) -> dict[str, Any]:
    """How many trials of how many epochs the search trains, in about SEARCH_SHARE of the time left for
    training (what the final run's fixed costs leave)."""
    epochs = base.train.epochs
    share = SEARCH_SHARE * (clock.left() - _final_fixed(probe, report))
    least_epochs = max(1, min(MIN_SEARCH_EPOCHS, epochs // 4))
    for trials in ([TRIALS, 6, 4, 2] if space else []):
        fixed = probe["data_seconds"] + _setup_cost(probe, trials) + trials * PLOT_GUESS_S
        affordable = int((share - fixed) // _epoch_cost(probe, trials)) if share > fixed else 0
        if affordable >= least_epochs:
            search_epochs = min(epochs, affordable)
            seconds = fixed + search_epochs * _epoch_cost(probe, trials)
            return {"trials": trials, "search_epochs": search_epochs, "search_seconds": round(seconds, 1),
                    "epochs": epochs, "why": None}
    why = ("--set fixed every searched key" if not space else
           f"the budget holds fewer than {least_epochs} epochs of 2 trials in its search share "
           f"({max(share, 0):.1f} s)")
    return {**NO_SEARCH, "epochs": epochs, "why": why}


def _all_rows(probe: dict) -> float:
    """The training and validation rows against the training rows: an epoch's cost when every epoch's final
    run trains on them all."""
    return (probe["train_rows"] + probe["val_rows"]) / max(probe["train_rows"], 1)


def _check_costs(probe: dict, epochs: int) -> tuple[float, float]:
    """(the stopping check's seconds: its folds train on (K-1)/K of the training and validation rows, about as
    many as the training rows; the cheapest final run after it: one member trained every epoch on all of them)"""
    folds = stopping_check.FOLDS
    check = probe["data_seconds"] + _setup_cost(probe, folds) + _epoch_cost(probe, folds) * epochs
    return check, _setup_cost(probe, 1) + _epoch_cost(probe, 1) * epochs * _all_rows(probe)


def _check_plan(probe: dict, base, clock: Clock, report: bool) -> dict[str, Any]:
    """Whether the stopping check runs: the recipe stops early on a validation split, and the check with the
    cheapest final run after it take at most CHECK_SHARE of the time left for training."""
    epochs = stopping_check.LONG_FACTOR * base.train.epochs
    if base.train.early_stopping is None or not probe["val_rows"]:
        return {"seconds": 0.0, "epochs": epochs, "why": "the config trains every epoch already (no early stopping "
                "or no validation split)"}
    room = clock.left() - _final_fixed(probe, report)
    check, final = _check_costs(probe, epochs)
    if check + final > CHECK_SHARE * room:
        return {"seconds": 0.0, "epochs": epochs,
                "why": f"it would take about {check:.0f} s and a final run of every epoch {final:.0f} s more, over "
                       f"{CHECK_SHARE:.0%} of the {max(room, 0):.0f} s left for training"}
    return {"seconds": round(check, 1), "epochs": epochs, "folds": stopping_check.FOLDS, "why": None}


def _final_plan(probe: dict, plan: dict, clock: Clock, winner: Candidate | None, summaries: list[dict],
                report: bool, every_row: bool = False) -> dict[str, Any]:
    """The final run's members K and epochs cap: the most members (up to MAX_MEMBERS) whose expected epochs fit
    the time left once the run's fixed costs (data, set-up, checkpoints, plots, report) are reserved.
    `every_row`: every epoch won the stopping check, the members train all the plan's epochs on every row."""
    epochs = plan["epochs"]
    rows = _all_rows(probe) if every_row else 1.0
    plots = [s.get("timings", {}).get("plots") for s in summaries]
    plots = [p for p in plots if isinstance(p, (int, float))]
    end = (statistics.median(plots) * (REPORT_FACTOR if report else 1.0) + 0.5) if plots else \
        (END_GUESS_S if report else END_GUESS_S / REPORT_FACTOR)
    if winner is not None and summaries:  # the search's own epochs: the batch's seconds over its longest run
        seconds = max(s.get("seconds") or 0 for s in summaries)
        longest = max(s.get("epochs_run") or 0 for s in summaries)
        if seconds and longest:
            probe["epoch_seconds"][len(summaries)] = round(seconds / longest, 5)
    if every_row:
        expected = epochs
        because = f"every epoch won the stopping check: its members train all {epochs} epochs on the " \
                  f"{probe['train_rows'] + probe['val_rows']:,} training and validation rows"
    elif winner is not None and winner.stopped_early:
        expected = min(epochs, math.ceil(EXPECTED_STRETCH * winner.epochs_run))
        because = f"the winner stopped early at epoch {winner.epochs_run}; its members are expected to stop by " \
                  f"epoch {expected}"
    else:
        expected = epochs
        because = ("the winner ran to the search's cap" if winner is not None else "no search") + \
            f": its members may need every one of the {epochs} epochs"
    available = clock.left() - end - probe["data_seconds"]
    members = 1
    for k in range(MAX_MEMBERS, 0, -1):
        if _setup_cost(probe, k) + _epoch_cost(probe, k) * rows * expected <= available:
            members = k
            break
    cost = _epoch_cost(probe, members) * rows
    cap = max(1, min(epochs, int((available - _setup_cost(probe, members)) // cost) if available > 0 else 1))
    return {"members": members, "epochs": cap, "expected_epochs": expected, "epoch_seconds": round(cost, 5),
            "reserved_seconds": round(end + probe["data_seconds"], 2), "left_seconds": round(clock.left(), 2),
            "why": f"{because}; {members} member{'s' * (members > 1)} of about {cost:.3f} s an epoch "
                   f"{'is the most that fits' if members < MAX_MEMBERS else f'(at most {MAX_MEMBERS})'} in the "
                   f"{max(available, 0):.1f} s left after {end + probe['data_seconds']:.1f} s reserved for reading "
                   f"the data and writing the run's files"}


class BudgetStop:  # a training.Callback by its hooks, as _EpochClock: this module stays free of torch (cli imports it)
    """Ends the final run at an evaluated epoch's end once another epoch (as long as the last) would not finish
    before the budget, `reserve` seconds kept for the run's files: the members' sizing is an estimate, the
    budget a ceiling. The run ends completed there, with its best weights kept as after early stopping."""

    def __init__(self, clock: Clock, reserve: float) -> None:
        self.clock, self.reserve = clock, max(reserve, 0.0)
        self.last, self.stopped_at = 0.0, None

    def on_fit_start(self, trainer) -> None:
        self.last = time.monotonic()

    def on_epoch_end(self, trainer, row) -> None:
        now = time.monotonic()
        epoch, self.last = now - self.last, now
        if trainer.epoch < trainer.cfg.epochs and self.clock.left() - self.reserve < epoch:
            trainer.stop("completed")
            self.stopped_at = trainer.epoch

    def on_fit_end(self, trainer) -> None: ...


# ---------------------------------------------------------------------- the stopping check
def _stopping_check(raw: dict, fixed: dict, origins: dict, run_dir: Path, base, planned: dict,
                    clock: Clock) -> stopping_check.CheckResult:
    """The check (runs/stopping_check.py) on the recipe's settings when the plan holds it; skipped, with why,
    otherwise."""
    if planned["why"]:
        return stopping_check.skipped(f"not run: {planned['why']}")
    from clftrain.config import apply_overrides, validate_config

    config = validate_config(apply_overrides(raw, {**fixed, **stopping_check.check_settings(planned["epochs"])}),
                             source="the stopping check", set_keys=origins, base_dir=run_dir)
    phase = time.monotonic()
    result = stopping_check.run_check(config, base.train.early_stopping, base.train.restore_best,
                                      planned["seconds"])
    clock.mark("check", phase)
    return result


# ---------------------------------------------------------------------- the search
def _search(run_dir: Path, fixed: dict, space: dict, plan: dict, base, on_batch) -> tuple[list, str | None, list]:
    from clftrain.runs.sweep import plan_sweep, run_sweep
    from clftrain.store import rundir

    settings = [f"{key}={_yaml(value)}" for key, value in fixed.items()]
    if plan["search_epochs"] < base.train.epochs:
        settings.append(f"train.epochs={plan['search_epochs']}")
    sweep = plan_sweep(run_dir / BASE_CONFIG, [f"{key}={dist}" for key, dist in space.items()],
                       [*settings, "report=false"], trials=plan["trials"], search_seed=base.seed)
    progress = None if on_batch is None else (
        lambda number, group: on_batch(number, group, [c.dir_name.split("-", 1)[0] for c in sweep.batches[number - 1]]))
    result = run_sweep(sweep, run_dir / SEARCH_DIR, on_batch=progress)
    by_name = {combo.dir_name: combo for combo in sweep.combinations}
    metric = result.ranked_by
    candidates, summaries = [], []
    for row in result.rows:
        combo = by_name[row["run"]]
        summary_file = result.sweep_dir / combo.dir_name / rundir.SUMMARY
        summary = rundir.read_json(summary_file, "summary") if summary_file.is_file() else {}
        summaries.append(summary)
        candidates.append(Candidate(combo.dir_name, dict(combo.values), _finite(row.get(metric)),
                                    _finite(row.get("val_loss_mean")), int(row.get("epochs_run") or 0),
                                    bool(summary.get("stopped_early")), str(row.get("status"))))
    return candidates, result.signal, summaries


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _winner(candidates: list[Candidate], metric: str) -> Candidate | None:
    """The best validation score (accuracy: highest; MAE: lowest), ties broken by the lower validation loss."""
    scored = [c for c in candidates if c.score is not None and c.status == "completed"]
    if not scored:
        return None
    sign = 1 if metric == "mae" else -1
    return min(scored, key=lambda c: (sign * c.score, c.val_loss if c.val_loss is not None else math.inf))


def _ranking_text(probe: dict) -> str:
    better = "lowest" if probe["task_metric"] == "mae" else "highest"
    return f"the {better} final validation {probe['metric_label']}, ties broken by the lower validation loss"


# ---------------------------------------------------------------------- auto_fit.json
def _record_start(data: Path, target: str, clock: Clock, probe: dict, plan: dict, space: dict, base) -> dict:
    return {
        "data": str(data), "target": target, "budget_seconds": clock.budget, "counted": COUNTED,
        "base_config": BASE_CONFIG,
        "probe": {"epoch_seconds": {str(k): v for k, v in probe["epoch_seconds"].items()},
                  "data_seconds": probe["data_seconds"], "device": probe["device"],
                  "rows": {"train": probe["train_rows"], "val": probe["val_rows"], "test": probe["test_rows"]}},
        "search": {"dir": SEARCH_DIR if plan["trials"] else None, "trials": plan["trials"], "space": space,
                   "search_seed": base.seed, "epochs": plan["search_epochs"],
                   "planned_seconds": plan["search_seconds"], "why_none": plan["why"]},
    }


def _candidate_record(c: Candidate) -> dict:
    return {"run": c.run, **c.values, "val_score": c.score, "val_loss": c.val_loss, "epochs_run": c.epochs_run,
            "stopped_early": c.stopped_early, "status": c.status}


def _write_record(run_dir: Path, record: dict) -> None:
    from clftrain.store import rundir

    try:
        rundir.write_json(run_dir / RECORD, record)
    except OSError as exc:
        raise UserError(f"cannot write {run_dir / RECORD}: {exc.strerror or exc}") from None
