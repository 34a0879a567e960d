"""The private names of SQLAlchemy and the drivers the store uses: only in ``_compat.py``, and
each one still there and doing what the store relies on (these tests fail when a release of the
dependency changes it)."""

from __future__ import annotations

import ast
from pathlib import Path

from session_core_db import _compat

PACKAGE = Path(_compat.__file__).parent


def _own_private_names(trees: list[ast.Module]) -> set[str]:
    """Every ``_name`` the package defines itself: functions, classes, attributes, globals."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.alias) and node.asname:
                names.add(node.asname)
    return {name for name in names if name.startswith("_")}


def _private_uses(tree: ast.Module, own: set[str]) -> list[str]:
    """``obj._name`` and ``getattr(obj, "_name")`` where ``_name`` is not the package's own."""
    found: list[str] = []
    for node in ast.walk(tree):
        name: str | None = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if (
            name is not None
            and name.startswith("_")
            and not name.startswith("__")
            and name not in own
        ):
            found.append(f"line {node.lineno}: {name}")
    return found


def test_no_private_name_of_a_dependency_outside_compat() -> None:
    sources = {path.name: ast.parse(path.read_text()) for path in PACKAGE.glob("*.py")}
    own = _own_private_names(list(sources.values()))
    offenders = {
        name: uses
        for name, tree in sources.items()
        if name != "_compat.py" and (uses := _private_uses(tree, own))
    }
    assert offenders == {}
    # And none in _compat.py either, today (its docstring says where Pool._invalidate went).
    assert _private_uses(sources["_compat.py"], own) == []


def test_the_scan_sees_a_private_name_of_a_dependency() -> None:
    # The check above would pass on a scan that sees nothing: it finds SQLAlchemy's.
    tree = ast.parse("def f(engine):\n    engine.pool._invalidate(None)\n    getattr(engine, '_x')")
    uses = _private_uses(tree, set())
    assert sorted(use.partition(": ")[2] for use in uses) == ["_invalidate", "_x"]
