"""The ``db`` store's registration with session-core (the ``session_core.stores`` entry point):
the store, and its ``session-core db`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import session_core
from session_core import SessionConfig, SessionStore

if TYPE_CHECKING:
    from session_core.hookspecs import Subparsers

from .commands import add_commands
from .store import DbStore

__all__ = [
    "session_core_add_commands",
    "session_core_create_store",
    "session_core_store_api_version",
]


@session_core.hookimpl
def session_core_store_api_version() -> int:
    """The db store is written against store API 1."""
    return 1


@session_core.hookimpl
def session_core_create_store(config: SessionConfig) -> SessionStore:
    """Build the db store from ``config.store_options``; bad options raise
    :class:`~session_core.ConfigurationError` at start-up."""
    return DbStore.from_config(config)


@session_core.hookimpl
def session_core_add_commands(subparsers: Subparsers) -> None:
    """Add ``session-core db`` (``session-core db schema`` prints the sessions table's SQL)."""
    add_commands(subparsers)
