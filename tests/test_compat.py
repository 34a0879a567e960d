"""The private names session_core._compat relies on still exist."""

import argparse

from session_core import _compat


def test_add_subparsers_returns_the_named_class():
    action = argparse.ArgumentParser().add_subparsers()
    assert type(action) is argparse._SubParsersAction
    assert _compat.Subparsers == "argparse._SubParsersAction[argparse.ArgumentParser]"
    assert callable(action.add_parser)
    assert isinstance(action.choices, dict)
