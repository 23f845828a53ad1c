"""Start-up probes, each run in a fresh process by bench/run.py.

  python -m bench.probe modules OUT.json -- clftrain ARGS...
      runs the clftrain CLI in this process, then writes which heavy libraries it imported
  python -m bench.probe first-epoch OUT.json -- clftrain fit CONFIG ARGS...
      runs `clftrain fit` and, when its first epoch ends, writes the wall-clock time
      (time.time()) and exits at once: run.py subtracts the time it started the process

Neither imports anything heavy itself: the first-epoch hook patches clftrain.training.trainer.Trainer
when (and only when) the CLI imports that module.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import time

HEAVY = ("torch", "sklearn", "matplotlib", "scipy", "pandas", "lightning")


def _write(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def _run_cli(args: list[str]) -> int:
    from clftrain.cli import main

    sys.argv = ["clftrain", *args]
    return main()


class _FirstEpochHook(importlib.abc.MetaPathFinder):
    """Wraps Trainer.run_epoch as clftrain.training.trainer is imported; records the end of the first epoch."""

    def __init__(self, out: str) -> None:
        self.out = out

    def find_spec(self, name, path, target=None):
        if name != "clftrain.training.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load, out = spec.loader.exec_module, self.out

        def exec_module(module):
            load(module)
            run_epoch = module.Trainer.run_epoch

            def first_epoch(trainer, *args, **kwargs):
                result = run_epoch(trainer, *args, **kwargs)
                _write(out, {"first_epoch_end": time.time(), "modules": sorted(m for m in HEAVY if m in sys.modules)})
                sys.stdout.flush()
                os._exit(0)  # the rest of the run is not start-up
                return result

            module.Trainer.run_epoch = first_epoch

        spec.loader.exec_module = exec_module
        return spec


def main() -> int:
    mode, out, sep, *args = sys.argv[1:]
    assert sep == "--" and args[0] == "clftrain", "usage: python -m bench.probe MODE OUT.json -- clftrain ARGS..."
    if mode == "modules":
        code = _run_cli(args[1:])
        _write(out, {"exit_code": code, "modules": sorted(m for m in HEAVY if m in sys.modules)})
        return 0
    if mode == "first-epoch":
        sys.meta_path.insert(0, _FirstEpochHook(out))
        code = _run_cli(args[1:])
        _write(out, {"exit_code": code, "error": "training never started"})
        return 1
    raise SystemExit(f"unknown probe {mode!r}")


if __name__ == "__main__":
    sys.exit(main())
