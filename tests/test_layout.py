"""The package's shape stays as the README's layout section draws it: stage packages in one order, no import
circle, no import from a lower stage to a higher one, no private name used across modules, and faces
that hand on names their modules really define.

Every import counts: at the top of a module, inside a function (the lazy ones that keep start-up fast)
and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "clftrain"
# Bottom up: a module may import its own package and the stages below it, never one above.
STAGES = ["leaf", "components", "store", "config", "data", "training", "views", "inference", "runs", "cli"]
LEAVES = {"clftrain", "clftrain.errors", "clftrain.registry", "clftrain.faces", "clftrain.readers", "clftrain.memory"}
FACES = [p.parent.name for p in PACKAGE.glob("*/__init__.py")]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    if module in LEAVES:
        return "leaf"
    if module in ("clftrain.cli", "clftrain.__main__"):
        return "cli"
    return module.split(".")[1]


def is_module(dotted: str) -> bool:
    """Whether a dotted name is one of clftrain's own modules or packages (not a name inside one)."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def exports(package: str) -> dict[str, str]:
    return importlib.import_module(package).EXPORTS


def imported_modules(tree: ast.AST, here: str) -> list[tuple[str, str, int]]:
    """(module imported, name taken from it or '', line) for every clftrain import in a module, a face's
    name resolved to the module that defines it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.startswith("clftrain")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clftrain"):
            for alias in node.names:
                found.append((node.module, alias.name, node.lineno))
    resolved = []
    for module, name, line in found:
        face = module.split(".")[1] if module.count(".") == 1 else None
        if face in FACES and name in exports(module):
            module = f"{module}.{exports(module)[name]}"
        elif name and is_module(f"{module}.{name}"):
            module, name = f"{module}.{name}", ""  # a submodule: `from clftrain.store import rundir`
        resolved.append((module, name, line))
    return resolved


def graph() -> dict[str, list[tuple[str, str, int]]]:
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        edges[here] = [(m, n, line) for m, n, line in imported_modules(ast.parse(path.read_text()), here) if m != here]
    return edges


EDGES = graph()


def test_every_module_belongs_to_a_stage():
    assert {stage(m) for m in EDGES} <= set(STAGES)


def test_no_import_runs_up_the_stages():
    upward = [f"{here} -> {there} (line {line})" for here, imports in EDGES.items() for there, _, line in imports
              if STAGES.index(stage(there)) > STAGES.index(stage(here))]
    assert upward == []


def test_no_import_circle():
    """Depth-first search over module imports; a back edge is a circle."""
    state: dict[str, str] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for there, _, _ in EDGES.get(module, []):
            if there not in EDGES:
                continue
            if state.get(there) == "open":
                circles.append(" -> ".join(path[path.index(there):] + [there]))
            elif there not in state:
                visit(there, path + [there])
        state[module] = "done"

    for module in EDGES:
        if module not in state:
            visit(module, [module])
    assert circles == []


ACCESSORS = {"setattr", "getattr", "delattr", "hasattr"}  # monkeypatch.setattr(module, "_name", ...) included


def private_uses(path: Path) -> list[str]:
    """`from clftrain.x import _y` and `x._y` on a clftrain module bound by an import, in one file."""
    tree = ast.parse(path.read_text())
    modules, uses = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clftrain"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    uses.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                elif is_module(f"{node.module}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {alias.asname for alias in node.names if alias.name.startswith("clftrain") and alias.asname}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            uses.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ACCESSORS
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__")):
            uses.append(f"line {node.lineno}: {ast.unparse(node.func)}(..., {node.args[1].value!r}, ...)")
    return uses


@pytest.mark.parametrize("folder", ["clftrain", "tests", "bench"])
def test_no_private_name_is_used_across_modules(folder):
    found = {str(p.relative_to(ROOT)): private_uses(p) for p in sorted((ROOT / folder).rglob("*.py"))}
    assert {path: uses for path, uses in found.items() if uses} == {}


@pytest.mark.parametrize("face", FACES)
def test_each_face_hands_on_names_its_modules_define(face):
    package = importlib.import_module(f"clftrain.{face}")
    for name, module in package.EXPORTS.items():
        assert hasattr(importlib.import_module(f"clftrain.{face}.{module}"), name), (face, name, module)
    assert package.__doc__, f"clftrain/{face}/__init__.py needs a docstring saying what the stage owns"


def test_every_module_says_what_it_owns():
    missing = [module_name(p) for p in PACKAGE.rglob("*.py")
               if module_name(p) != "clftrain.__main__" and not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def test_the_readme_lists_every_package():
    readme = (ROOT / "README.md").read_text()
    assert [face for face in FACES if f"`{face}/`" not in readme] == []
