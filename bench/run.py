"""Benchmark driver: `python -m bench.run [--workloads circles,blobs,big,wide] [--reps 3] ...` (or `make bench`).

Runs every (workload, trainer) pair in its own process (bench/child.py), repetitions
interleaved (bare clftrain ... bare clftrain ...) so that machine noise spreads evenly,
measures start-up (bench/probe.py), prints a markdown table and writes the raw results
as JSON (and the table as markdown) to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.trainers import DEFAULT_TRAINERS, TRAINERS
from bench.workloads import BENCH_DIR, WORKLOADS, csv_path

ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OPENBLAS_TUNING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of: {', '.join(WORKLOADS)}")
    p.add_argument("--trainers", default=",".join(DEFAULT_TRAINERS),
                   help=f"comma-separated, of: {', '.join(TRAINERS)} (bare is always run: it is the reference)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every (workload, trainer); median reported")
    p.add_argument("--epochs", type=int, default=None, help="cap every workload's epochs (smoke tests)")
    p.add_argument("--rows", type=int, default=None, help="cap every workload's rows (smoke tests)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch/BLAS threads in every child (default: the libraries' own default)")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help=f"keep {' and '.join(OPENBLAS_TUNING_VARS)} for the sklearn child (default: unset them there)")
    p.add_argument("--startup-reps", type=int, default=5, help="runs of each start-up measurement (0: skip them)")
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON and markdown go")
    p.add_argument("--timeout", type=float, default=900, help="seconds one child may run")
    args = p.parse_args(argv)
    args.workloads = _names(args.workloads, WORKLOADS, "workload")
    trainers = _names(args.trainers, TRAINERS, "trainer")
    args.trainers = ["bare"] + [t for t in trainers if t != "bare"]
    return args


def _names(text: str, known, kind: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"unknown {kind}(s): {', '.join(unknown) or '(none given)'}; choose from: {', '.join(known)}")
    return names


# ------------------------------------------------------------------------------ children
def child_env(trainer: str, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if args.threads:
        env.update({var: str(args.threads) for var in THREAD_VARS})
        env["BENCH_TORCH_THREADS"] = str(args.threads)
    if trainer == "sklearn" and not args.keep_openblas_env:
        for var in OPENBLAS_TUNING_VARS:  # the machine's OpenBLAS tuning slows numpy; sklearn child only
            env.pop(var, None)
    return env


def generate_csv(name: str, args: argparse.Namespace) -> Path:
    """A CSV workload's file, generated (once) in a process of its own: generating a million rows here would
    raise this process's peak memory, and every child measured inherits that peak in ru_maxrss (fork counts
    the parent's pages until exec)."""
    code = (f"from bench.workloads import WORKLOADS, ensure_csv\n"
            f"ensure_csv(WORKLOADS[{name!r}].scaled({args.epochs!r}, {args.rows!r}))")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return csv_path(WORKLOADS[name].scaled(args.epochs, args.rows))


def run_child(workload: str, trainer: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.child", workload, trainer, "--json", str(out)]
        if args.epochs:
            cmd += ["--epochs", str(args.epochs)]
        if args.rows:
            cmd += ["--rows", str(args.rows)]
        started = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=child_env(trainer, args), capture_output=True, text=True,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"workload": workload, "trainer": trainer, "error": f"timed out after {args.timeout:g} s"}
        wall = time.perf_counter() - started
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
            return {"workload": workload, "trainer": trainer, "error": f"exit {proc.returncode}", "log": tail}
        result = json.loads(out.read_text())
        result["process_seconds"] = wall
        return result


def skipped(workload, trainer: str) -> str | None:
    """Why a (workload, trainer) pair would only repeat another one, else None."""
    if trainer == "clftrain-default" and default_eval_every(workload) == 1:
        return "same as clftrain (its default evaluates every epoch here)"
    if (trainer.endswith("-dataloader") or trainer == "clftrain-end") and workload.batch_size is not None:
        return "full-batch workloads only"
    if trainer == "clftrain-arrays" and not workload.csv_rows:
        return "same as clftrain (not a CSV workload)"
    return None


def default_eval_every(workload) -> int:
    """What `eval_every: auto` resolves to for this workload's clftrain config."""
    from clftrain.config import validate_config

    return validate_config(workload.clftrain_config(eval_every="auto")).train.eval_every


# ------------------------------------------------------------------------------ start-up
def clftrain_command() -> list[str]:
    script = Path(sys.executable).parent / "clftrain"
    return [str(script)] if script.exists() else [sys.executable, "-m", "clftrain"]


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - started, proc


def measure_startup(args: argparse.Namespace) -> dict:
    reps = args.startup_reps
    env = child_env("startup", args)
    config = str(ROOT / "configs" / "circles.yaml")
    out: dict = {"reps": reps, "config": "configs/circles.yaml"}

    def median_of(cmd: list[str]) -> dict:
        times, codes = [], set()
        for _ in range(reps):
            seconds, proc = timed(cmd, env)
            times.append(seconds)
            codes.add(proc.returncode)
        return {"median": statistics.median(times), "min": min(times), "max": max(times), "exit_codes": sorted(codes)}

    out["import_torch"] = median_of([sys.executable, "-c", "import torch"])
    out["help"] = median_of([*clftrain_command(), "--help"])
    out["validate"] = median_of([*clftrain_command(), "validate", config])
    with tempfile.TemporaryDirectory() as tmp:
        for name, cli_args in (("help", ["--help"]), ("validate", ["validate", config])):
            path = Path(tmp) / f"{name}.json"
            subprocess.run([sys.executable, "-m", "bench.probe", "modules", str(path), "--", "clftrain", *cli_args],
                           cwd=ROOT, env=env, capture_output=True, timeout=300)
            probe = json.loads(path.read_text()) if path.exists() else {"modules": ["(probe failed)"]}
            out[name]["heavy_modules"] = probe["modules"]
        firsts = []
        for i in range(reps):
            path = Path(tmp) / f"first-{i}.json"
            started = time.time()
            subprocess.run([sys.executable, "-m", "bench.probe", "first-epoch", str(path), "--", "clftrain", "fit",
                            config, "--out", str(Path(tmp) / f"run-{i}"), "-q"],
                           cwd=ROOT, env=env, capture_output=True, timeout=300)
            probe = json.loads(path.read_text()) if path.exists() else {}
            if "first_epoch_end" in probe:
                firsts.append(probe["first_epoch_end"] - started)
        if firsts:
            out["fit_first_epoch"] = {"median": statistics.median(firsts), "min": min(firsts), "max": max(firsts)}
            out["fit_startup_over_import_torch"] = out["fit_first_epoch"]["median"] - out["import_torch"]["median"]
        for epochs in (1000, 4000):
            out[f"fit_whole_{epochs}"] = measure_whole_fit(config, epochs, reps, env, Path(tmp))
    return out


def measure_whole_fit(config: str, epochs: int, reps: int, env: dict, tmp: Path) -> dict:
    """`clftrain fit CONFIG` as one process, start to exit, and the phases its summary.json times: training
    (`seconds`), checkpoint saving and the end-of-run plots (`timings`)."""
    runs = []
    for i in range(reps):
        run_dir = tmp / f"whole-{epochs}-{i}"
        seconds, proc = timed([*clftrain_command(), "fit", config, "--set", f"train.epochs={epochs}", "--out",
                               str(run_dir), "-q"], env)
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        summary = json.loads((run_dir / "summary.json").read_text())
        runs.append({"wall": seconds, "training": summary["seconds"], **summary["timings"]})
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]} | {"runs": runs}


# ------------------------------------------------------------------------------ report
def machine_info(args: argparse.Namespace) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for dist in ("torch", "numpy", "scikit-learn", "lightning", "pytorch-lightning", "rich", "clftrain"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {"cpu": cpu or "unknown", "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions, "threads": args.threads or "library default",
            "load_avg_start": os.getloadavg(), "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_TUNING_VARS}}


def summarize(runs: list[dict], workloads: list[str], trainers: list[str]) -> list[dict]:
    rows = []
    for w in workloads:
        bare = [r["seconds"] for r in runs if r["workload"] == w and r["trainer"] == "bare" and "seconds" in r]
        bare_median = statistics.median(bare) if bare else None
        for t in trainers:
            mine = [r for r in runs if r["workload"] == w and r["trainer"] == t]
            ok = [r for r in mine if "seconds" in r]
            row = {"workload": w, "trainer": t, "n": len(ok)}
            if not ok:
                problems = [r.get("skipped") or r.get("error") for r in mine]
                row["note"] = next((p for p in problems if p), "no result")
                rows.append(row)
                continue
            seconds = [r["seconds"] for r in ok]
            median = statistics.median(seconds)
            epochs = ok[0]["epochs"]
            row.update(
                seconds=median, min=min(seconds), max=max(seconds), epochs=epochs,
                ms_per_epoch=median / max(epochs, 1) * 1e3,
                ratio=median / bare_median if bare_median else None,
                test_acc=statistics.median(r["test_acc"] for r in ok),
                rss_peak_mib=statistics.median(r["rss_peak_mib"] for r in ok),
                rss_over_imports_mib=statistics.median(r["rss_over_imports_mib"] for r in ok),
                load_seconds=statistics.median(r["load_seconds"] for r in ok),
                cpu_seconds=statistics.median(r["cpu_seconds"] for r in ok),
                evaluations=ok[0].get("evaluations"),
                data_float32_mib=ok[0]["data_float32_mib"],
            )
            rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| workload | trainer | train s (median) | min-max | x bare | ms/epoch | test evals | test acc "
             "| peak RSS MiB | RSS over imports MiB | data load s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if "seconds" not in r and r["note"].startswith("same as"):
            continue  # a pair that would only repeat another row
        if "seconds" not in r:
            lines.append(f"| {r['workload']} | {r['trainer']} | {r['note']} | | | | | | | | |")
            continue
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        evals = "-" if r["evaluations"] is None else ("end only" if r["evaluations"] == 0 else str(r["evaluations"]))
        lines.append(
            f"| {r['workload']} | {r['trainer']} | {r['seconds']:.3f} | {r['min']:.2f}-{r['max']:.2f} | {ratio} "
            f"| {r['ms_per_epoch']:.2f} | {evals} | {r['test_acc']:.2%} | {r['rss_peak_mib']:.0f} "
            f"| {r['rss_over_imports_mib']:.0f} | {r['load_seconds']:.2f} |"
        )
    return "\n".join(lines)


def check_targets(rows: list[dict], startup: dict | None) -> list[str]:
    """The issue's targets, each as 'PASS/FAIL/n.a.: what (measured)'."""
    def get(w, t):
        return next((r for r in rows if r["workload"] == w and r["trainer"] == t and "seconds" in r), None)

    def verdict(ok: bool | None) -> str:
        return "n.a." if ok is None else ("PASS" if ok else "FAIL")

    def noisy(*found) -> str:
        """A median that a busy machine may have moved: the spread of a row used is over 1.5x."""
        spread = [f"{r['workload']} {r['trainer']} {r['max'] / r['min']:.1f}x" for r in found
                  if r and r["min"] > 0 and r["max"] / r["min"] > 1.5]
        return f" [noisy, max/min: {', '.join(spread)}; rerun before trusting it]" if spread else ""

    lines = []
    workloads = sorted({r["workload"] for r in rows}, key=list(WORKLOADS).index)
    for trainer, limit, what in (("clftrain", 1.10, "equal work, test evaluation every epoch"),
                                 ("clftrain-default", 1.00, "clftrain's default cadence, eval_every: auto")):
        # Where the default evaluates every epoch, its row would repeat `clftrain`'s: use that one.
        found = [(w, get(w, trainer) or get(w, "clftrain")) for w in workloads]
        found = [(w, r) for w, r in found if r and r["ratio"] is not None]
        if found:
            worst = max(r["ratio"] for _, r in found)
            detail = ", ".join(f"{w} {r['ratio']:.2f}x" for w, r in found)
            involved = [r for _, r in found] + [get(w, "bare") for w, _ in found]
            lines.append(f"{verdict(worst <= limit)}: {trainer} <= {limit:.2f}x bare ({what}): {detail}"
                         + noisy(*involved))
    for mine in ("clftrain-default", "clftrain"):
        for theirs, fed in (("lightning-dataloader", "fed by DataLoader(TensorDataset), as its docs do"),
                            ("lightning", "fed pre-made batches")):
            c, lt = get("circles", mine), get("circles", theirs)
            if c and lt:
                speedup = lt["ms_per_epoch"] / c["ms_per_epoch"]
                lines.append(f"{verdict(speedup >= 10)}: {mine} >= 10x faster per epoch than Lightning {fed}, "
                             f"circles: {speedup:.1f}x ({c['ms_per_epoch']:.2f} vs {lt['ms_per_epoch']:.2f} ms/epoch)"
                             + noisy(c, lt))
    for w in workloads:  # not a target: scikit-learn's numpy loop against clftrain doing the same work
        c, sk = get(w, "clftrain-end"), get(w, "sklearn")
        if c and sk:
            lines.append(f"INFO: {w}, both evaluating once at the end: clftrain {c['ms_per_epoch']:.2f} ms/epoch, "
                         f"MLPClassifier {sk['ms_per_epoch']:.2f} ms/epoch ({sk['seconds'] / c['seconds']:.2f}x "
                         "clftrain's time)" + noisy(c, sk))
    for r in rows:
        if r["workload"] == "wide" and "seconds" in r and r["trainer"].startswith("clftrain"):
            limit = 3 * r["data_float32_mib"]
            lines.append(f"{verdict(r['rss_over_imports_mib'] < limit)}: wide, {r['trainer']}: peak RSS over the "
                         f"imports {r['rss_over_imports_mib']:.0f} MiB < 3 x float32 data ({limit:.0f} MiB); "
                         f"absolute peak {r['rss_peak_mib']:.0f} MiB")
    if startup:
        for name in ("help", "validate"):
            s = startup[name]
            lines.append(f"{verdict(not s.get('heavy_modules') and s['median'] < 0.3)}: clftrain "
                         f"{'--help' if name == 'help' else 'validate'}: {s['median']:.3f} s (< 0.3 s), heavy "
                         f"modules imported: {', '.join(s.get('heavy_modules') or []) or 'none'}")
        if "fit_startup_over_import_torch" in startup:
            over = startup["fit_startup_over_import_torch"]
            lines.append(f"{verdict(over < 1.5)}: fit start-up, process start to end of the first epoch: "
                         f"{startup['fit_first_epoch']['median']:.2f} s = import torch "
                         f"{startup['import_torch']['median']:.2f} s + {over:.2f} s (< 1.5 s)")
        lines += lifecycle_targets(startup)
    return lines


def lifecycle_targets(startup: dict) -> list[str]:
    """The run lifecycle's costs in whole `clftrain fit configs/circles.yaml` processes (1,000 and 4,000 epochs)."""
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines, torch_s = [], startup["import_torch"]["median"]
    for epochs in (1000, 4000):
        fit = startup.get(f"fit_whole_{epochs}") or {}
        if "wall" not in fit:
            continue
        saving = fit["checkpoints"] / fit["training"]
        lines.append(f"{verdict(saving <= 0.05)}: circles {epochs} epochs, checkpoint saving {fit['checkpoints']:.3f} s "
                     f"= {saving:.1%} of training {fit['training']:.2f} s (<= 5%)")
        lines.append(f"{verdict(fit['plots'] <= 0.5)}: circles {epochs} epochs, end-of-run plots {fit['plots']:.2f} s "
                     "(<= 0.5 s)")
        over = fit["wall"] - torch_s - fit["training"]
        lines.append(f"{verdict(over <= 1.0)}: circles {epochs} epochs, whole `clftrain fit` {fit['wall']:.2f} s = "
                     f"import torch {torch_s:.2f} s + training {fit['training']:.2f} s + {over:.2f} s (<= 1.0 s)")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info(args)
    print(f"clftrain benchmark: {', '.join(args.workloads)} x {', '.join(args.trainers)}, {args.reps} rep(s); "
          f"{machine['cpu']}, {machine['cores']} cores, load {machine['load_avg_start'][0]:.2f}", flush=True)
    versions = machine["versions"]
    if "lightning" in args.trainers and not (versions["lightning"] or versions["pytorch-lightning"]):
        print("  lightning: not installed (`make bench` installs it); its rows will say so", flush=True)
    for name in args.workloads:  # generate CSV data before anything is timed
        workload = WORKLOADS[name].scaled(args.epochs, args.rows)
        if workload.csv_rows:
            started = time.perf_counter()
            path = generate_csv(name, args)
            print(f"  data: {path} ({path.stat().st_size / 2**20:.0f} MiB, {time.perf_counter() - started:.1f} s)",
                  flush=True)

    runs: list[dict] = []
    started = time.perf_counter()
    for rep in range(args.reps):
        for workload in args.workloads:
            for trainer in args.trainers:  # interleaved: A B C A B C ...
                skip = skipped(WORKLOADS[workload].scaled(args.epochs, args.rows), trainer)
                if skip:
                    runs.append({"workload": workload, "trainer": trainer, "rep": rep, "skipped": skip})
                    continue
                result = run_child(workload, trainer, args)
                result["rep"] = rep
                runs.append(result)
                shown = (f"{result['seconds']:.3f} s, acc {result['test_acc']:.2%}" if "seconds" in result
                         else result.get("skipped") or result.get("error"))
                print(f"  rep {rep + 1}/{args.reps} {workload:8s} {trainer:16s} {shown}", flush=True)
                if "log" in result:
                    print("    " + "\n    ".join(result["log"]), flush=True)
    startup = measure_startup(args) if args.startup_reps > 0 else None
    machine["load_avg_end"] = os.getloadavg()
    machine["bench_seconds"] = time.perf_counter() - started

    rows = summarize(runs, args.workloads, args.trainers)
    table = markdown_table(rows)
    targets = check_targets(rows, startup)
    print()
    print(table)
    print()
    if startup:
        print(f"Start-up (median of {startup['reps']}): import torch {startup['import_torch']['median']:.2f} s, "
              f"clftrain --help {startup['help']['median']:.3f} s, validate {startup['validate']['median']:.3f} s"
              + (f", fit to end of first epoch {startup['fit_first_epoch']['median']:.2f} s"
                 if "fit_first_epoch" in startup else ""))
    print("\n".join(targets))
    print(f"\n{machine['cpu']}, {machine['cores']} cores, torch {machine['versions']['torch']}, "
          f"threads: {machine['threads']}; load average {machine['load_avg_start'][0]:.2f} at start, "
          f"{machine['load_avg_end'][0]:.2f} at end; {machine['bench_seconds']:.0f} s")

    args.results.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    record = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": machine, "summary": rows, "targets": targets, "startup": startup, "runs": runs}
    json_path = args.results / f"bench-{stamp}.json"
    json_path.write_text(json.dumps(record, indent=1))
    (args.results / f"bench-{stamp}.md").write_text(table + "\n\n" + "\n".join(targets) + "\n")
    shutil.copyfile(json_path, args.results / "latest.json")
    print(f"raw results: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    failed = [r for r in runs if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
