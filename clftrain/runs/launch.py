"""`clftrain fit --nproc N` (and `sweep --nproc N`): the torchrun launch of N data-parallel processes on this machine, after the checks
that can fail on the user's input, so that a bad value exits 2 before any process starts or anything is written.

The launch is PyTorch's own (`python -m torch.distributed.run --standalone --nproc-per-node=N -m clftrain fit
...`); rank 0 leaves its exit code in a file this process names (CLFTRAIN_EXIT_FILE), because torchrun reports
any failed worker as 1 and a user error must stay 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from clftrain.config import load_config
from clftrain.errors import UserError
from clftrain.runs.lifecycle import hold_run, signals_handled_by
from clftrain.store import rundir

EXIT_FILE = "CLFTRAIN_EXIT_FILE"


def launch_fit(nproc: int, config: Path | None, overrides: list[str], out: Path | None, runs_root: Path,
               resume: Path | None, quiet: bool, warn: Callable[[str], None]) -> int:
    """Check, then run the launch of `fit` to its end; its exit code (rank 0's)."""
    check_launch(nproc, config, overrides, resume, warn)
    args = [*(["--resume", str(resume)] if resume else [str(config)]),
            *(arg for item in overrides for arg in ("--set", item)),
            *(["--out", str(out)] if out else []), "--runs", str(runs_root), *(["-q"] if quiet else [])]
    return launch(nproc, ["fit", *args])


def launch_sweep(nproc: int, args: list[str], warn: Callable[[str], None], refit_plan=None) -> int:
    """Run the launch of `sweep ARGS` (its batches dealt over the processes) to its end; rank 0's exit code.
    With `refit_plan` (the sweep's plan, --refit) every run's batch is checked first: whichever wins, its refit
    trains data-parallel over the N processes."""
    check_count(nproc, "auto", warn)
    from clftrain.training import distributed

    for combo in refit_plan.combinations if refit_plan else []:  # a refit is one model (a sweep has no ensembles)
        try:
            distributed.check_world_batch(combo.config.train.batch_size, sys.maxsize, nproc)  # None: every row
        except UserError as exc:
            raise UserError(f"--refit trains the winner in the {nproc} processes together, and {exc}") from None
    return launch(nproc, ["sweep", *args])


def launch(nproc: int, command_args: list[str]) -> int:
    """`python -m torch.distributed.run --standalone --nproc-per-node=N -m clftrain ARGS`, waited for (its agent
    run by torchrun_agent.py: no traceback under a process's own error)."""
    command = [sys.executable, "-m", "clftrain.runs.torchrun_agent", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "clftrain", *command_args]
    with tempfile.TemporaryDirectory(prefix="clftrain-launch-") as folder:
        exit_file = Path(folder) / "exit"
        # One thread per process unless the user chose: N processes of torch's default would oversubscribe.
        env = {"OMP_NUM_THREADS": "1", **os.environ, EXIT_FILE: str(exit_file)}
        # The agent in a session of its own: a signal to this process (Ctrl-C, SIGTERM, a closed terminal) reaches
        # it once, passed on here, and torchrun passes it to the ranks, while this process waits for them all, so
        # that rank 0's exit code lands in a folder that still exists.
        agent = subprocess.Popen(command, env=env, start_new_session=True)
        with _passing_signals_to(agent):
            code = agent.wait()
        return int(exit_file.read_text()) if exit_file.is_file() else code


def _passing_signals_to(agent: subprocess.Popen):
    """SIGINT and SIGTERM passed on to `agent` as they come; SIGHUP (the terminal closed) as SIGTERM, which the
    ranks stop on with their checkpoint saved."""
    passed = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM, signal.SIGHUP: signal.SIGTERM}
    return signals_handled_by(lambda signum, frame: agent.send_signal(passed[signum]), tuple(passed))


def check_count(nproc: int, device: str, warn: Callable[[str], None]) -> None:
    if nproc < 1:
        raise UserError(f"--nproc {nproc}: needs at least 1 process")
    cores = os.cpu_count() or 1
    if device in ("auto", "cpu") and nproc > cores:
        warn(f"--nproc {nproc} is more than this machine's {cores} CPU cores: the processes will wait on each other")


def check_launch(nproc: int, config: Path | None, overrides: list[str], resume: Path | None,
                 warn: Callable[[str], None]) -> None:
    """The process count, the config and its data (every check fit makes), the batch shared by the processes,
    the device each can have, and a run directory nobody else is writing."""
    from clftrain.training import check_data, check_spread, check_stream_shares, distributed

    if nproc < 1:
        raise UserError(f"--nproc {nproc}: needs at least 1 process")
    resolved = load_config(rundir.config_of(resume) if resume else config, None if resume else overrides)
    checked, dataset = check_data(resolved)
    check_count(nproc, checked.device, warn)
    if checked.seeds is not None:  # each process trains a slice of the seeds on whole batches
        check_spread(checked.seeds, nproc)
    else:
        distributed.check_world_batch(checked.train.batch_size, dataset.rows("train"), nproc)
    if dataset.stream is not None:  # each process reads a share of the blocks
        check_stream_shares(dataset, nproc)
    if checked.device.startswith("cuda"):
        import torch

        if nproc > torch.cuda.device_count():
            raise UserError(f"--nproc {nproc}: this machine has {torch.cuda.device_count()} CUDA device(s) for "
                            f"device = '{checked.device}'; use at most that many processes (one per GPU)")
    if resume is not None:
        with hold_run(resume):  # refused now, not in N processes, when another process is training it
            pass


def write_exit_code(code: int) -> None:
    """Rank 0's exit code where launch_fit reads it (nothing outside such a launch)."""
    path = os.environ.get(EXIT_FILE)
    if path and int(os.environ.get("RANK", "0")) == 0:
        try:
            Path(path).write_text(str(code))
        except FileNotFoundError:  # the launcher is gone (killed with its whole group): nobody reads it now
            pass
