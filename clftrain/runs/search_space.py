"""Random search for `clftrain sweep --trials N`: distributions given in --grid, and the trials drawn from them.

`--grid train.lr=loguniform(1e-4,1e-1)`, `uniform(a,b)`, `int(a,b)` (both ends included) and `choice(a,b,...)`
(a plain list of values, `--grid model.layers=[8],[16]`, is a choice too). With `--trials N` every key's value is
drawn N times, each key from its own random stream seeded by the search seed and the key's name: the same command
draws the same trials, and adding a key leaves the other keys' draws as they were. Drawn floats are rounded to
SIGNIFICANT significant digits (readable in run names, sweep.csv and config.yaml; kept within the bounds). The
trials are then combinations like a grid's (runs/sweep.py): validated, batched by shape, trained, ranked.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

import yaml

from clftrain.errors import UserError

DISTRIBUTIONS = {  # name -> how it is written, for messages
    "loguniform": "loguniform(low,high)", "uniform": "uniform(low,high)", "int": "int(low,high)",
    "choice": "choice(a,b,...)",
}
SIGNIFICANT = 4
_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*", re.DOTALL)
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Distribution:
    name: str  # one of DISTRIBUTIONS
    args: tuple  # (low, high), or choice's values

    def draw(self, rng: random.Random) -> Any:
        u = rng.random()  # the one primitive whose stream Python keeps stable across versions
        if self.name == "choice":
            return self.args[min(int(u * len(self.args)), len(self.args) - 1)]
        low, high = self.args
        if self.name == "int":
            return low + min(int(u * (high - low + 1)), high - low)
        if self.name == "loguniform":
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            value = low + u * (high - low)
        return float(min(max(float(f"{value:.{SIGNIFICANT}g}"), low), high))

    def text(self) -> str:
        """As the user would write it: `loguniform(0.001, 0.1)`; a choice's values in YAML."""
        return f"{self.name}({', '.join(value_text(arg) for arg in self.args)})"


def value_text(value: Any) -> str:
    """A config value as the user would type it: 0.1, [8, 8], relu (grid values, drawn values, bounds)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def match_call(raw: str) -> tuple[str, str] | None:
    """`loguniform(1e-4,1e-1)` -> ("loguniform", "1e-4,1e-1"); None for anything else (`0.1,0.01`, `a(1),b(2)`)."""
    match = _CALL.fullmatch(raw)
    if not match:
        return None
    depth = 0
    for char in match.group(2):  # the opening bracket must be the one the closing bracket closes
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return None
    return (match.group(1), match.group(2)) if depth == 0 else None


def bounded(key: str, raw: str, name: str, inner: str) -> Distribution:
    """loguniform, uniform or int from the text between its brackets; a UserError naming the --grid value."""
    shown = raw.strip() if len(raw.strip()) <= 200 else raw.strip()[:197] + "..."
    where = f"--grid {key}={shown}"
    if name not in DISTRIBUTIONS or name == "choice":
        known = ", ".join(DISTRIBUTIONS.values())
        raise UserError(f"{where}: unknown distribution '{name}'; the distributions are {known} "
                        f"(a text value with brackets: quote it, e.g. --grid \"{key}='{shown}'\")")
    parts = [part.strip() for part in inner.split(",")]
    if len(parts) != 2 or not all(parts):
        raise UserError(f"{where}: {name} takes two bounds, {DISTRIBUTIONS[name]}")
    if name == "int":
        bad = [part for part in parts if not _INTEGER.fullmatch(part)]
        if bad:
            raise UserError(f"{where}: int's bounds must be whole numbers; {bad[0][:60]} is not "
                            f"(for floats use uniform(low,high) or loguniform(low,high))")
        if any(len(part.lstrip("+-")) > 15 for part in parts):
            raise UserError(f"{where}: int's bounds must lie within 15 digits")
        low, high = (int(part) for part in parts)
    else:
        low, high = (_number(where, part) for part in parts)
    if low >= high:
        raise UserError(f"{where}: the low bound {parts[0][:60]} must be below the high bound {parts[1][:60]}"
                        + (" (one value: give it plainly, --grid KEY=V)" if low == high else ""))
    if name == "loguniform" and low <= 0:
        raise UserError(f"{where}: loguniform's bounds must be above 0 (it draws evenly between their "
                        f"logarithms); the low bound is {parts[0][:60]}")
    return Distribution(name, (low, high))


def _number(where: str, text: str) -> int | float:
    if _INTEGER.fullmatch(text) and len(text) <= 16:
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"{where}: the bound {text[:60]} is not a finite number")
    return value


def check_trials(trials: int, most: int) -> None:
    if trials < 1:
        raise UserError(f"--trials {trials}: a search draws at least 1 trial, e.g. --trials 20")
    if trials > most:
        raise UserError(f"--trials {trials}: a sweep trains at most {most} runs; draw fewer trials")


def draw_trials(space: dict[str, Distribution], trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` combinations, each key's values drawn from its own stream (seed and key): reproducible."""
    drawn = {key: [dist.draw(rng) for _ in range(trials)]
             for key, dist in space.items() for rng in [random.Random(f"clftrain-search/{seed}/{key}")]}
    return [{key: values[i] for key, values in drawn.items()} for i in range(trials)]
