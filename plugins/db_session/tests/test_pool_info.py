"""What the store keeps in a pooled connection's ``info``, per driver connection."""

from __future__ import annotations

from typing import Any

import pytest

from session_core_db.pool_info import per_driver_connection


def test_an_entry_is_reused_for_its_driver_connection_and_rebuilt_for_another() -> None:
    info: dict[str, Any] = {}
    made: list[list[str]] = []

    def make() -> list[str]:
        made.append([])
        return made[-1]

    first, reconnected = object(), object()
    entry = per_driver_connection(info, "k", first, make)
    assert per_driver_connection(info, "k", first, make) is entry  # reused
    assert len(made) == 1
    # The pool reconnected under the same proxy: what was made for the old connection is
    # never handed out for the new one.
    again = per_driver_connection(info, "k", reconnected, make)
    assert again is not entry
    assert len(made) == 2
    assert per_driver_connection(info, "k", reconnected, make) is again
    assert info == {"k": (reconnected, again)}


def test_a_none_entry_is_kept_too_and_a_failed_make_keeps_nothing() -> None:
    info: dict[str, Any] = {}
    calls: list[int] = []

    def nothing() -> None:
        calls.append(1)

    connection = object()
    assert per_driver_connection(info, "k", connection, nothing) is None
    assert per_driver_connection(info, "k", connection, nothing) is None
    assert calls == [1]  # None is an entry like any other, not "missing"

    def broken() -> int:
        raise OSError("cursor refused")

    other: dict[str, Any] = {}
    with pytest.raises(OSError, match="cursor refused"):
        per_driver_connection(other, "k", connection, broken)
    assert other == {}
