"""Private names of session-core's dependencies (the standard library included), in one place,
each with a test in tests/test_compat.py that fails when the dependency changes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import argparse  # only named in the alias below: argparse stays unimported at run time

__all__ = ["Subparsers"]

# argparse has no public name for what ArgumentParser.add_subparsers() returns.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The type of :meth:`argparse.ArgumentParser.add_subparsers`'s result."""
