"""The `clftrain` command line: parse, call, render. No training logic lives here.

Heavy libraries (torch, sklearn, matplotlib) are imported inside the commands
that need them, so `clftrain --help` and `clftrain validate` start fast.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.text import Text

from clftrain.errors import UserError

app = typer.Typer(
    help="Train PyTorch classifiers from YAML experiment configs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
_state = {"debug": False}

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
            err_console.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)
            raise typer.Exit(2) from None

    return run


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for user errors.")] = False) -> None:
    _state["debug"] = debug


@app.command()
@user_errors
def fit(
    config: Annotated[Optional[Path], typer.Argument(help="The experiment's YAML config.")] = None,
    overrides: SetOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to create (must not exist).")] = None,
    runs_root: Annotated[Path, typer.Option("--runs", help="Where run directories go when --out is not given.")] = Path("runs"),
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run directory from its last checkpoint.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No model table, progress bar or epoch rows.")] = False,
) -> None:
    """Validate CONFIG, train, and write a run directory (config, metrics, checkpoints, plots)."""
    if (config is None) == (resume is None):
        raise UserError("give either a CONFIG to start a run or --resume RUN_DIR to continue one, not both")
    if resume is not None and out is not None:
        raise UserError("--out cannot be used with --resume: a resumed run continues in its own directory")
    from clftrain.config import load_config

    cfg = load_config(config, overrides) if config is not None else None
    from clftrain import report
    from clftrain.experiment import SIGNAL_EXIT_CODES, fit_experiment, resume_experiment

    shown = Console(quiet=quiet, highlight=False)
    hooks = dict(
        callbacks=[report.ConsoleProgress(shown)],
        on_model=lambda layers, params, device: report.show_model(shown, layers, params, device),
    )
    if resume is not None:
        result = resume_experiment(resume, overrides, **hooks)
    else:
        result = fit_experiment(cfg, out=out, runs_root=runs_root, **hooks)
    report.show_result(console, result.run_dir, result.summary)
    if result.summary["status"] == "interrupted":
        console.print(f"interrupted by {result.signal}; continue with: clftrain fit --resume {result.run_dir}")
        raise typer.Exit(SIGNAL_EXIT_CODES.get(result.signal, 130))
    if result.summary["status"] == "diverged":
        raise typer.Exit(2)


@app.command()
@user_errors
def validate(
    config: Annotated[Path, typer.Argument(help="The experiment's YAML config.")],
    overrides: SetOption = None,
) -> None:
    """Check CONFIG and print it resolved (defaults filled in); exit 2 listing every error."""
    from clftrain.config import config_to_yaml, load_config

    console.print(config_to_yaml(load_config(config, overrides)), end="", markup=False)


def main() -> None:
    app(prog_name="clftrain")


if __name__ == "__main__":
    sys.exit(main())
