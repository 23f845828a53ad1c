"""The `clftrain` command line: parse, call, render. No training logic lives here.

Heavy libraries (torch, sklearn, matplotlib) are imported inside the commands
that need them, so `clftrain --help` and `clftrain validate` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from clftrain.errors import UserError

app = typer.Typer(
    help="Train PyTorch classifiers from YAML experiment configs.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}

SeedsOption = Annotated[Optional[str], typer.Option(
    "--seeds", metavar="SEEDS",
    help="Train one replica per seed, all as one batched model, e.g. --seeds 0-4 or --seeds 0,3,7 (config key `seeds`).")]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a config value, e.g. --set train.lr=0.01 (repeatable)."),
]


def user_errors(command):
    """Turn a UserError into its message and exit code 2 (a traceback only with --debug)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            if _state["debug"]:
                raise
            rank = _follower_rank()
            said = getattr(exc, "said_by_rank_zero", False)
            if rank is not None and not _in_world():
                # Before the ranks join, every rank fails alike and rank 0 says so. A rank that exits first makes
                # torchrun end the others, maybe before rank 0 has printed: wait for that end instead (it comes
                # as soon as rank 0 exits), and speak only if it does not (an error of this rank alone).
                time.sleep(FOLLOWER_GRACE_S)
            if rank is None or not said:
                prefix = f"rank {rank}: " if rank is not None else ""
                err_console.print(Text(f"{prefix}error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
            raise typer.Exit(2) from None

    return run


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors.")] = False) -> None:
    _state["debug"] = debug


@app.command()
@user_errors
def fit(
    config: Annotated[Optional[Path], typer.Argument(
        help="The experiment's YAML config; or a data table (CSV, Parquet) with --target: no config, the tabular "
             "recipe with a small search and an ensemble within --budget.", autocompletion=complete_configs)] = None,
    overrides: SetOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to create (must not exist).")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories go when --out is not given.")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run directory from its last checkpoint.",
                                                   autocompletion=complete_run_dirs)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No model table, progress bar or epoch rows.")] = False,
    seeds: SeedsOption = None,
    nproc: Annotated[Optional[int], typer.Option(
        "--nproc", metavar="N", help="Train data-parallel in N processes on this machine: the same launch as "
                                     "torchrun --standalone --nproc-per-node=N -m clftrain fit ...")] = None,
    track: Annotated[Optional[list[str]], typer.Option(
        "--track", metavar="NAME", help="Also write to this experiment tracker: tensorboard or mlflow (config "
                                        "key `tracking`; repeatable).")] = None,
    no_report: Annotated[bool, typer.Option(
        "--no-report", help="Do not write report.html at the end, nor take the snapshots it shows (config key "
                            "`report: false`).")] = False,
    target: Annotated[Optional[str], typer.Option(
        "--target", "-t", help="fit DATA: the column to predict.")] = None,
    budget: Annotated[Optional[str], typer.Option(
        "--budget", metavar="TIME", help="fit DATA: the time it may take, e.g. 60s, 90 (seconds), 5m, 1h "
                                         "(default 60s).")] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="fit DATA: the seed of the search's draws and models, the first of the ensemble's "
                       "members (default 0).")] = None,
    device: Annotated[Optional[str], typer.Option(
        "--device", help="fit DATA: where to train (auto, cpu, cuda, cuda:N, mps).")] = None,
) -> None:
    """Validate CONFIG, train, and write a run directory (config, metrics, checkpoints, plots, report.html).

    `clftrain fit DATA.csv --target COLUMN [--budget 60s]`: no config; the tabular recipe, a small batched search
    and an ensemble sized to the budget, into the usual run directory."""
    started = time.monotonic()
    from clftrain.runs.auto_fit import is_table

    if config is not None and resume is None and is_table(config, target):
        if seeds is not None or nproc is not None or track:
            flag = "--seeds" if seeds is not None else "--nproc" if nproc is not None else "--track"
            raise UserError(f"{flag} cannot be used with fit DATA (a table, {config}): it decides the seeds (use "
                            "--seed S) and trains in one process; for these, write a config (clftrain init "
                            f"{config} --target COLUMN) and fit that")
        _fit_table(config, target, budget, started, out, runs_root, overrides, seed, device, quiet, no_report)
        return
    for flag, value in (("--target", target), ("--budget", budget), ("--seed", seed), ("--device", device)):
        if value is not None:
            instead = {"--target": "dataset.target", "--seed": "seed", "--device": "device"}.get(flag)
            raise UserError(f"{flag} is for fit DATA (a CSV table: clftrain fit DATA.csv --target COLUMN)"
                            + (f", not for {'--resume' if resume is not None else 'a config'}" if config or resume
                               else "")
                            + (f"; a config sets it with --set {instead}=..." if instead and resume is None else ""))
    if track:
        overrides = [*(overrides or []), f"tracking=[{', '.join(track)}]"]
    if no_report and resume is None:
        overrides = [*(overrides or []), "report=false"]
    if nproc is not None:
        from clftrain.runs import launch_fit

        raise typer.Exit(launch_fit(nproc, config, overrides=_with_seeds(overrides, seeds), out=out,
                                    runs_root=runs_root, resume=resume, quiet=quiet, warn=_warn))
    if _follower_rank() is None:
        _start_drawing_workers()
    quiet = quiet or _follower_rank() is not None  # under torchrun rank 0 alone talks
    if (config is None) == (resume is None):
        raise UserError("give either a CONFIG to start a run or --resume RUN_DIR to continue one, not both")
    if resume is not None and out is not None:
        raise UserError("--out cannot be used with --resume: a resumed run continues in its own directory")
    if resume is not None and seeds is not None:
        raise UserError("--seeds cannot be used with --resume: a resumed run keeps the seeds it started with")
    if resume is not None and no_report:
        raise UserError("--no-report cannot be used with --resume: a resumed run keeps the `report` setting of "
                        "its config.yaml")
    from clftrain.config import load_config

    cfg = load_config(config, _with_seeds(overrides, seeds)) if config is not None else None
    from clftrain.runs import SIGNAL_EXIT_CODES, fit_run, resume_run
    from clftrain.views import ConsoleProgress, show_model, show_result

    shown = Console(quiet=quiet, highlight=False, soft_wrap=True)
    hooks = dict(
        callbacks=[ConsoleProgress(shown)],
        on_model=lambda layers, params, device: show_model(shown, layers, params, device),
    )
    if resume is not None:
        result = resume_run(resume, overrides, **hooks)
    else:
        result = fit_run(cfg, out=out, runs_root=runs_root, **hooks)
    said = Console(quiet=_follower_rank() is not None, highlight=False, soft_wrap=True)
    show_result(said, result.run_dir, result.summary)
    if "ensemble" in result.summary:
        _show_ensemble(said, result.summary)
    if result.summary["status"] == "interrupted":
        said.print(f"interrupted by {result.signal or 'a signal another process received'}; continue with: "
                   f"clftrain fit --resume {result.run_dir}")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(result.signal, 130))
    if result.signal:  # after training ended: only the plots are missing
        said.print(f"interrupted by {result.signal} while drawing the plots; the run is complete, and "
                   f"clftrain fit --resume {result.run_dir} draws them")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(result.signal, 130))
    if result.summary["status"] == "diverged":
        raise typer.Exit(2)


def _fit_table(data: Path, target, budget, started, out, runs_root, overrides, seed, device, quiet, no_report):
    """`clftrain fit DATA --target COLUMN`: runs/auto_fit.py, its steps shown as they go, then fit's own ending."""
    _start_drawing_workers()
    from clftrain.runs import SIGNAL_EXIT_CODES
    from clftrain.runs.auto_fit import Interrupted, auto_fit
    from clftrain.views import ConsoleProgress, SweepProgress, show_model, show_result
    from clftrain.views.auto_fit import AutoFitConsole

    shown = Console(quiet=quiet, highlight=False, soft_wrap=True)
    view = AutoFitConsole(console, err_console)

    def search_progress(number, group, runs):
        return [SweepProgress(shown, number, 1, runs, group.trainer.model.replicas)]

    try:
        result = auto_fit(data, target, budget, started, out, runs_root, overrides, seed, device, not no_report, view,
                          search_progress, [ConsoleProgress(shown)],
                          lambda layers, params, where: show_model(shown, layers, params, where))
    except Interrupted as stopped:
        where = (f"; {stopped.run_dir} holds the search's runs so far (each resumable: clftrain fit --resume "
                 "RUN_DIR), no final run" if stopped.run_dir else "; nothing was written")
        console.print(f"interrupted by {stopped.signal}{where}")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(stopped.signal, 130))
    show_result(console, result.run_dir, result.summary)
    if "ensemble" in result.summary:
        _show_ensemble(console, result.summary)
    if result.summary.get("status") == "interrupted":
        console.print(f"interrupted by {result.signal or 'a signal'}; continue with: clftrain fit --resume "
                      f"{result.run_dir}")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(result.signal, 130))
    view.finished(result.run_dir, result.record)
    if result.summary.get("status") == "diverged":
        raise typer.Exit(2)


def _show_ensemble(console: Console, summary: dict) -> None:
    """A model.ensemble run: after its members' numbers (show_result), the ensemble's own, which the run is."""
    from clftrain.components.tasks import TASKS
    from clftrain.inference.trained import seed_list
    from clftrain.views.format import metric_text

    task, ensemble = TASKS.get(summary["task"]), summary["ensemble"]

    def scores(row: dict) -> str:
        return "; ".join(f"{split} loss {metric_text(f'{split}_loss', row.get(f'{split}_loss'))}, {task.metric_label} "
                         f"{metric_text(f'{split}_{task.metric}', row.get(f'{split}_{task.metric}'))}"
                         for split in ("val", "test") if f"{split}_loss" in row)

    console.print(f"[bold]The run's model: the ensemble of {ensemble['members']} members[/bold] (seeds "
                  f"{seed_list(ensemble['seeds'])}, {ensemble['prediction']}): final {scores(summary['final'])}")
    if summary["best"].get("epoch") is not None:
        console.print(f"[bold]The ensemble at best.pt[/bold] (each member at its own best epoch): "
                      f"{scores(summary['best'])}")


FOLLOWER_GRACE_S = 10  # how long a rank other than 0 waits, after a user error before joining, for rank 0 to say it


def _follower_rank() -> int | None:
    """This process's rank when torchrun started it as one of several and it is not rank 0; else None."""
    rank = int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    return rank or None


def _in_world() -> bool:
    """Whether this process has joined a torchrun launch's process group (distributed.py)."""
    if "clftrain.training.distributed" not in sys.modules:
        return False
    from clftrain.training import distributed

    return distributed.current_world() is not None


def _warn(message: str) -> None:
    err_console.print(Text("warning: ", style="bold yellow") + Text(message), soft_wrap=True)


def _start_drawing_workers() -> None:
    """Figure-drawing workers start now, importing matplotlib while this process imports torch and trains
    (views/drawing.py): the plots at the end of a run then cost a fraction of their time."""
    from clftrain.views.drawing import shared_drawer

    shared_drawer()


def _with_seeds(overrides: list[str] | None, seeds: str | None) -> list[str]:
    """`--seeds 0-4` is `--set seeds=[0, 1, 2, 3, 4]`."""
    from clftrain.config import parse_seeds

    return [*(overrides or []), *([f"seeds={parse_seeds(seeds)}"] if seeds is not None else [])]


@app.command()
@user_errors
def validate(
    config: Annotated[Path, typer.Argument(help="The experiment's YAML config.")],
    overrides: SetOption = None,
    seeds: SeedsOption = None,
    data: Annotated[bool, typer.Option("--data", help="Also read the data and make every check fit makes before "
                                                       "training; print the columns, task, classes and splits.")] = False,
) -> None:
    """Check CONFIG and print it resolved (defaults filled in); exit 2 listing every error."""
    from clftrain.config import config_to_yaml, load_config

    resolved = load_config(config, _with_seeds(overrides, seeds))
    console.print(config_to_yaml(resolved), end="", markup=False)
    if data:
        from clftrain.training import check_data
        from clftrain.views import show_data_check

        checked, dataset = check_data(resolved)
        show_data_check(console, checked, dataset)


class Checkpoint(str, Enum):
    last = "last"
    best = "best"


ThresholdOption = Annotated[Optional[float], typer.Option(
    "--threshold", help="Two classes: predict the positive class (dataset.positive_class) from this probability "
    "instead of 0.5.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite the -o file if it exists.")]
def _paths_under(incomplete: str, wanted) -> list[str]:
    """Shell completion: the entries of the folder typed so far that start as typed and `wanted(path)` keeps;
    folders end in '/' so that completion goes on inside them (names only: nothing is opened or loaded)."""
    base = Path(incomplete) if not incomplete or incomplete.endswith("/") else Path(incomplete).parent
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    shown = [(f"./{p}" if incomplete.startswith("./") else str(p), p) for p in entries]
    hidden = Path(incomplete).name.startswith(".") and not incomplete.endswith("/")  # .ci/ only when typed
    return [text + ("/" if path.is_dir() and not (path / "config.yaml").is_file() else "")
            for text, path in shown if text.startswith(incomplete) and wanted(path)
            and (hidden or not path.name.startswith("."))][:200]


def complete_run_dirs(incomplete: str) -> list[str]:
    """A run directory (one holding config.yaml), or a folder on the way to one."""
    return _paths_under(incomplete, lambda path: path.is_dir())


def complete_configs(incomplete: str) -> list[str]:
    """A YAML config, or a folder on the way to one."""
    return _paths_under(incomplete, lambda path: path.is_dir() or path.suffix in (".yaml", ".yml"))


RunDirArgument = Annotated[Path, typer.Argument(help="A run directory written by clftrain fit.", show_default=False,
                                                autocompletion=complete_run_dirs)]
CheckpointOption = Annotated[Checkpoint, typer.Option(
    "--checkpoint", "-c", help="Which weights: last (where training ended) or best (by the monitored metric).")]
DeviceOption = Annotated[Optional[str], typer.Option(
    "--device", help="Run the model here instead of on the run's config device, e.g. --device cpu.")]
SeedOption = Annotated[Optional[int], typer.Option(
    "--seed", help="A run trained with seeds: use this seed's replica (default: the median replica; a "
                   "model.ensemble run: the ensemble).")]
EnsembleOption = Annotated[bool, typer.Option(
    "--ensemble", help="A run trained with seeds: average the replicas' probabilities (a model.ensemble run's "
                       "default).")]


@app.command("eval")
@user_errors
def evaluate(
    run_dir: RunDirArgument,
    checkpoint: CheckpointOption = Checkpoint.last,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Evaluate on this CSV (the run's feature columns and target) instead of the test split.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print eval.json to stdout and nothing else.")] = False,
    device: DeviceOption = None,
    seed: SeedOption = None,
    ensemble: EnsembleOption = False,
    threshold: ThresholdOption = None,
) -> None:
    """Re-evaluate a checkpoint on the run's rebuilt test split (or a CSV); print the metrics, write eval.json."""
    from clftrain.inference import evaluate_run, write_eval

    report = evaluate_run(run_dir, checkpoint.value, data, device, seed, ensemble, threshold)
    path = write_eval(run_dir, report)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from clftrain.views import show_eval

    show_eval(console, report, path)


@app.command()
@user_errors
def plot(run_dir: RunDirArgument, checkpoint: CheckpointOption = Checkpoint.last, device: DeviceOption = None,
         seed: SeedOption = None, ensemble: EnsembleOption = False) -> None:
    """(Re)draw the run's plots from its files: decision boundary, curves, confusion matrix."""
    from clftrain.inference import TrainedRun

    run = TrainedRun.load(run_dir, checkpoint.value, device, seed=seed, ensemble=ensemble)
    for path in run.draw_plots(run_dir):
        console.print(f"wrote {path}")
    for note in run.notes:
        err_console.print(Text("note: ", style="yellow") + Text(note))


@app.command()
@user_errors
def report(
    paths: Annotated[list[Path], typer.Argument(
        help="A run directory, a sweep directory, or several run directories (compared).", show_default=False,
        autocompletion=complete_run_dirs)],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="The page to write (default: RUN_DIR/report.html, SWEEP_DIR/report.html, or "
                            "./report.html for several runs).")] = None,
    checkpoint: CheckpointOption = Checkpoint.last,
    device: DeviceOption = None,
    seed: SeedOption = None,
    ensemble: EnsembleOption = False,
) -> None:
    """Write one self-contained HTML page of a run (config, model, splits, metrics, curves, confusion matrix,
    boundary, ROC / PR / calibration), of a sweep (ranked runs), or of several runs side by side."""
    _start_drawing_workers()
    from clftrain.runs import write_report
    from clftrain.views.drawing import shared_drawer

    path, notes = write_report(paths, out, checkpoint.value, device, seed, ensemble, shared_drawer())
    for note in notes:
        err_console.print(Text("note: ", style="yellow") + Text(note))
    console.print(f"wrote {path}")


@app.command()
@user_errors
def predict(
    run_dir: RunDirArgument,
    input_csv: Annotated[Path, typer.Argument(help="CSV with the run's feature columns (others pass through).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here instead of to stdout.")] = None,
    checkpoint: CheckpointOption = Checkpoint.last,
    device: DeviceOption = None,
    seed: SeedOption = None,
    ensemble: EnsembleOption = False,
    force: ForceOption = False,
    threshold: ThresholdOption = None,
    stream: Annotated[bool, typer.Option("--stream", help="Read the input a block at a time (automatic for Parquet "
                                         "and for a CSV past 256 MiB); -o FILE.parquet writes Parquet.")] = False,
) -> None:
    """Class probabilities and predicted labels for each row of INPUT_CSV (or a Parquet file or folder), as CSV."""
    from clftrain.inference import predict_csv, predict_stream, streams_input, write_output
    from clftrain.store import rundir

    if out is not None:
        rundir.check_output(out, force)
    if streams_input(input_csv, stream):
        rows, notes = predict_stream(run_dir, input_csv, out, checkpoint.value, device, seed, ensemble, threshold)
        for note in notes:
            err_console.print(Text("note: ", style="yellow") + Text(note))
        if out is not None:
            console.print(f"wrote {rows} predictions to {out}")
        return
    text, notes = predict_csv(run_dir, input_csv, checkpoint.value, device, seed, ensemble, threshold)
    for note in notes:
        err_console.print(Text("note: ", style="yellow") + Text(note))
    if out is None:
        typer.echo(text, nl=False)
        return
    write_output(out, text, input_csv)
    console.print(f"wrote {text.count(chr(10)) - 1} predictions to {out}")


@app.command()
@user_errors
def init(
    data: Annotated[Path, typer.Argument(help="The table to train on: a CSV file, a Parquet file or a folder of "
                                         "them.", autocompletion=lambda incomplete: _paths_under(
        incomplete, lambda path: path.is_dir() or path.suffix in (".csv", ".parquet", ".pq")))],
    target: Annotated[str, typer.Option("--target", "-t", help="The column to predict.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The config file to write.")] = Path("config.yaml"),
    force: ForceOption = False,
) -> None:
    """Write a commented config for DATA (task, columns, gaps, model size read from the table); fit runs it as is."""
    from clftrain.runs import scaffold_config, write_scaffold

    text, notes = scaffold_config(data, target, out)
    schema = write_scaffold(text, out, force)
    for note in notes:
        err_console.print(Text("note: ", style="yellow") + Text(note))
    console.print(f"wrote {out}" + (f" and {schema} (the schema its first line names)" if schema else ""))
    console.print(f"next: clftrain fit {out}")


class ExportFormat(str, Enum):
    onnx = "onnx"


@app.command()
@user_errors
def export(
    run_dir: RunDirArgument,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="The model file's format.")] = ExportFormat.onnx,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The model file (default RUN_DIR/model.onnx); "
                                                                    "its description goes next to it, + .json.")] = None,
    checkpoint: CheckpointOption = Checkpoint.last,
    seed: SeedOption = None,
    ensemble: EnsembleOption = False,
    force: ForceOption = False,
) -> None:
    """The run's model, preprocessing folded in, as a file that runs without PyTorch (ONNX), and a JSON sidecar."""
    from clftrain.inference import export_run

    path, sidecar, notes = export_run(run_dir, fmt.value, out, checkpoint.value, seed, ensemble, force)
    for note in notes:
        err_console.print(Text("note: ", style="yellow") + Text(note))
    console.print(f"wrote {path} and {sidecar}")


@app.command()
@user_errors
def sweep(
    config: Annotated[Path, typer.Argument(help="The experiment's YAML config: the values the grid leaves alone.")],
    grid: Annotated[Optional[list[str]], typer.Option(
        "--grid", "-g", metavar="KEY=V1,V2,...",
        help="Values of one config key to try, e.g. --grid train.lr=0.1,0.01 --grid model.layers=[8,8],[16] "
             "(repeatable: every combination is trained). With --trials also a distribution: "
             "loguniform(1e-4,1e-1), uniform(a,b), int(a,b), choice(a,b,...).")] = None,
    trials: Annotated[int | None, typer.Option(
        "--trials", metavar="N", help="A random search: draw N combinations from the --grid values and "
                                      "distributions instead of training every combination.")] = None,
    search_seed: Annotated[int | None, typer.Option(
        "--search-seed", metavar="S", help="Seed of the --trials draws (default 0): the same seed draws the same "
                                           "trials.")] = None,
    cv: Annotated[int | None, typer.Option(
        "--cv", metavar="K", help="Cross-validate every combination on K stratified folds of the training rows "
                                  "(its K folds trained as one batched model) and rank by the folds' mean "
                                  "validation score (dataset.cv_folds).")] = None,
    halving: Annotated[bool, typer.Option(
        "--halving", help="Successive halving: at rungs (epochs/27, /9, /3 as the runs allow) keep the best third "
                          "of each batch's runs by validation score and stop the rest (status pruned).")] = False,
    refit: Annotated[bool, typer.Option(
        "--refit", help="Train the winner again on its training and validation rows together (its folds, with "
                        "--cv) into SWEEP_DIR/refit, a run directory like any other.")] = False,
    overrides: SetOption = None,
    seeds: SeedsOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Sweep directory to create (must not exist).")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where the sweep directory goes when --out is not given.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    nproc: Annotated[Optional[int], typer.Option(
        "--nproc", metavar="N", help="Deal the batches over N processes on this machine (a torchrun launch).")] = None,
    track: Annotated[Optional[list[str]], typer.Option(
        "--track", metavar="NAME", help="Also write every run to this experiment tracker: tensorboard or mlflow "
                                        "(mlflow: a parent run for the sweep; config key `tracking`).")] = None,
) -> None:
    """Train every combination of the --grid values (or --trials N drawn from them); configs of one shape train
    together as one batched model."""
    if track:
        overrides = [*(overrides or []), f"tracking=[{', '.join(track)}]"]
    if nproc is not None:
        from clftrain.runs import launch_sweep, plan_sweep

        plan = plan_sweep(config, grid or [], overrides, seeds, trials, search_seed, cv, halving)  # exits 2 here
        args = [str(config), *(f"--grid={item}" for item in grid or []), *(f"--set={item}" for item in overrides or []),
                *([f"--trials={trials}"] if trials is not None else []),
                *([f"--search-seed={search_seed}"] if search_seed is not None else []),
                *([f"--cv={cv}"] if cv is not None else []), *(["--halving"] if halving else []),
                *(["--refit"] if refit else []),
                *([f"--seeds={seeds}"] if seeds else []), *([f"--out={out}"] if out else []), f"--runs={runs_root}",
                *(["-q"] if quiet else [])]
        raise typer.Exit(launch_sweep(nproc, args, _warn, plan if refit else None))
    if _follower_rank() is None:
        _start_drawing_workers()
    from clftrain.runs import SIGNAL_EXIT_CODES, SWEEP_CSV, plan_sweep, run_sweep
    from clftrain.views import SweepProgress, show_sweep

    plan = plan_sweep(config, grid or [], overrides, seeds, trials, search_seed, cv, halving)
    shown = Console(quiet=quiet or _follower_rank() is not None, highlight=False, soft_wrap=True)

    def progress(number, group):
        runs = [c.dir_name for c in plan.batches[number - 1]]
        return [SweepProgress(shown, number, len(plan.batches), runs, group.trainer.model.replicas)]

    result = run_sweep(plan, out, runs_root, on_batch=progress)
    said = Console(quiet=_follower_rank() is not None, highlight=False, soft_wrap=True)
    show_sweep(said, result.sweep_dir, result.rows, result.ranked_by, result.grid_keys,
               f"each run's {plan.cv} folds" if plan.cv else "each run's seeds")
    said.print(f"wrote {result.sweep_dir / SWEEP_CSV}")
    if result.signal:
        said.print(f"interrupted by {result.signal}: the runs above are complete or resumable "
                      "(clftrain fit --resume RUN_DIR); the sweep's other batches did not start")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(result.signal, 130))
    if refit:
        _refit_winner(plan, result, shown, said)


def _refit_winner(plan, result, shown: Console, said: Console) -> None:
    from clftrain.runs import SIGNAL_EXIT_CODES
    from clftrain.runs.refit import plan_refit, run_refit
    from clftrain.views import ConsoleProgress, show_model, show_result

    chosen = plan_refit(plan, result)
    said.print(f"refit: {chosen.winner}, " + "; ".join(chosen.why))
    fitted = run_refit(chosen, result.sweep_dir, callbacks=[ConsoleProgress(shown)],
                       on_model=lambda layers, params, device: show_model(shown, layers, params, device))
    show_result(said, fitted.run_dir, fitted.summary)
    if fitted.summary["status"] == "interrupted":
        said.print(f"interrupted by {fitted.signal}; continue the refit with: clftrain fit --resume {fitted.run_dir}")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(fitted.signal, 130))


@app.command()
def schema() -> None:
    """Print the config's JSON Schema (point an editor's YAML language server at it)."""
    from clftrain.config import schema_json

    typer.echo(schema_json(), nl=False)


@app.command()
@user_errors
def runs(
    root: Annotated[Path, typer.Argument(help="Where the run directories are.")] = Path("runs"),
) -> None:
    """List the runs under ROOT: date, dataset, model, epochs, best and final test metric, status."""
    from clftrain.store import find_runs
    from clftrain.views import show_runs

    show_runs(console, root, find_runs(root))


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the figure.")] = Path("compare.png"),
    force: ForceOption = False,
) -> None:
    """Print runs' metrics side by side; draw their test loss and accuracy curves in one figure."""
    from clftrain.store import RunRecord, check_comparable, labels, rundir
    from clftrain.views import show_compare

    rundir.check_output(out, force)
    records = []
    for path in run_dirs:
        try:
            records.append(RunRecord.read(path))
        except UserError as exc:  # one damaged run does not stop the others being compared
            if not path.is_dir() or not (path / rundir.CONFIG).exists():
                raise
            err_console.print(Text("note: ", style="yellow") + Text(f"left out: {exc}"))
    metric = check_comparable(records)
    show_compare(console, records, metric)
    from clftrain.views import plots  # matplotlib: after the table, which needs none

    names = labels(records)
    plots.compare_curves(out, list(zip(names, (run.rows for run in records))), metric, " vs ".join(names))
    console.print(f"wrote {out}")


@app.command()
@user_errors
def activations(
    names: Annotated[Optional[list[str]], typer.Argument(help="Activations to draw (default: all).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the figure.")] = Path("activations.png"),
    force: ForceOption = False,
) -> None:
    """Draw each activation function the models can use over [-10, 10], in one figure."""
    from clftrain.store import rundir

    rundir.check_output(out, force)
    from clftrain.components import ACTIVATIONS, activation_curves
    from clftrain.views import plots

    plots.activation_functions(out, activation_curves(names or ACTIVATIONS.names()))
    console.print(f"wrote {out}")


def main() -> int:
    """Run the command line; its exit code (for callers that go on afterwards)."""
    try:
        app(prog_name="clftrain")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def run() -> None:
    """The `clftrain` program: the command line, then an exit that skips the interpreter's teardown.

    Unloading torch at exit takes about 0.45 s (measured: `python -c "import torch"` 1.69 s, with
    os._exit 1.22 s), paid after every file of the run is written and fsynced. A bug (an exception
    other than an exit) still ends the usual way, with its traceback."""
    code = main()
    if os.environ.get("CLFTRAIN_EXIT_FILE"):
        from clftrain.runs import write_exit_code

        write_exit_code(code)  # a rank of `fit --nproc`: its launcher reports this code, not torchrun's
    if "clftrain.training.distributed" in sys.modules:
        from clftrain.training import distributed

        distributed.leave_world()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be shown there
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
