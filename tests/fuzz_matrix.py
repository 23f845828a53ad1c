"""The hostile-input matrix: every key of the config with wrong types and extreme values, adversarial YAML and
CSV files, odd --set / --seeds / --grid forms, and damaged run directories, each run through the real CLI.

Every case must end in exit 0 or exit 2, never a traceback (exit 1) or a hang; an exit 2 names what was wrong
(the key, for a config value) and leaves nothing where the run would have gone.

tests/test_fuzz.py runs a fixed sample of it in the suite; `make fuzz` runs all of it:
    python tests/fuzz_matrix.py [--sample N] [--seed S]   (prints the counts, exit 1 on any bad case)
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

from conftest import CONFIGS, tiny_config  # noqa: E402

TIME_LIMIT_S = 30  # a case running longer is a hang
VALUES = [  # YAML texts, as --set takes them
    '"text"', "[1, 2]", "{a: 1}", "true", "null", "0", "-1", "1", "0.5", "-0.0", "1e400", "-1e400", ".nan", ".inf",
    "2147483648", "4294967296", "9223372036854775808", "18446744073709551616", "1e12", "1000000000000",
    "1" + "0" * 60, '""', "x" * 3000,
]


@dataclass
class Case:
    id: str
    args: list[str]  # {cfg}: the config file; {run}: a finished run directory; {out}: where a new run would go
    prepare: Callable[[Path], None] | None = None  # gets the case's folder, before the command runs
    names: str | None = None  # an exit 2 must say this (the key, the file)
    config: object = None  # the config file's content (dict or text); None: the tiny config
    needs_run: bool = False


# ---------------------------------------------------------------------- the config's keys
def leaf_keys() -> list[tuple[str, str | None]]:
    """(dotted key, the dataset it belongs to or None) for every key of every model of the config."""
    from pydantic import BaseModel

    from clftrain.config import DATASET_CLASSES, Config

    def walk(model, prefix: str):
        for name, info in model.model_fields.items():
            nested = [c for c in getattr(info.annotation, "__args__", (info.annotation,))
                      if isinstance(c, type) and issubclass(c, BaseModel)]
            if nested and name != "dataset":
                yield from walk(nested[0], f"{prefix}{name}.")
            elif name != "dataset":
                yield f"{prefix}{name}"

    keys = [(key, None) for key in walk(Config, "")]
    for cls in DATASET_CLASSES:
        dataset = cls.model_fields["name"].annotation.__args__[0]
        keys += [(f"dataset.{key}", dataset) for key in walk(cls, "") if key != "name"]
    return keys


# A key inside an optional section is tried with the section present (its name set where it has one).
SECTIONS = {"train.early_stopping": {"monitor": "val_loss", "patience": 2},
            "train.scheduler": {"name": "step"}}
SCHEDULER_OF = {"step_size": "step", "gamma": "step", "min_lr": "cosine", "factor": "plateau", "patience": "plateau",
                "max_lr": "onecycle"}


def base_config(dataset: str | None, key: str = "") -> dict:
    config = tiny_config(train={"epochs": 3, "log_every": 1})
    for section, content in SECTIONS.items():
        if key.startswith(section + "."):
            leaf = key.rsplit(".", 1)[-1]
            config["train"][section.split(".")[1]] = {**content, **(
                {"name": SCHEDULER_OF[leaf]} if section == "train.scheduler" and leaf in SCHEDULER_OF else {})}
    if dataset in ("csv", "parquet"):
        path = CONFIGS / "data" / "heart.csv" if dataset == "csv" else heart_parquet()
        config["dataset"] = {"name": dataset, "path": str(path), "target": "disease", "categorical": ["sex", "smoking"]}
    elif dataset is not None:
        config["dataset"] = {"name": dataset}
    if dataset in ("iris", "wine", "digits", "blobs", "spirals", "classification", "multilabel", "linear"):
        config["dataset"].setdefault("n_samples", 200) if dataset not in ("iris", "wine", "digits") else None
    if dataset == "linear":
        config["task"] = "regression"
    return config


def heart_parquet() -> Path:
    """configs/data/heart.csv as Parquet (written once, in the temporary folder): a valid table for the keys of
    `dataset: {name: parquet}`."""
    import tempfile

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(tempfile.gettempdir()) / "clftrain-fuzz-heart.parquet"
    if not path.exists():
        pq.write_table(pacsv.read_csv(CONFIGS / "data" / "heart.csv"), path)
    return path


def key_cases() -> list[Case]:
    cases = []
    for key, dataset in leaf_keys():
        for value in VALUES:
            cases.append(Case(f"set {key}={value[:20]}{' of ' + dataset if dataset else ''}",
                              ["fit", "{cfg}", "--set", f"{key}={value}", "--out", "{out}", "-q"],
                              names=key.rsplit(".", 1)[-1], config=base_config(dataset, key)))
    return cases


# ---------------------------------------------------------------------- adversarial config files
def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 10)]
    return "\n".join(lines) + "\ndataset: {name: circles}\n"


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unix_socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # left bound: the file stays a socket


def file_cases() -> list[Case]:
    texts = {
        "billion-laughs": billion_laughs(),
        "deep-nesting": "dataset: {name: circles}\nx: " + "[" * 3000 + "]" * 3000 + "\n",
        "deep-mapping": "dataset: {name: circles}\n" + "".join("  " * i + f"k{i}:\n" for i in range(400)) + "  " * 400 + "v: 1\n",
        "mapping-key": "? {a: 1}\n: 1\ndataset: {name: circles}\n",
        "list-key": "? [1, 2]\n: 1\ndataset: {name: circles}\n",
        "int-key": "1: 2\ndataset: {name: circles}\n",
        "huge-int": "seed: " + "9" * 5000 + "\ndataset: {name: circles}\n",
        "binary": "\x00\x01\x02\xff" * 100,
        "latin1": "name: caf\xe9\ndataset: {name: circles}\n",
        "only-comments": "# nothing\n# here\n",
        "tabs": "dataset:\n\tname: circles\n",
        "anchors-ok": "base: &b {name: circles}\ndataset: *b\n",
        "set-tag": "dataset: !!set {a, b}\n",
        "timestamp": "dataset: {name: circles}\nname: 2026-01-01\n",
        "huge-file": "dataset: {name: circles}\n" + "# " + "x" * 2_000_000 + "\n",
        "many-keys": "dataset: {name: circles}\n" + "".join(f"k{i}: {i}\n" for i in range(20000)),
    }
    cases = [Case(f"file {name}", ["fit", "{cfg}", "--out", "{out}", "-q"], config=text) for name, text in texts.items()]
    for name, make in (("fifo", fifo), ("socket", unix_socket), ("directory", lambda p: p.mkdir()),
                       ("dev-urandom", lambda p: p.symlink_to("/dev/urandom")), ("dev-zero", lambda p: p.symlink_to("/dev/zero")),
                       ("symlink-loop", lambda p: p.symlink_to(p)), ("unreadable", unreadable)):
        for command in (["fit", "{path}", "--out", "{out}", "-q"], ["validate", "{path}"],
                        ["sweep", "{path}", "--grid", "train.lr=0.1", "--out", "{out}", "-q"]):
            cases.append(Case(f"path {name} {command[0]}", command, prepare=special_file(make)))
    return cases


def unreadable(path: Path) -> None:
    path.write_text("dataset: {name: circles}\n")
    path.chmod(0)


def special_file(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        make(folder / "special.yaml")

    return prepare


# ---------------------------------------------------------------------- odd command-line forms
def option_cases() -> list[Case]:
    cases = []
    for item in ("", "=", "=1", "train.lr", "train..lr=1", ".lr=1", "train.lr.=1", "1train=2", "train.lr=[",
                 "train.lr=" + "9" * 5000, "train=" + "[" * 3000, "train.lr={a: *b}", "dataset=null", "train=1",
                 "seeds=" + str(list(range(5000))), "train.lr=&a 1", "a" * 5000 + "=1", "train.lr=\x00"):
        cases.append(Case(f"--set {item[:30]}", ["fit", "{cfg}", "--set", item, "--out", "{out}", "-q"]))
    for item in ("", "-", "1-", "-1", "0-99999999", "1,,2", "a", "00", "1e3", "3-1", "0-2,1", " ", "4294967296",
                 "18446744073709551616", "0-4095,4095", "1" * 5000):
        cases.append(Case(f"--seeds {item[:30]}", ["fit", "{cfg}", "--seeds", item, "--out", "{out}", "-q"]))
    for item in ("", "=", "train.lr", "train.lr=", "train.lr=,", "train.lr=[1,", "train.lr=1,1", "nope=1,2",
                 "train.lr=" + ",".join(["0.1"] * 3), "train.lr=" + ",".join(str(i + 1) for i in range(3000)),
                 "model.layers=[" + "1," * 5000 + "1]", "train.lr=" + "[" * 3000, "seed=1,2", "train.epochs=true,false",
                 "train.lr=1e400,1"):
        cases.append(Case(f"--grid {item[:30]}", ["sweep", "{cfg}", "--grid", item, "--out", "{out}", "-q"]))
    return cases


# ---------------------------------------------------------------------- adversarial CSV tables
def csv_cases() -> list[Case]:
    def table(text: str) -> Callable[[Path], None]:
        def prepare(folder: Path) -> None:
            (folder / "data.csv").write_bytes(text.encode("utf-8") if isinstance(text, str) else text)

        return prepare

    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(60))
    tables = {
        "huge-cell": "a,b,y\n1e308,1,0\n" + rows.split("\n", 1)[1] + "\n",
        "overflow-cell": "a,b,y\n1e309,1,0\n" + rows + "\n",
        "only-target": "y\n" + "\n".join(str(i % 2) for i in range(60)) + "\n",
        "thousand-classes": "a,b,y\n" + "\n".join(f"{i},{i % 3},{i}" for i in range(2000)) + "\n",
        "big-class-ids": "a,b,y\n" + "\n".join(f"{i},{i % 3},{16777216 + i % 2}" for i in range(60)) + "\n",
        "hash-rows": "a,b,y\n" + "\n".join(f"#{i},{i % 3},{i % 2}" if i % 10 == 0 else f"{i},{i % 3},{i % 2}"
                                           for i in range(60)) + "\n",
        "nul-bytes": b"a,b,y\n1,2,0\n\x00\x00\x00,1,1\n" + b"1,2,0\n" * 30,
        "empty": "",
        "header-only": "a,b,y\n",
        "one-row": "a,b,y\n1,2,0\n",
        "one-class": "a,b,y\n" + "\n".join(f"{i},{i},0" for i in range(60)) + "\n",
        "inf-nan-cells": "a,b,y\ninf,1,0\nnan,2,1\n-inf,3,0\n" + rows + "\n",
        "unbalanced-quote": 'a,b,y\n"1,2,0\n' + rows + "\n",
        "long-header": ",".join(f"c{i}" for i in range(20000)) + ",y\n" + ",".join("1" for _ in range(20001)) + "\n",
        "long-cell": "a,b,y\n" + "x" * 1_000_000 + ",1,0\n" + rows + "\n",
        "latin1": "a,b,y\ncaf\xe9,1,0\n".encode("latin-1") + rows.encode(),
        "crlf": ("a,b,y\r\n" + rows.replace("\n", "\r\n") + "\r\n"),
        "names-and-ids": "id,name,a,y\n" + "\n".join(f"{i},person{i},{i % 5},{i % 2}" for i in range(60)) + "\n",
    }
    cases = []
    for name, text in tables.items():
        for extra in ({}, {"categorical": "auto", "impute": "mean"}):
            config = {"name": "t", "dataset": {"name": "csv", "path": "data.csv", "target": "y", **extra},
                      "model": {"layers": [4]}, "train": {"epochs": 2, "log_every": 1}}
            cases.append(Case(f"csv {name}{' auto' if extra else ''}", ["fit", "{cfg}", "--out", "{out}", "-q"],
                              prepare=table(text), config=config))
    cases.append(Case("csv features-empty", ["fit", "{cfg}", "--out", "{out}", "-q"], prepare=table(rows + "\n"),
                      config={"dataset": {"name": "csv", "path": "data.csv", "target": "y", "features": []},
                              "train": {"epochs": 2}}))
    return cases


# ---------------------------------------------------------------------- damaged run directories
def damage(what: str) -> Callable[[Path], None]:
    def prepare(folder: Path) -> None:
        run = folder / "run"
        last, best, metrics = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt", run / "metrics.csv"
        if what == "metrics-half":
            metrics.write_bytes(metrics.read_bytes()[: len(metrics.read_bytes()) // 2])
        elif what == "metrics-bytes":
            metrics.write_bytes(os.urandom(4000))
        elif what == "metrics-empty":
            metrics.write_bytes(b"")
        elif what == "metrics-words":
            metrics.write_text("epoch,train_loss\nx,y\n")
        elif what == "metrics-huge":
            metrics.write_text(metrics.read_text() + "1," * 3_000_000 + "\n")
        elif what == "last-empty":
            last.write_bytes(b"")
        elif what == "best-empty":
            best.write_bytes(b"")
        elif what == "both-empty":
            last.write_bytes(b"")
            best.write_bytes(b"")
        elif what == "last-random":
            last.write_bytes(os.urandom(5000))
        elif what == "config-bomb":
            (run / "config.yaml").write_text(billion_laughs())
        elif what == "config-list":
            (run / "config.yaml").write_text("- 1\n")
        elif what == "config-gone":
            (run / "config.yaml").unlink()
        elif what == "summary-bytes":
            (run / "summary.json").write_bytes(os.urandom(300))
        elif what == "summary-list":
            (run / "summary.json").write_text("[1, 2]")
        elif what == "checkpoints-file":
            shutil.rmtree(run / "checkpoints")
            (run / "checkpoints").write_text("x")
        elif what == "plots-file":
            shutil.rmtree(run / "plots", ignore_errors=True)
            (run / "plots").write_text("x")
        elif what == "last-from-other-shape":
            shutil.copy(folder / "other" / "checkpoints" / "last.pt", last)

    return prepare


DAMAGES = ["metrics-half", "metrics-bytes", "metrics-empty", "metrics-words", "metrics-huge", "last-empty",
           "best-empty", "both-empty", "last-random", "config-bomb", "config-list", "config-gone", "summary-bytes",
           "summary-list", "checkpoints-file", "plots-file", "last-from-other-shape"]
COMMANDS = [["eval", "{run}"], ["eval", "{run}", "--checkpoint", "best"], ["plot", "{run}"],
            ["predict", "{run}", "{inputs}"], ["fit", "--resume", "{run}"], ["fit", "--resume", "{run}", "--set", "train.epochs=6"],
            ["runs", "{root}"], ["compare", "{run}", "{run2}", "-o", "{folder}/cmp.png"]]


def run_cases() -> list[Case]:
    return [Case(f"run {what} {' '.join(c for c in command if '{' not in c)}", command, prepare=damage(what),
                 needs_run=True) for what in DAMAGES for command in COMMANDS]


def all_cases() -> list[Case]:
    return key_cases() + file_cases() + option_cases() + csv_cases() + run_cases()


# ---------------------------------------------------------------------- running one case
@dataclass
class Outcome:
    case: Case
    code: int | str  # exit code, or "hang"
    seconds: float
    output: str
    problems: list[str] = field(default_factory=list)


class Hang(Exception):
    pass


def make_finished_runs(folder: Path) -> None:
    """Two small finished runs (and one of another shape) the damaged-run cases start from."""
    from typer.testing import CliRunner

    from clftrain.cli import app

    for name, layers in (("run", [6]), ("run2", [6]), ("other", [3])):
        config = folder / f"{name}.yaml"
        config.write_text(yaml.safe_dump(tiny_config(model={"layers": layers}, train={"epochs": 4, "log_every": 2})))
        result = CliRunner().invoke(app, ["fit", str(config), "--out", str(folder / name), "-q"])
        assert result.exit_code == 0, result.output
    (folder / "inputs.csv").write_text("x1,x2\n0.1,0.2\n0.5,-0.3\n")


def run_case(case: Case, folder: Path, runs: Path | None) -> Outcome:
    from typer.testing import CliRunner

    from clftrain.cli import app

    folder.mkdir(parents=True, exist_ok=True)
    if case.needs_run:
        for name in ("run", "run2", "other"):
            shutil.copytree(runs / name, folder / name)
        shutil.copy(runs / "inputs.csv", folder / "inputs.csv")
    cfg = folder / "config.yaml"
    content = tiny_config(train={"epochs": 3, "log_every": 1}) if case.config is None else case.config
    cfg.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    if case.prepare is not None:
        case.prepare(folder)
    out = folder / "new-run"
    places = {"{cfg}": cfg, "{out}": out, "{run}": folder / "run", "{run2}": folder / "run2",
              "{inputs}": folder / "inputs.csv", "{root}": folder, "{folder}": folder, "{path}": folder / "special.yaml"}
    args = []
    for arg in case.args:
        for place, value in places.items():
            arg = arg.replace(place, str(value))
        args.append(arg)

    def alarm(signum, frame):
        raise Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(TIME_LIMIT_S)
    started = time.perf_counter()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(app, args, catch_exceptions=True)
        code, output = result.exit_code, result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            if isinstance(result.exception, Hang):
                code = "hang"
            output += "\nTraceback: " + repr(result.exception)
    except Hang:
        code, output = "hang", ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
    outcome = Outcome(case, code, time.perf_counter() - started, output)
    judge(outcome, out)
    return outcome


def judge(outcome: Outcome, out: Path) -> None:
    case, problems = outcome.case, outcome.problems
    if outcome.code not in (0, 2):
        problems.append(f"exit {outcome.code}")
    if "Traceback" in outcome.output:
        problems.append("traceback")
    if outcome.code == 2 and not diverged(out):  # a run that trained and diverged exits 2 by design
        if out.exists():
            problems.append(f"left {out.name} behind")
        if case.names and not re.search(re.escape(case.names), outcome.output):
            problems.append(f"the message does not name {case.names!r}")


def diverged(run: Path) -> bool:
    try:
        return json.loads((run / "summary.json").read_text())["status"] == "diverged"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0, help="run this many cases, drawn with --seed (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--match", default="", help="only cases whose id contains this")
    parser.add_argument("--verbose", action="store_true", help="a line for every case, not only the bad ones")
    args = parser.parse_args(argv)
    os.environ.setdefault("CLFTRAIN_PLOT_PROCESSES", "0")
    cases = [c for c in all_cases() if args.match in c.id]
    if args.sample:
        cases = random.Random(args.seed).sample(cases, min(args.sample, len(cases)))
    counts: dict[str, int] = {}
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "finished"
        runs.mkdir()
        make_finished_runs(runs)
        for i, case in enumerate(cases):
            outcome = run_case(case, Path(tmp) / f"case-{i}", runs)
            counts[str(outcome.code)] = counts.get(str(outcome.code), 0) + 1
            if args.verbose and not outcome.problems:
                last = outcome.output.strip().splitlines()[-1:] or [""]
                print(f"ok  {case.id!r}: exit {outcome.code} ({outcome.seconds:.1f} s): {last[0][:200]}", flush=True)
            if outcome.problems:
                bad.append(outcome)
                last = outcome.output.strip().splitlines()[-1:] or [""]
                print(f"BAD {case.id!r}: {', '.join(outcome.problems)} ({outcome.seconds:.1f} s): {last[0][:300]}",
                      flush=True)
            shutil.rmtree(Path(tmp) / f"case-{i}", ignore_errors=True)
    print(json.dumps({"cases": len(cases), "by_exit": counts, "bad": len(bad)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
