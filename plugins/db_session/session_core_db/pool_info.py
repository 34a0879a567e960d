"""What the store keeps in a pooled connection's ``info`` dict: entries that belong to the
driver's connection under the pool's proxy (a kept cursor, the statements prepared on it)."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

__all__ = ["per_driver_connection"]

T = TypeVar("T")


def per_driver_connection(
    proxy_info: MutableMapping[Any, Any],
    key: str,
    driver_connection: object,
    make: Callable[[], T],
) -> T:
    """The entry kept under ``key`` in a pooled connection's ``proxy_info`` for
    ``driver_connection``: made by ``make()`` the first time, and made again when the driver's
    connection under the proxy is another one (the pool reconnected), so that nothing made
    for a connection that is gone (its cursor, its prepared statements) is ever used on its
    successor. The entry is stored as ``(driver_connection, value)``; a ``make()`` that raises
    stores nothing."""
    kept = proxy_info.get(key)
    if kept is not None and kept[0] is driver_connection:
        value: T = kept[1]
        return value
    value = make()
    proxy_info[key] = (driver_connection, value)
    return value
