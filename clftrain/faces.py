"""Package faces that import their modules on first use.

Each stage package's `__init__` lists its public names and the module that defines each.
`from clftrain.training import Trainer` then imports `clftrain.training.trainer` only when
asked, so `clftrain --help`, `validate` and `runs` never pay for torch, scikit-learn or
matplotlib because a sibling module of what they use needs them (PEP 562 module __getattr__).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_face(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for a package whose public `name` lives in module `exports[name]`."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
